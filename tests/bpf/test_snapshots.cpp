// SPDX-License-Identifier: MIT
// Snapshots (issue 15) through the real object: the state saved, the object
// loaded afresh (new maps, a clock at another tick: a reboot), the snapshot
// restored, and the program goes on as if nothing had happened: a quota
// part used is part used, bans, blocklists and remembered sources are kept,
// counters carry on. A snapshot that is not one, or is damaged, changes
// nothing.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <thread>

#include <cstring>
#include <map>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "fd.h"
#include "packet.h"
#include "program.h"
#include "rules.h"
#include "snapshot.h"
#include "stats.h"
#include "snapshot_file.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;
using test::kHz;
using test::kSec;

class Snapshots : public Program {
 protected:
  void SetUp() override {
    Program::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    load();
    char tmpl[] = "/tmp/xt-snap-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/state.snap";
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    Program::TearDown();
  }
  SnapshotSummary save(uint64_t now) {
    skel_->bss->xt_test_now = now;
    auto sum = save_snapshot(*state_, path_);
    EXPECT_TRUE(sum.has_value()) << sum.error().message;
    return sum.value_or(SnapshotSummary{});
  }
  // A reboot: the object loaded anew (empty maps), its clock at `now`.
  void reboot(uint64_t now) {
    load();
    skel_->bss->xt_test_now = now;
  }
  Result<SnapshotSummary> restore(uint64_t now) {
    skel_->bss->xt_test_now = now;
    auto file = read_snapshot(path_);
    if (!file) return std::unexpected(file.error());
    return restore_snapshot(*state_, *file, path_, 1);
  }
  // A restore at the clock as it is of the snapshot as if saved `ago`
  // seconds before it was.
  Result<SnapshotSummary> restore_saved_earlier(int64_t ago) {
    auto file = read_snapshot(path_);
    if (!file) return std::unexpected(file.error());
    file->saved_at_ns -= ago * static_cast<int64_t>(kNsPerSec);
    return restore_snapshot(*state_, *file, path_, 1);
  }
  // A restore at the clock as it is, and the plan it would write in its
  // marker (RestorePlan); then one resumed under that plan.
  RestorePlan restore_noting_plan() {
    RestorePlan plan;
    auto file = read_snapshot(path_);
    EXPECT_TRUE(file.has_value()) << file.error().message;
    if (!file) return plan;
    auto done = restore_snapshot(*state_, *file, path_, 1, std::nullopt, [&](const RestorePlan& p) { plan = p; });
    EXPECT_TRUE(done.has_value()) << done.error().message;
    return plan;
  }
  void resume(const RestorePlan& plan) {
    auto file = read_snapshot(path_);
    ASSERT_TRUE(file.has_value()) << file.error().message;
    auto done = restore_snapshot(*state_, *file, path_, 1, plan);
    ASSERT_TRUE(done.has_value()) << done.error().message;
  }
  static std::vector<uint8_t> from(const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); }
  // The one row `top` lists (failing, and a row of zeros, if it lists
  // another number).
  TopRow only_top_row() {
    auto rows = read_top(*state_, 10);
    EXPECT_TRUE(rows.has_value()) << rows.error().message;
    EXPECT_EQ(rows ? rows->size() : 0u, 1u);
    return rows && rows->size() == 1 ? (*rows)[0] : TopRow{};
  }
  std::string dir_, path_;
};

TEST_F(Snapshots, APartUsedQuotaIsPartUsedAfterAReboot) {
  rule("198.18.0.0/15", "1000/day", 1000);
  const uint64_t t1 = 5000 * kSec;
  EXPECT_EQ(passed(from("198.18.0.9"), 900, t1), 900);
  EXPECT_EQ(passed(from("198.18.0.10"), 1001, t1), 1000) << "another source, empty";
  const SnapshotSummary saved = save(t1);
  EXPECT_EQ(saved.rules, 1u);
  EXPECT_EQ(saved.buckets, 2u);

  const uint64_t t2 = 77 * kSec;  // the new boot's clock is nowhere near the old one
  reboot(t2);
  auto restored = restore(t2);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(restored->buckets, 2u);
  EXPECT_EQ(restored->placed.restored, 2u);
  EXPECT_EQ(passed(from("198.18.0.9"), 200, t2), 100) << "900 of 1000 used: 100 left";
  EXPECT_EQ(passed(from("198.18.0.10"), 5, t2), 0) << "empty, and tracked: no new-source budget needed";
  EXPECT_EQ(passed(from("198.18.0.10"), 2, t2 + 87 * kSec), 1) << "and refilling at 1000/day: one in 86.4 s";
  const xt_rule_stats stats = rule_stats("198.18.0.0/15");
  EXPECT_EQ(stats.passed_packets, 900u + 1000u + 100u + 1u) << "the rule's counters carry on";
  EXPECT_EQ(stats.dropped_packets, 1u + 100u + 5u + 1u);
  EXPECT_EQ(counter(XT_PASS_LIMIT), 2001u) << "so do the counters by reason, into a state that had none";
}

// A large table's save walks it for seconds, and the data path goes on
// meanwhile: a held source's word, written after the save read the clock,
// was ahead of that reading by more than the clock skew xt_debt allows for,
// read as one that wrapped, and saved as full (the review's finding: every
// source held past the first 4 s of a walk of 7M sources). Here the data
// path runs (the step hook) between the save's clock and its walk.
TEST_F(Snapshots, ASourceHeldWhileTheSaveWalksIsSavedHeld) {
  rule("198.18.0.0/15", "1/min", 1);
  const uint64_t t1 = 1000 * kSec;
  bool ran = false;
  state_->set_step_hook([&] {
    if (ran) return;
    ran = true;
    EXPECT_EQ(passed(from("198.18.0.9"), 3, t1 + 5000), 1) << "its one token, then held for a minute";
  });
  save(t1);
  ASSERT_TRUE(ran);
  reboot(77 * kSec);
  ASSERT_TRUE(restore(77 * kSec).has_value());
  EXPECT_EQ(passed(from("198.18.0.9"), 1, 77 * kSec), 0) << "still held: its minute is not over";
  // Its minute and the 5 s the walk took, from the save: more than an
  // empty bucket's wait, which is what the restore gives it.
  EXPECT_EQ(passed(from("198.18.0.9"), 1, 77 * kSec + 59 * kSec), 0);
  EXPECT_EQ(passed(from("198.18.0.9"), 1, 77 * kSec + 61 * kSec), 1) << "and refilled when it is over";
}

// A held source's drops wait in the hot cache until it next reaches its
// bucket; `top` adds them, and the save had only the bucket's: restored, a
// source showed up to 255 drops a CPU fewer than it had before.
TEST_F(Snapshots, ASourcesDropsStillInTheHotCacheAreSavedWithIt) {
  rule("198.18.0.0/15", "10/s", 10);
  const uint64_t t1 = 1000 * kSec;
  EXPECT_EQ(passed(from("198.18.0.9"), 100, t1), 10);
  ASSERT_EQ(only_top_row().dropped_packets, 90u);
  save(t1);
  reboot(77 * kSec);
  ASSERT_TRUE(restore(77 * kSec).has_value());
  const TopRow after = only_top_row();
  EXPECT_EQ(after.dropped_packets, 90u) << "as top showed it before the save";
  EXPECT_EQ(after.passed_packets, 10u);
}

// A save writes its bucket records a chunk of 4096 at a time, and adds the
// pending drops as it reads them back for the checksum (not all in memory:
// 280 MB at 4M sources), and a restore reads them back a chunk at a time:
// every record comes back as it was, across chunks, and a held source's
// pending drops with it.
TEST_F(Snapshots, EveryBucketComesBackFromASaveOfManyChunks) {
  load(16384);  // room for them
  rule("198.18.0.0/15", "10/s", 10);
  const uint64_t t1 = 1000 * kSec;
  skel_->bss->xt_test_now = t1;
  const xt_rule r = state_->rules().value().at(0).rule;
  std::vector<std::pair<xt_bucket_key, xt_bucket>> planted;
  for (uint32_t i = 0; i < 3 * 4096 + 100; i++) {
    xt_pkt src{};
    src.family = XT_FAMILY_V4;
    const uint8_t addr[4] = {198, 19, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    std::memcpy(src.addr, addr, sizeof(addr));
    xt_bucket_key key;
    xt_bucket_key_for(&src, r.id, r.per_len, &key);
    xt_bucket b;
    xt_bucket_init(&b, &r, t1);
    b.passed_packets = i + 1;
    b.dropped_packets = 2 * i + 1;
    planted.emplace_back(key, b);
  }
  plant(planted);
  EXPECT_EQ(passed(from("198.18.0.9"), 100, t1), 10);  // 90 drops pending in the hot cache
  std::map<std::string, std::pair<uint64_t, uint64_t>> before;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    before[format_addr(e.key.family, e.key.addr)] = {e.bucket.passed_packets, e.bucket.dropped_packets};
  }));
  ASSERT_GT(before.size(), 3 * 4096u) << "more than three chunks' worth planted";
  ASSERT_LT(before["198.18.0.9"].second, 90u) << "some of its drops still in the hot cache";
  before["198.18.0.9"].second = 90;  // all of them, as top shows them
  save(t1);
  load(16384);  // a reboot (reboot() loads the smallest table)
  auto restored = restore(77 * kSec);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(restored->buckets, before.size());
  EXPECT_EQ(restored->placed.restored, before.size()) << "each in a way of its own";
  std::map<std::string, std::pair<uint64_t, uint64_t>> after;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    after[format_addr(e.key.family, e.key.addr)] = {e.bucket.passed_packets, e.bucket.dropped_packets};
  }));
  EXPECT_EQ(after, before);
}

// A restore reads the bucket records from the file as it puts them in,
// after checking the whole file: a file written to since it was read is
// refused before any change, and records that read back otherwise than
// they were checked (what the file's times would not show) stop the
// restore where they are read, never taken as an index into the rules.
TEST_F(Snapshots, ASnapshotChangedAfterItsCheckIsRefused) {
  rule("198.18.0.0/15", "10/s", 10);
  EXPECT_EQ(passed(from("198.18.0.9"), 1, kSec), 1);
  save(kSec);
  reboot(77 * kSec);
  auto file = read_snapshot(path_);
  ASSERT_TRUE(file.has_value()) << file.error().message;
  ASSERT_EQ(file->bucket_count, 1u);
  ASSERT_TRUE(file->buckets.empty()) << "left in the file";
  // A record that reads back as another good one: its count changed.
  auto reads_bad = *file;
  reads_bad.records = [&](uint64_t at, size_t n, void* out) -> Result<void> {
    auto ok = file->records(at, n, out);
    EXPECT_EQ(n, sizeof(SnapshotBucket));
    static_cast<SnapshotBucket*>(out)->passed_packets += 1000;
    return ok;
  };
  auto restored = restore_snapshot(*state_, reads_bad, path_, 1);
  ASSERT_FALSE(restored.has_value());
  EXPECT_NE(restored.error().message.find("changed since the file was checked"), std::string::npos)
      << restored.error().message;
  EXPECT_EQ(restored.error().message.find("nothing was changed"), std::string::npos)
      << "the rule is in by then: " << restored.error().message;

  // Cut short after the check: the reader's refusal ("nothing was changed")
  // is not what the restore says then.
  reboot(77 * kSec);
  auto reads_short = *file;
  reads_short.records = [&](uint64_t, size_t, void*) -> Result<void> {
    return snapshot_error(path_, "corrupt: it ended early (cut short while it was read)");
  };
  restored = restore_snapshot(*state_, reads_short, path_, 1);
  ASSERT_FALSE(restored.has_value());
  EXPECT_NE(restored.error().message.find("could not be read again"), std::string::npos) << restored.error().message;
  EXPECT_EQ(restored.error().message.find("nothing was changed"), std::string::npos) << restored.error().message;
  EXPECT_EQ(restored.error().kind, ErrorKind::System);

  reboot(77 * kSec);
  {
    SnapshotBucket bad{};
    bad.rule = 7;  // the file has one rule
    const Fd fd(::open(path_.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::pwrite(fd.get(), &bad, sizeof(bad), static_cast<off_t>(file->buckets_at)),
              static_cast<ssize_t>(sizeof(bad)));
  }
  restored = restore_snapshot(*state_, *file, path_, 1);
  ASSERT_FALSE(restored.has_value());
  EXPECT_NE(restored.error().message.find("changed since it was read"), std::string::npos) << restored.error().message;
  EXPECT_NE(restored.error().message.find("nothing was changed"), std::string::npos) << restored.error().message;
  EXPECT_TRUE(state_->rules().value().empty()) << "nothing was changed";
}

// ... and a hold that ends during the save's walk: its drops reach the
// bucket, and read from the hot cache before the walk they were saved
// twice.
TEST_F(Snapshots, ADropPendingWhenTheSaveBeganIsSavedOnce) {
  rule("198.18.0.0/15", "10/s", 10);
  const uint64_t t1 = 1000 * kSec;
  EXPECT_EQ(passed(from("198.18.0.9"), 100, t1), 10);
  bool ran = false;
  state_->set_step_hook([&] {
    if (ran) return;
    ran = true;
    EXPECT_EQ(passed(from("198.18.0.9"), 1, t1 + kSec / 2), 1) << "the hold over: its drops go to the bucket";
  });
  save(t1);
  ASSERT_TRUE(ran);
  reboot(77 * kSec);
  ASSERT_TRUE(restore(77 * kSec).has_value());
  const TopRow after = only_top_row();
  EXPECT_EQ(after.dropped_packets, 90u);
  EXPECT_EQ(after.passed_packets, 11u);
}

TEST_F(Snapshots, BansListsAndRememberedSourcesAreKept) {
  rule("198.18.0.0/15", "3/s", std::nullopt, [](RuleSpec& s) {
    s.verify = false;
    s.remember = 3600;
    s.new_rate = *parse_rate("1/day");
  });
  const uint64_t t1 = 1000 * kSec;
  EXPECT_EQ(passed(from("198.18.7.1"), 3, t1), 3) << "behaves: remembered";
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.18.9.0/24"), 3600).has_value());
  // A ban whose rule was deleted since: kept as such, not as a `ban add`.
  ASSERT_TRUE(
      state_->put_ban(*parse_cidr("198.18.10.1/32"), xt_ban{t1 + 3600 * kHz, t1, 0, XT_BAN_BY_DELETED_RULE}).has_value());
  // Loaded as of an hour ago, told by the fleet: kept as such (a rules
  // file applied after the reboot leaves the fleet's lists alone).
  const uint64_t version = static_cast<uint64_t>(std::time(nullptr)) - 3600;
  ASSERT_TRUE(state_->load_blocklist("drop", {*parse_cidr("198.18.5.0/24"), *parse_cidr("2001:db8:5::/48")}, version,
                                     true)
                  .has_value());
  const SnapshotSummary saved = save(t1);
  EXPECT_EQ(saved.bans, 2u);
  EXPECT_EQ(saved.blocklists, 1u);
  EXPECT_EQ(saved.known, 1u);

  const uint64_t t2 = 10 * kSec;
  reboot(t2);
  // The rule's one new source a day is spent on a stranger first.
  rule("198.18.0.0/15", "3/s", std::nullopt, [](RuleSpec& s) {
    s.verify = false;
    s.remember = 3600;
    s.new_rate = *parse_rate("1/day");
  });
  EXPECT_EQ(passed(from("198.18.7.2"), 1, t2), 1);
  auto restored = restore(t2);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(restored->known, 1u);
  // The list is as old as it was (a fleet takes the newer of two versions
  // by that time: restored as loaded now, an old list passed for newer than
  // one loaded elsewhere since).
  const auto lists = state_->blocklists().value();
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0].list.loaded_unix, version);
  EXPECT_EQ(lists[0].list.used, static_cast<uint32_t>(XT_BLOCKLIST_BY_FLEET)) << "still the fleet's";
  const auto bans = state_->bans().value();
  ASSERT_EQ(bans.size(), 2u);
  EXPECT_EQ(format_cidr(bans[1].cidr), "198.18.10.1/32");
  EXPECT_EQ(bans[1].ban.rule, XT_BAN_BY_DELETED_RULE) << "still a deleted rule's";
  EXPECT_EQ(format_cidr(bans[0].cidr), "198.18.9.0/24");
  EXPECT_NEAR(static_cast<double>(bans[0].ban.until - t2) / kHz, 3600.0, 2.0) << "its time left kept";
  EXPECT_EQ(run(from("198.18.9.9"), t2), XDP_DROP) << "banned";
  EXPECT_EQ(run(from("198.18.5.9"), t2), XDP_DROP) << "blocklisted";
  EXPECT_EQ(run(Packet().ipv6("2001:db8:5::9", "2001:db8::2").build(), t2), XDP_DROP);
  // 198.18.7.1's bucket went idle long ago (it is restored, then idle for
  // two minutes): the budget is spent, but it is remembered.
  const uint64_t t3 = t2 + 120 * kSec;
  EXPECT_EQ(passed(from("198.18.7.3"), 1, t3), 0) << "a stranger: the budget is spent";
  EXPECT_EQ(passed(from("198.18.7.1"), 1, t3), 1) << "remembered across the reboot";
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 1u);
}

// A resumed restore (serve found the marker of one a kill cut short) tops
// each counter up to the snapshot's: over a restore that had added them
// all, nothing is added twice; over one cut before them, they are added.
TEST_F(Snapshots, AResumedRestoreTopsCountersUpToTheSnapshots) {
  rule("198.18.0.0/15", "1000/day", 1000);
  EXPECT_EQ(passed(from("198.18.0.9"), 900, 5000 * kSec), 900);
  save(5000 * kSec);
  const uint64_t t2 = 77 * kSec;
  reboot(t2);
  const RestorePlan plan = restore_noting_plan();
  EXPECT_TRUE(plan.counters) << "into a state without rules";
  EXPECT_EQ(plan.rules, std::set<std::string>{"198.18.0.0/15"});
  EXPECT_EQ(passed(from("198.18.0.9"), 10, t2), 10) << "after the restore";
  resume(plan);
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 910u) << "nothing added twice";
  EXPECT_EQ(counter(XT_PASS_LIMIT), 910u);
  EXPECT_EQ(passed(from("198.18.0.9"), 200, t2), 90) << "and the bucket as it was: 90 left";

  reboot(t2);
  rule("198.18.0.0/15", "1000/day", 1000);  // put by a restore cut short before its counters
  resume(plan);
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 900u) << "topped up to the snapshot's";
  EXPECT_EQ(counter(XT_PASS_LIMIT), 900u);
  EXPECT_EQ(passed(from("198.18.0.9"), 200, t2), 100);
}

// A restore by hand into a live state adds the counters of the rules it
// adds, and leaves the live rules' and the reasons' as they are; resumed
// after a kill, it does the same. The resumed one topped every rule and
// reason up to the snapshot's: a live rule that had counted 5 jumped to
// the snapshot's 900, which Prometheus reads as a burst of traffic.
TEST_F(Snapshots, AResumedRestoreByHandTopsUpOnlyWhatItsFirstRunAdded) {
  rule("198.18.0.0/15", "1000/day", 1000);
  rule("198.19.0.0/16", "1000/day", 1000);
  EXPECT_EQ(passed(from("198.18.0.9"), 900, 5000 * kSec), 900);
  EXPECT_EQ(passed(from("198.19.0.9"), 30, 5000 * kSec), 30);
  save(5000 * kSec);
  const uint64_t t2 = 77 * kSec;
  reboot(t2);
  rule("198.18.0.0/15", "1000/day", 1000);  // live before the restore
  EXPECT_EQ(passed(from("198.18.0.9"), 5, t2), 5);
  const RestorePlan plan = restore_noting_plan();
  EXPECT_FALSE(plan.counters) << "a live state keeps its own";
  EXPECT_EQ(plan.rules, std::set<std::string>{"198.19.0.0/16"});
  resume(plan);
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 5u) << "the live rule's own count";
  EXPECT_EQ(rule_stats("198.19.0.0/16").passed_packets, 30u) << "the added rule's, once";
  EXPECT_EQ(counter(XT_PASS_LIMIT), 5u);
}

// A restore puts each bucket back; it admits no source. It counted each as
// an admission on top of the snapshot's own count, so sources_admitted
// went up by the whole table over every reboot.
TEST_F(Snapshots, ARestoredBucketIsNoSecondAdmission) {
  rule("198.18.0.0/15", "1000/day", 1000);
  const uint64_t t1 = 100 * kSec;
  for (const char* src : {"198.18.0.11", "198.18.0.12", "198.18.0.13"}) EXPECT_EQ(passed(from(src), 1, t1), 1);
  ASSERT_EQ(counter(XT_SOURCES_ADMITTED), 3u);
  save(t1);
  const uint64_t t2 = 5 * kSec;
  reboot(t2);
  ASSERT_TRUE(restore(t2).has_value());
  EXPECT_EQ(counter(XT_SOURCES_ADMITTED), 3u) << "the snapshot's count, and no more";
  EXPECT_EQ(passed(from("198.18.0.11"), 1, t2), 1);
  EXPECT_EQ(counter(XT_SOURCES_ADMITTED), 3u) << "a restored source is tracked";
  EXPECT_EQ(passed(from("198.18.0.14"), 1, t2), 1);
  EXPECT_EQ(counter(XT_SOURCES_ADMITTED), 4u) << "a new one is admitted";
}

// A host whose bans drop traffic no rule covers: its counters come back
// once, whole, also when a restore is resumed (they were added again: a
// state with no rule passed for fresh), and with them the counters past
// the reasons (dropped_without_rule was not kept: the rule="none" drop
// series fell back after a reboot, which Prometheus reads as a reset).
TEST_F(Snapshots, CountersComeBackOnceAndWholeWithNoRule) {
  const uint64_t t1 = 100 * kSec;
  skel_->bss->xt_test_now = t1;
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.18.9.0/24"), 600).has_value());
  EXPECT_EQ(passed(from("198.18.9.1"), 5, t1), 0);
  ASSERT_EQ(counter(XT_DROP_BANNED), 5u);
  ASSERT_EQ(counter(XT_DROPPED_WITHOUT_RULE), 5u);
  save(t1);
  reboot(5 * kSec);
  resume(restore_noting_plan());
  EXPECT_EQ(counter(XT_DROP_BANNED), 5u) << "added once";
  EXPECT_EQ(counter(XT_DROPPED_WITHOUT_RULE), 5u) << "kept";
  EXPECT_EQ(read_stats(*state_).value().dropped_without_rule().packets, 5u);
}

// A restore puts the snapshot's rules in one by one. It added their
// counters after the last one was in, so a scrape meanwhile (a hand restore
// beside a running serve: seconds, for many rules over a large table) read
// the rules already in at 0 and the next scrape at their snapshot counts,
// which Prometheus takes for that many packets in one interval. Each new
// rule's counters now go in right after it: at every step of the restore,
// only the rule being put is short of them.
TEST_F(Snapshots, EachRestoredRuleHasItsCountersBeforeTheNextGoesIn) {
  const uint64_t t1 = 100 * kSec;
  const std::vector<std::string> nets = {"198.18.1", "198.18.2", "198.18.3"};
  for (const auto& n : nets) {
    rule(n + ".0/24", "1000/s");
    EXPECT_EQ(passed(from(n + ".9"), 5, t1), 5);
  }
  save(t1);
  reboot(5 * kSec);
  size_t most_short = 0, steps = 0;
  state_->set_step_hook([&] {
    auto counts = state_->rule_counters();
    ASSERT_TRUE(counts.has_value()) << counts.error().message;
    const auto short_of_it = std::ranges::count_if(*counts, [](const RuleCounters& c) { return c.stats.passed_packets < 5; });
    most_short = std::max(most_short, static_cast<size_t>(short_of_it));
    steps++;
  });
  auto restored = restore(5 * kSec);
  state_->set_step_hook(nullptr);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_GE(steps, nets.size());
  EXPECT_EQ(most_short, 1u) << "only the rule being put, at any step";
  for (const auto& n : nets) EXPECT_EQ(rule_stats(n + ".0/24").passed_packets, 5u) << n;
}

// A hand restore into the very state the snapshot came from (to get back a
// ban lifted by mistake) added its counters to the same counters: with no
// rule, every reason's count doubled, at each restore.
TEST_F(Snapshots, ARestoreIntoTheStateSavedCountsNothingTwice) {
  const uint64_t t1 = 100 * kSec;
  skel_->bss->xt_test_now = t1;
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.18.9.0/24"), 600).has_value());
  EXPECT_EQ(passed(from("198.18.9.1"), 5, t1), 0);
  save(t1);
  ASSERT_TRUE(state_->del_ban(*parse_cidr("198.18.9.0/24")).has_value()) << "lifted by mistake";
  EXPECT_EQ(passed(from("198.18.9.1"), 2, t1), 2);
  ASSERT_TRUE(restore(t1 + kSec).has_value());
  EXPECT_EQ(passed(from("198.18.9.1"), 1, t1 + kSec), 0) << "the ban back";
  EXPECT_EQ(counter(XT_DROP_BANNED), 6u) << "5 before, 1 after: none twice";
  EXPECT_EQ(counter(XT_PASS_UNMATCHED), 2u);
  EXPECT_EQ(counter(XT_DROPPED_WITHOUT_RULE), 6u);

  // A rule deleted and added again since counts from 0: the restore into
  // the state saved leaves it so (topped up, its old count came back).
  rule("198.18.0.0/16", "1000/s", 1000);
  EXPECT_EQ(passed(from("198.18.0.9"), 5, t1 + kSec), 5);
  save(t1 + kSec);
  ASSERT_TRUE(state_->del_rule(*parse_cidr("198.18.0.0/16"), Match{}).has_value());
  rule("198.18.0.0/16", "1000/s", 1000);
  EXPECT_EQ(passed(from("198.18.0.9"), 2, t1 + 2 * kSec), 2);
  ASSERT_TRUE(restore(t1 + 2 * kSec).has_value());
  EXPECT_EQ(rule_stats("198.18.0.0/16").passed_packets, 2u) << "the new rule's count";
}

// A hand restore whose new rule's ports cross a live rule's is refused
// before anything changes: put_rule refused it midway, after the rules
// before it (a looser limit among them) were in, and the command said
// nothing had changed.
TEST_F(Snapshots, ARuleWhosePortsDoNotFitIsRefusedBeforeAnyChange) {
  rule("198.18.0.0/16", "100/s", 100);
  rule("198.19.0.0/16", "10/s", 10, [](RuleSpec& s) {
    s.match.proto = 17;
    s.match.ports = std::pair<uint16_t, uint16_t>{100, 200};
  });
  save(10 * kSec);
  Match udp_100_200;
  udp_100_200.proto = 17;
  udp_100_200.ports = std::pair<uint16_t, uint16_t>{100, 200};
  ASSERT_TRUE(state_->del_rule(*parse_cidr("198.19.0.0/16"), udp_100_200).has_value());
  rule("198.18.0.0/16", "10/s", 10);  // tightened since
  rule("198.20.0.0/16", "10/s", 10, [](RuleSpec& s) {
    s.match.proto = 17;
    s.match.ports = std::pair<uint16_t, uint16_t>{150, 250};
  });
  const auto before = state_->rules().value();
  auto r = restore(20 * kSec);
  ASSERT_FALSE(r.has_value()) << "100-200 crosses the live 150-250";
  EXPECT_NE(r.error().message.find("198.19.0.0/16"), std::string::npos) << r.error().message;
  const auto after = state_->rules().value();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); i++)
    EXPECT_TRUE(after[i].cidr == before[i].cidr && same_rule(after[i].spec, before[i].spec))
        << rule_name(after[i].cidr, after[i].spec.match) << " changed";
}

// A snapshot whose own rules' ports cross (crafted, or an older build's)
// is refused by the check a restore makes before it locks the pins and
// makes a state: its ports were checked only beside the live rules, after
// a state was made for it, and the restore exited 2 ("nothing was
// changed") with that state left.
TEST_F(Snapshots, ASnapshotWhoseOwnPortsCrossIsRefusedByItsFirstCheck) {
  rule("198.19.0.0/16", "10/s", 10, [](RuleSpec& s) {
    s.match.proto = 17;
    s.match.ports = std::pair<uint16_t, uint16_t>{100, 200};
  });
  save(10 * kSec);
  auto file = read_snapshot(path_);
  ASSERT_TRUE(file.has_value()) << file.error().message;
  ASSERT_TRUE(check_snapshot_rules(*file, path_, kHz, 1).has_value());
  auto crossing = file->rules[0];
  crossing.cidr = *parse_cidr("198.20.0.0/16");
  crossing.spec.cidr = crossing.cidr;
  crossing.spec.match.ports = std::pair<uint16_t, uint16_t>{150, 250};
  file->rules.push_back(crossing);
  auto checked = check_snapshot_rules(*file, path_, kHz, 1);
  ASSERT_FALSE(checked.has_value()) << "100-200 and 150-250 cross";
  EXPECT_NE(checked.error().message.find("198.20.0.0/16 udp/150-250"), std::string::npos) << checked.error().message;
}

// A ban the fleet told is restored as the fleet's (it was restored as one
// made by hand, which serve's fleet link then told every host as this
// host's own: a ban lifted elsewhere during the reboot came back).
TEST_F(Snapshots, TheFleetsBansStayTheFleets) {
  rule("198.18.0.0/15", "10/s", 10);
  const uint64_t t1 = 100 * kSec;
  skel_->bss->xt_test_now = t1;
  ASSERT_TRUE(state_->put_ban(*parse_cidr("198.18.9.0/24"), xt_ban{t1 + 600 * kSec, t1, 0, XT_BAN_BY_FLEET}).has_value());
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.18.10.0/24"), 600).has_value());
  save(t1);
  reboot(5 * kSec);
  ASSERT_TRUE(restore(5 * kSec).has_value());
  std::map<std::string, uint32_t> by;
  const auto restored_bans = state_->bans().value();
  for (const State::Ban& b : restored_bans) by[format_cidr(b.cidr)] = b.ban.rule;
  ASSERT_EQ(by.size(), 2u);
  EXPECT_EQ(by["198.18.9.0/24"], XT_BAN_BY_FLEET);
  EXPECT_EQ(by["198.18.10.0/24"], 0u) << "by hand";
}

TEST_F(Snapshots, ABucketThatSentSinceKeepsTheLaterOfTheTwo) {
  rule("198.18.0.0/15", "10/min", 10);
  EXPECT_EQ(passed(from("198.18.0.9"), 4, 100 * kSec), 4);
  EXPECT_EQ(passed(from("198.18.0.10"), 7, 100 * kSec), 7);
  save(100 * kSec);
  reboot(50 * kSec);
  rule("198.18.0.0/15", "10/min", 10);
  EXPECT_EQ(passed(from("198.18.0.9"), 7, 50 * kSec), 7) << "since the reboot, before the restore";
  EXPECT_EQ(passed(from("198.18.0.10"), 4, 50 * kSec), 4);
  auto restored = restore(50 * kSec);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(restored->placed.merged, 2u);
  EXPECT_EQ(passed(from("198.18.0.9"), 10, 50 * kSec), 3) << "the live bucket's 7 used: the later of 4 and 7";
  EXPECT_EQ(passed(from("198.18.0.10"), 10, 50 * kSec), 3) << "the snapshot's 7 used: the later of 7 and 4";
}

TEST_F(Snapshots, AWordOfTheRulesPreviousVersionIsSavedAsTheDataPathWouldReadIt) {
  rule("198.18.0.0/15", "10/min", 10);
  EXPECT_EQ(passed(from("198.18.0.9"), 6, 100 * kSec), 6);
  rule("198.18.0.0/15", "20/min", 20);  // replaced: the quiet bucket's word is the old version's until converted
  save(100 * kSec);
  reboot(50 * kSec);
  ASSERT_TRUE(restore(50 * kSec).has_value());
  EXPECT_EQ(passed(from("198.18.0.9"), 30, 50 * kSec), 4) << "4 whole tokens carried over, not a fresh burst of 20";
}

// A replacement keeps an unchanged window in its word: `--rate 1000/day`
// then `--rate 10/s --rate 1000/day` meters the day in word 0 and the
// second in word 1. A restore recompiles the rule as its options list the
// windows (the second in word 0), so words saved by where the live rule kept
// them came back crossed: the spent day as the second's, refilled within a
// second, and the second's as the day's, nearly full.
TEST_F(Snapshots, EachWindowComesBackAsItselfAfterAReplacementMovedIt) {
  rule("198.18.0.0/15", "1000/day", 1000);
  const uint64_t t1 = 5000 * kSec;
  EXPECT_EQ(passed(from("198.18.0.9"), 1000, t1), 1000) << "the day's quota, spent";
  const auto both = [](RuleSpec& s) {
    s.rates = {*parse_rate("10/s"), *parse_rate("1000/day")};
    s.bursts = {10, 1000};
  };
  rule("198.18.0.0/15", std::nullopt, std::nullopt, both);
  EXPECT_EQ(passed(from("198.18.0.9"), 5, t1 + kSec), 0) << "the day is still spent after the replacement";
  save(t1 + kSec);
  const uint64_t t2 = 77 * kSec;
  reboot(t2);
  ASSERT_TRUE(restore(t2).has_value());
  int sent = 0;
  for (int i = 0; i < 10; i++) sent += passed(from("198.18.0.9"), 1, t2 + i * kSec);
  EXPECT_EQ(sent, 0) << "the day's quota is still spent after the restore";
  EXPECT_EQ(passed(from("198.18.0.10"), 11, t2 + 10 * kSec), 10) << "another source: the second's burst of 10";
}

TEST_F(Snapshots, ADamagedOrForeignSnapshotChangesNothing) {
  rule("198.18.0.0/15", "1000/s");
  EXPECT_EQ(passed(from("198.18.0.9"), 10, kSec), 10);
  save(kSec);
  std::ifstream in(path_, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  reboot(kSec);
  // A state with its own rule, bucket (part spent) and ban, which every
  // refusal must leave exactly as it was.
  rule("198.19.0.0/16", "50/s");
  EXPECT_EQ(passed(from("198.19.0.1"), 20, kSec), 20);
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.19.7.0/24"), 3600).has_value());
  const auto live = [&] {
    std::string out;
    const auto rules = state_->rules().value();
    for (const RuleEntry& e : rules) out += rule_name(e.cidr, e.spec.match) + " " + std::to_string(e.spec.rates.at(0).count) + ";";
    const auto bans = state_->bans().value();
    for (const State::Ban& b : bans) out += format_cidr(b.cidr) + " banned until " + std::to_string(b.ban.until) + ";";
    EXPECT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
      out += format_addr(e.key.family, e.key.addr) + " word " + std::to_string(e.bucket.word[0]) + " passed " +
             std::to_string(e.bucket.passed_packets) + ";";
    }));
    return out;
  };
  const std::string before = live();
  ASSERT_NE(before.find("198.19.0.1 word"), std::string::npos) << before;
  ASSERT_NE(before.find("198.19.7.0/24 banned"), std::string::npos) << before;
  const auto write = [&](const std::string& bytes) { std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes; };
  struct Case {
    const char* name;
    std::string bytes;
    const char* says;
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x20;
  std::string version = good;
  version[8] = 9;
  const Case cases[] = {
      {"cut short", good.substr(0, good.size() - 100), "corrupt"},
      {"a byte changed", flipped, "corrupt"},
      {"another version", version, "format version 9; this build reads version 1"},
      {"a rules file", "[[rule]]\ncidr = \"198.18.0.0/15\"\n", "not an xthrottle snapshot"},
      {"empty", "", "not an xthrottle snapshot"},
  };
  for (const auto& c : cases) {
    write(c.bytes);
    auto r = restore(kSec);
    ASSERT_FALSE(r.has_value()) << c.name;
    EXPECT_EQ(r.error().kind, ErrorKind::Usage) << c.name;
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << c.name << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(path_), std::string::npos) << c.name << ": " << r.error().message;
    EXPECT_EQ(live(), before) << c.name << " changed the state";
  }
  EXPECT_EQ(passed(from("198.19.0.1"), 50, kSec), 30) << "the live bucket kept what it had spent";
  write(good);
  auto r = restore(kSec);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(state_->rules().value().size(), 2u) << "the snapshot's rule beside the live one";
}

// A blocklist entry with bits set past its prefix is no prefix: the file is
// refused as corrupt. (It was read as it was, and restored: 198.18.5.9/24
// blocked 198.18.5.0 to 198.18.6.8, and 255.255.255.0/23 sent the loader's
// walk of its /24s past the end of its table.)
TEST_F(Snapshots, AListEntryWithBitsPastItsPrefixIsRefused) {
  ASSERT_TRUE(state_->load_blocklist("drop", {*parse_cidr("198.18.5.0/24")}).has_value());
  save(kSec);
  std::ifstream in(path_, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  // The list's one entry is the last record, before the digest.
  const size_t entry = bytes.size() - kSnapshotDigest - sizeof(xt_block_entry);
  xt_block_entry e{};
  std::memcpy(&e, bytes.data() + entry, sizeof(e));
  ASSERT_EQ(e.family, XT_FAMILY_V4);
  ASSERT_EQ(e.len, 24);
  for (const auto& [addr, len] : {std::pair<std::array<uint8_t, 4>, uint8_t>{{198, 18, 5, 9}, 24},
                                  {{255, 255, 255, 0}, 23}}) {
    e.len = len;
    std::memcpy(e.addr, addr.data(), 4);
    std::memcpy(bytes.data() + entry, &e, sizeof(e));
    bytes.resize(bytes.size() - kSnapshotDigest);
    Sha256 digest;
    digest.update(bytes);
    bytes += digest.bytes();
    std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes;
    auto file = read_snapshot(path_);
    ASSERT_FALSE(file.has_value()) << "read with an entry /" << int(len) << " with bits past it";
    EXPECT_NE(file.error().message.find("no prefix"), std::string::npos) << file.error().message;
  }
}

// A snapshot saved before the header named the source table (no
// max_sources, no idle_seconds; the format version is the same) still
// restores, and leaves the table unset, so a state it makes gets the
// defaults.
TEST_F(Snapshots, AnOlderSnapshotWithoutTheTableStillRestores) {
  rule("198.18.0.0/15", "10/min", 10);
  EXPECT_EQ(passed(from("198.18.0.9"), 6, kSec), 6);
  save(kSec);
  auto saved = read_snapshot(path_);
  ASSERT_TRUE(saved.has_value()) << saved.error().message;
  ASSERT_TRUE(saved->table.max_sources.has_value());
  ASSERT_TRUE(saved->table.idle_seconds.has_value());

  // The same file as the older build wrote it: the header without the two
  // keys, the lengths and the checksum made again.
  std::ifstream in(path_, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint32_t header_len = 0;
  std::memcpy(&header_len, bytes.data() + 12, sizeof(header_len));
  auto header = nlohmann::json::parse(bytes.substr(kSnapshotFixed, header_len));
  ASSERT_EQ(header.erase("max_sources"), 1u);
  ASSERT_EQ(header.erase("idle_seconds"), 1u);
  const std::string older_header = header.dump();
  const uint32_t older_len = static_cast<uint32_t>(older_header.size());
  std::string older = bytes.substr(0, 12);
  older.append(reinterpret_cast<const char*>(&older_len), sizeof(older_len));
  older += older_header;
  older += bytes.substr(kSnapshotFixed + header_len, bytes.size() - kSnapshotFixed - header_len - kSnapshotDigest);
  Sha256 digest;
  digest.update(older);
  older += digest.bytes();
  std::ofstream(path_, std::ios::binary | std::ios::trunc) << older;

  auto file = read_snapshot(path_);
  ASSERT_TRUE(file.has_value()) << file.error().message;
  EXPECT_FALSE(file->table.max_sources.has_value());
  EXPECT_FALSE(file->table.idle_seconds.has_value());
  reboot(kSec);
  auto r = restore(kSec);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(state_->rules().value().size(), 1u);
  // The quota part used is part used: 4 of the burst's 10 left.
  EXPECT_EQ(passed(from("198.18.0.9"), 10, kSec), 4);
}

// A source throttled for 5 s at the save, restored two minutes later: its
// throttle goes on from 5 s, not from 5 s plus the time the host was down
// (when it may not have sent at all). With the downtime counted, a rule
// with --ban-after 60s banned it at its first drop after the restore.
TEST_F(Snapshots, ARestoredThrottleDoesNotCountTheDowntime) {
  auto limit = [](RuleSpec& s) {
    s.ban_after = 60;
    s.ban_for = 3600;
  };
  rule("198.18.0.0/15", "10/s", 10, limit);
  const auto heavy = from("198.18.0.9");
  const uint64_t t1 = 1000 * kSec;
  for (uint64_t now = t1; now < t1 + 5 * kSec; now += 10) run(heavy, now);
  ASSERT_GT(counter(XT_DROP_LIMIT), 0u) << "throttled";
  ASSERT_EQ(counter(XT_DROP_BANNED), 0u);
  save(t1 + 5 * kSec);

  const uint64_t t2 = 50 * kSec;
  reboot(t2);
  skel_->bss->xt_test_now = t2;
  auto restored = restore_saved_earlier(120);  // saved two minutes ago
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  ASSERT_EQ(restored->buckets, 1u);
  const uint64_t dropped = counter(XT_DROP_LIMIT);  // the snapshot's, restored
  for (uint64_t now = t2; now < t2 + 10 * kSec; now += 10) run(heavy, now);
  EXPECT_GT(counter(XT_DROP_LIMIT), dropped) << "still throttled";
  EXPECT_EQ(counter(XT_DROP_BANNED), 0u) << "5 s + 10 s of its 60 s, not 2 minutes more";
  for (uint64_t now = t2 + 10 * kSec; now < t2 + 60 * kSec; now += 10) run(heavy, now);
  EXPECT_GT(counter(XT_DROP_BANNED), 0u) << "banned once its 60 s are up";
}

// The room for bans is counted in bans in force: the snapshot's ended
// since it was saved are left out of the restore, and the table's ended
// ones go before the restore's go in. Counted, 40,000 ten-minute bans
// saved a day ago, beside 30,000 live ones in force and 20,000 ended,
// refused the whole snapshot: more than the table's 65,536.
TEST_F(Snapshots, BansThatHaveEndedTakeNoRoom) {
  auto host = [](uint32_t n) {
    return *parse_cidr("10." + std::to_string(n >> 16 & 255) + "." + std::to_string(n >> 8 & 255) + "." +
                       std::to_string(n & 255));
  };
  const uint64_t t = 1000 * kSec;
  rule("198.18.0.0/15", "10/s");
  skel_->bss->xt_test_now = t;
  std::vector<std::pair<Cidr, xt_ban>> saved, live;
  for (uint32_t n = 0; n < 40'000; n++) saved.emplace_back(host(n), xt_ban{t + 600 * kSec, t, 0, 0});
  ASSERT_TRUE(state_->put_bans(saved).has_value());
  save(t);
  reboot(t);
  for (uint32_t n = 0; n < 50'000; n++)
    live.emplace_back(host(100'000 + n), xt_ban{n < 30'000 ? t + 3600 * kSec : t - 1, t - 2, 0, 0});
  ASSERT_TRUE(state_->put_bans(live).has_value());
  auto restored = restore_saved_earlier(86400);  // saved a day ago
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(restored->rules, 1u);
  EXPECT_EQ(restored->bans, 0u);
  size_t in_force = 0;
  const auto bans = state_->bans().value();
  for (const auto& b : bans) in_force += b.ban.until > t;
  EXPECT_EQ(in_force, 30'000u);
}

// A restore by hand leaves a live ban that ends later than the snapshot's
// on the same prefix: an operator's 30-day ban was cut to the ten minutes
// the snapshot had left (and its owner changed with it).
TEST_F(Snapshots, ARestoreKeepsALiveBanThatEndsLater) {
  const Cidr x = *parse_cidr("198.18.9.0/24");
  const uint64_t t = 1000 * kSec;
  skel_->bss->xt_test_now = t;
  ASSERT_TRUE(state_->add_ban(x, 600).has_value());
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.18.10.0/24"), 600).has_value());
  save(t);
  ASSERT_TRUE(state_->add_ban(x, 30 * 86400).has_value());
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.18.10.0/24"), 60).has_value());
  auto restored = restore(t + kSec);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  std::map<std::string, uint64_t> left;
  const auto bans = state_->bans().value();  // kept: a loop over a temporary's value() would dangle
  for (const auto& b : bans) left[format_cidr(b.cidr)] = b.ban.until - (t + kSec);
  EXPECT_GE(left["198.18.9.0/24"], 30 * 86400 * kSec - 2 * kSec) << "the longer live ban stays";
  EXPECT_LE(left["198.18.10.0/24"], 600 * kSec);
  EXPECT_GE(left["198.18.10.0/24"], 590 * kSec) << "a live ban that ends sooner gives way to the snapshot's";
  EXPECT_EQ(restored->bans, 2u) << "both in force as the snapshot has them, or longer";
}

// A restore by hand to get back a ban lifted by mistake: the source, held
// meanwhile by the hot cache for its deny rule, stayed dropped as denied
// (and sent to the rule's --over interface, if it has one) until the rules
// next changed. The bans a restore puts back start a new epoch.
TEST_F(Snapshots, ABanRestoredOverADenyRulesHeldSourceIsTheBans) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  rule("198.18.9.0/24", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  const uint64_t t = 1000 * kSec;
  skel_->bss->xt_test_now = t;
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.18.9.1/32"), 600).has_value());
  save(t);
  ASSERT_TRUE(state_->del_ban(*parse_cidr("198.18.9.1/32")).has_value()) << "lifted by mistake";
  EXPECT_EQ(passed(from("198.18.9.1"), 2, t), 0);
  ASSERT_EQ(counter(XT_DROP_DENY), 2u) << "denied, then held for the deny rule";
  auto restored = restore(t + kSec);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  ASSERT_EQ(restored->bans, 1u);
  EXPECT_EQ(passed(from("198.18.9.1"), 1, t + kSec), 0);
  EXPECT_EQ(counter(XT_DROP_BANNED), 1u) << "dropped as the ban's";
  EXPECT_EQ(counter(XT_DROP_DENY), 2u);
}

// A save killed before its rename leaves FILE.tmp.PID, as large as a
// snapshot; the next save has another PID and never writes it again. A
// save removes those of PIDs no process has, and nothing else.
TEST_F(Snapshots, ASaveRemovesWhatADeadSaveLeft) {
  rule("198.18.0.0/15", "10/s");
  pid_t dead = 4'000'000;
  while (dead > 1 && !(::kill(dead, 0) != 0 && errno == ESRCH)) dead--;
  const std::string orphan = path_ + ".tmp." + std::to_string(dead);
  const std::string live = path_ + ".tmp." + std::to_string(getppid());
  const std::string other = path_ + ".tmp.old";
  pid_t dead2 = dead - 1;
  while (dead2 > 1 && !(::kill(dead2, 0) != 0 && errno == ESRCH)) dead2--;
  const std::string recent = path_ + ".tmp." + std::to_string(dead2);
  for (const auto& f : {orphan, live, other, recent}) std::ofstream(f) << "part of a snapshot";
  const auto two_hours_ago = std::filesystem::file_time_type::clock::now() - std::chrono::hours(2);
  for (const auto& f : {orphan, live, other}) std::filesystem::last_write_time(f, two_hours_ago);
  save(kSec);
  EXPECT_FALSE(std::filesystem::exists(orphan)) << "no process has PID " << dead;
  EXPECT_TRUE(std::filesystem::exists(live)) << "a save under way, perhaps";
  EXPECT_TRUE(std::filesystem::exists(other)) << "not a save's";
  EXPECT_TRUE(std::filesystem::exists(recent)) << "written within the hour: a save in another PID namespace, perhaps";
  EXPECT_TRUE(std::filesystem::exists(path_));
}

}  // namespace
}  // namespace xt
