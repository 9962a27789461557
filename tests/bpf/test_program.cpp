// SPDX-License-Identifier: MIT
// The real XDP object through BPF_PROG_TEST_RUN: crafted frames in, verdicts
// and counters out, with a clock the test sets (xt_test_now_ns). Every test
// loads a fresh object with private, unpinned maps, so order never matters.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <thread>
#include <optional>
#include <ranges>
#include <set>

#include "object.h"
#include "packet.h"
#include <arpa/inet.h>

#include "program.h"
#include "keys.h"
#include "meter.h"
#include "parse.h"
#include "policy.h"
#include "rules.h"
#include "require.h"
#include "state.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;
using test::nth_source;
using test::kMs;
using test::kSec;
using test::kHz;

TEST_F(Program, VerdictTable) {
  load();
  rule("198.18.0.0/15", "1000/s");
  rule("198.18.5.0/24", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_ALLOW; });
  rule("198.18.6.0/24", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  rule("2001:db8::/32", "1000/s");

  struct Case {
    const char* name;
    std::vector<uint8_t> frame;
    int action;
    xt_reason reason;
  } cases[] = {
      {"ipv4 within limit", Packet().ipv4("198.18.0.1").build(), XDP_PASS, XT_PASS_LIMIT},
      {"ipv6 within limit", Packet().ipv6("2001:db8::1").build(), XDP_PASS, XT_PASS_LIMIT},
      {"802.1Q ipv4", Packet().vlan(10).ipv4("198.18.0.2").build(), XDP_PASS, XT_PASS_LIMIT},
      {"QinQ ipv6", Packet().vlan(20, 0x88A8).vlan(10).ipv6("2001:db8::2").build(), XDP_PASS, XT_PASS_LIMIT},
      {"allow rule", Packet().ipv4("198.18.5.9").build(), XDP_PASS, XT_PASS_ALLOW},
      {"deny rule", Packet().ipv4("198.18.6.9").build(), XDP_DROP, XT_DROP_DENY},
      {"deny rule under QinQ", Packet().vlan(1, 0x88A8).vlan(2).ipv4("198.18.6.1").build(), XDP_DROP, XT_DROP_DENY},
      {"no rule (ipv4)", Packet().ipv4("192.0.2.1").build(), XDP_PASS, XT_PASS_UNMATCHED},
      {"no rule (ipv6)", Packet().ipv6("2001:db9::1").build(), XDP_PASS, XT_PASS_UNMATCHED},
      {"arp", Packet().ethertype(0x0806).build(), XDP_PASS, XT_PASS_NON_IP},
      {"arp under QinQ", Packet().vlan(1, 0x88A8).vlan(2).ethertype(0x0806).build(), XDP_PASS, XT_PASS_NON_IP},
      {"three VLAN tags", Packet().vlan(1).vlan(2).vlan(3).ipv4("198.18.5.1").build(), XDP_DROP, XT_DROP_MALFORMED},
      {"ipv4 total length below the header", Packet().ipv4("198.18.5.1").total_length(12).build(), XDP_DROP,
       XT_DROP_MALFORMED},
      {"ipv4 options", Packet().ihl(15).ipv4("198.18.6.2").build(), XDP_DROP, XT_DROP_DENY},
      {"ipv4 later fragment", Packet().ipv4("198.18.6.3").fragment(185, false).build(), XDP_DROP, XT_DROP_DENY},
      {"ipv6 extension headers", Packet().ipv6("2001:db8::3").ext(0).ext(43).ext(60).ext(44).build(), XDP_PASS,
       XT_PASS_LIMIT},
      {"minimum frame", Packet().ipv4("198.18.6.4").size(60).build(), XDP_DROP, XT_DROP_DENY},
      {"truncated ipv4", Packet().ipv4("198.18.6.1").size(14 + 19).build(), XDP_DROP, XT_DROP_MALFORMED},
      {"truncated ipv6", Packet().ipv6("2001:db8::1").size(14 + 39).build(), XDP_DROP, XT_DROP_MALFORMED},
      {"truncated VLAN tag", Packet().vlan(5).ipv4("198.18.0.1").size(16).build(), XDP_DROP, XT_DROP_MALFORMED},
      {"ipv4 ihl below 5", Packet().ihl(3).ipv4("198.18.0.1").build(), XDP_DROP, XT_DROP_MALFORMED},
  };
  for (const auto& c : cases) {
    const uint64_t before = counter(c.reason);
    EXPECT_EQ(run(c.frame), c.action) << c.name;
    EXPECT_EQ(counter(c.reason), before + 1) << c.name << ": counted under the wrong reason";
  }
}

// An attacker cannot split a source's budget by fragmenting or by wrapping
// packets in extension headers: first and later fragments, bare or behind a
// chain, all draw from the one bucket of their source.
TEST_F(Program, FragmentsAndExtensionHeadersShareTheSourceBudget) {
  load();
  rule("198.18.0.0/15", "1/s", 4);
  rule("2001:db8::/32", "1/s", 4, [](RuleSpec& s) { s.per = 128; });
  EXPECT_EQ(run(Packet().ipv4("198.18.2.1").fragment(0, true).build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv4("198.18.2.1").fragment(185, true).build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ihl(6).ipv4("198.18.2.1").fragment(370, false).build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv4("198.18.2.1").build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv4("198.18.2.1").fragment(555, false).build()), XDP_DROP) << "the burst of 4 is spent";

  EXPECT_EQ(run(Packet().ipv6("2001:db8::5").ext(44).build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv6("2001:db8::5").ext(0).ext(44).build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv6("2001:db8::5").ext(0).ext(43).ext(60).build()), XDP_PASS);
  Packet long_chain;
  long_chain.ipv6("2001:db8::5");
  for (int i = 0; i < 64; i++) long_chain.ext(60);
  EXPECT_EQ(run(long_chain.build()), XDP_PASS);
  EXPECT_EQ(run(long_chain.build()), XDP_DROP) << "a chain longer than anything followed is still limited";
  EXPECT_EQ(buckets(), 2u);
}

// Jumbo frames arrive in several buffers; the program for a jumbo MTU meters
// and counts their whole length, not just the first buffer's.
TEST_F(Program, JumboFramesAreMeteredWhole) {
  load(XT_MIN_MAX_SOURCES, /*frags=*/true);
  rule("198.18.0.0/15", std::nullopt, std::nullopt, [](RuleSpec& s) {
    s.bandwidths = {*parse_bandwidth("27042B/s")};  // three 9014-byte frames a second
    s.burst_bytes = {3 * 9014};
  });
  const auto jumbo = Packet().ipv4("198.18.9.1").size(9014).build();
  EXPECT_EQ(passed(jumbo, 5), 3);
  EXPECT_EQ(passed(Packet().ipv4("198.18.9.2").size(60).build(), 5), 5) << "another source, small frames";
  const xt_rule_stats s = rule_stats("198.18.0.0/15");
  EXPECT_EQ(s.passed_bytes, 3u * 9014 + 5u * 60);
  EXPECT_EQ(s.dropped_bytes, 2u * 9014);
  EXPECT_EQ(run(Packet().ipv4("198.18.9.3").size(59).build()), XDP_PASS) << "below the Ethernet minimum is fine";
  EXPECT_EQ(run(Packet().ipv4("198.18.9.3").size(33).build()), XDP_DROP) << "a cut IPv4 header is not";
}

TEST_F(Program, BurstThenRefillByTheClock) {
  load();
  rule("198.18.0.0/15", "10/s", 5);
  const auto frame = Packet().ipv4("198.18.1.1").build();
  EXPECT_EQ(passed(frame, 8, 0), 5) << "burst of 5";
  EXPECT_EQ(passed(frame, 3, 99 * kMs), 0) << "a token takes 100 ms";
  EXPECT_EQ(passed(frame, 3, 100 * kMs), 1);
  EXPECT_EQ(passed(frame, 10, 10 * kSec), 5) << "a long pause refills to the burst, not beyond";
  EXPECT_EQ(passed(frame, 1, 10 * kSec - 50 * kMs), 0) << "a CPU whose clock is behind sees no fresh tokens";
  EXPECT_EQ(passed(frame, 1, 10 * kSec + 50 * kMs), 0) << "nor is the time since credited twice";
  EXPECT_EQ(passed(frame, 1, 10 * kSec + 100 * kMs), 1);

  const xt_rule_stats s = rule_stats("198.18.0.0/15");
  EXPECT_EQ(s.passed_packets, 12u);
  EXPECT_EQ(s.dropped_packets, 15u);
  EXPECT_EQ(counter(XT_DROP_LIMIT), 15u);
  EXPECT_EQ(s.passed_bytes, 12u * frame.size());
}

TEST_F(Program, SourcesHaveTheirOwnBuckets) {
  load();
  rule("198.18.0.0/15", "1/s", 2);
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 5), 2);
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.2").build(), 5), 2);
  EXPECT_EQ(buckets(), 2u);
}

TEST_F(Program, PerTwentyFourSharesOneBudget) {
  load();
  rule("198.18.0.0/15", "1/s", 3, [](RuleSpec& s) { s.per = 24; });
  EXPECT_EQ(run(Packet().ipv4("198.18.7.1").build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv4("198.18.7.2").build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv4("198.18.7.200").build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv4("198.18.7.3").build()), XDP_DROP) << "the /24 shares one burst of 3";
  EXPECT_EQ(run(Packet().ipv4("198.18.8.1").build()), XDP_PASS) << "another /24, another budget";
  EXPECT_EQ(buckets(), 2u);
}

TEST_F(Program, PerZeroIsOneGlobalCap) {
  load();
  rule("198.18.0.0/15", "1/s", 2, [](RuleSpec& s) { s.per = 0; });
  EXPECT_EQ(run(Packet().ipv4("198.18.0.1").build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv4("198.19.255.1").build()), XDP_PASS);
  EXPECT_EQ(run(Packet().ipv4("198.18.100.1").build()), XDP_DROP);
  EXPECT_EQ(buckets(), 1u);
}

TEST_F(Program, FamiliesNeverCrossMatch) {
  load();
  rule("0.0.0.0/0", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  EXPECT_EQ(run(Packet().ipv6("2001:db8::1").build()), XDP_PASS) << "0.0.0.0/0 does not cover IPv6";
  EXPECT_EQ(run(Packet().ipv6("::ffff:198.18.0.1").build()), XDP_PASS) << "nor a v4-mapped IPv6 source";
  EXPECT_EQ(counter(XT_PASS_UNMATCHED), 2u);
  EXPECT_EQ(run(Packet().ipv4("198.18.0.1").build()), XDP_DROP);

  rule("::/0", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  ASSERT_TRUE(state_->del_rule(*parse_cidr("0.0.0.0/0")).has_value());
  EXPECT_EQ(run(Packet().ipv4("198.18.0.1").build()), XDP_PASS) << "::/0 does not cover IPv4";
  EXPECT_EQ(run(Packet().ipv6("::ffff:198.18.0.1").build()), XDP_DROP) << "v4-mapped is IPv6";
}

TEST_F(Program, LongestPrefixWins) {
  load();
  rule("198.18.0.0/15", "1/s", 1);
  rule("198.18.4.0/22", "1/s", 3);
  rule("198.18.4.4/32", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_ALLOW; });
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 5), 1);
  EXPECT_EQ(passed(Packet().ipv4("198.18.5.1").build(), 5), 3);
  EXPECT_EQ(passed(Packet().ipv4("198.18.4.4").build(), 5), 5);
}

TEST_F(Program, DryRunCountsButPasses) {
  load();
  rule("198.18.0.0/15", "1/s", 2, [](RuleSpec& s) { s.dry_run = true; });
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 10), 10);
  const xt_rule_stats s = rule_stats("198.18.0.0/15");
  EXPECT_EQ(s.passed_packets, 10u);
  EXPECT_EQ(s.dropped_packets, 0u);
  EXPECT_EQ(s.dryrun_packets, 8u) << "what the limit would have dropped";
  EXPECT_EQ(counter(XT_PASS_DRY_RUN), 8u);

  rule("198.18.9.0/24", std::nullopt, std::nullopt, [](RuleSpec& spec) {
    spec.action = XT_ACT_DENY;
    spec.dry_run = true;
  });
  EXPECT_EQ(run(Packet().ipv4("198.18.9.9").build()), XDP_PASS);
  EXPECT_EQ(rule_stats("198.18.9.0/24").dryrun_packets, 1u);
}

TEST_F(Program, BandwidthAndPacketLimitsTogether) {
  load();
  rule("2001:db8::/32", "100/s", 100, [](RuleSpec& s) {
    s.bandwidths = {*parse_bandwidth("80kbit/s")};  // 10000 bytes/s
    s.burst_bytes = {1000};
  });
  const auto small = Packet().ipv6("2001:db8::1").size(100).build();
  EXPECT_EQ(passed(small, 20), 10) << "the byte burst (1000 B) binds first";
  EXPECT_EQ(passed(small, 20, 10 * kMs), 1) << "10 ms refills 100 bytes";
}

TEST_F(Program, ReplaceInPlaceKeepsBucketsAndCounters) {
  load();
  rule("198.18.0.0/15", "10/s", 10);
  const auto frame = Packet().ipv4("198.18.0.1").build();
  EXPECT_EQ(passed(frame, 12), 10);
  const uint32_t id = state_->rules().value().at(0).rule.id;

  rule("198.18.0.0/15", "10/s", 20);  // same CIDR: replaced, not added
  ASSERT_EQ(state_->rules().value().size(), 1u);
  EXPECT_EQ(state_->rules().value().at(0).rule.id, id);
  EXPECT_EQ(passed(frame, 5), 0) << "the drained bucket stays drained under the new limit";
  EXPECT_EQ(passed(frame, 30, 2 * kSec), 20) << "and refills to the new burst";
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 30u) << "counters carry on";
}

TEST_F(Program, DeletingARuleFreesItsBuckets) {
  load();
  rule("198.18.0.0/15", "10/s", 1);
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 3), 1);
  EXPECT_EQ(buckets(), 1u);
  ASSERT_TRUE(state_->del_rule(*parse_cidr("198.18.0.0/15")).has_value());
  EXPECT_EQ(buckets(), 0u);
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 3), 3);
  EXPECT_EQ(counter(XT_PASS_UNMATCHED), 3u);
}


TEST_F(Program, NewSourceBudgetBoundsWhatIsTrackedAndStateCreated) {
  load();
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("10/s"); });
  int passed_new = 0;
  for (int i = 0; i < 100; i++) passed_new += run(Packet().ipv4(nth_source(i)).build(), 0) == XDP_PASS;
  EXPECT_EQ(passed_new, 10) << "a burst of 10 new sources, then none";
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 90u);
  EXPECT_EQ(rule_stats("198.18.0.0/15").new_source_dropped_packets, 90u);
  EXPECT_EQ(buckets(), 10u) << "a dropped newcomer creates no state";
  EXPECT_EQ(passed(Packet().ipv4(nth_source(0)).build(), 5, 1), 5) << "the ten admitted are tracked and metered";
  int later = 0;
  for (int i = 200; i < 300; i++) later += run(Packet().ipv4(nth_source(i)).build(), 1 * kSec) == XDP_PASS;
  EXPECT_EQ(later, 10) << "a second later, ten more";
}

TEST_F(Program, BucketTableIsBounded) {
  const uint32_t max = XT_MIN_MAX_SOURCES;
  load(max);
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  const int sources = 5000;
  for (int i = 0; i < sources; i++) run(Packet().ipv4(nth_source(i)).build(), i);
  const size_t tracked = buckets();
  EXPECT_LE(tracked, size_t{max / XT_SOURCES_PER_SET} * XT_BUCKET_WAYS) << "no more than the table's ways, whatever the flood";
  EXPECT_GT(tracked, max / 2) << "the table uses its room";
  EXPECT_EQ(counter(XT_SOURCES_EVICTED), sources - tracked) << "each source not tracked was evicted, and counted";
  EXPECT_EQ(counter(XT_DROP_NO_STATE), 0u) << "making room never failed";
  // The least recently used make room: the last sources are all there.
  std::set<std::string> present;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) { present.insert(format_addr(e.key.family, e.key.addr)); }));
  for (int i = sources - 64; i < sources; i++) EXPECT_TRUE(present.contains(nth_source(i))) << nth_source(i);
}

// A source held over a slow limit (1/hour) that keeps sending is dropped by
// the hot cache, which never touches its slot's `used` stamp. An hour
// later its next token is due and must pass, though the new-source budget
// (1/day) is spent: the source is tracked, not new. Failed while the hot
// cache held a source for its whole wait: its slot went idle after 60 s
// and the packet at the hour was refused as a new source's.
TEST_F(Program, ASourceHeldLongerThanTheIdleWindowStaysTracked) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "1/hour", 1, [](RuleSpec& s) { s.new_rate = *parse_rate("1/day"); });
  const auto frame = Packet().ipv4("198.18.0.7").build();
  ASSERT_EQ(run(frame, 0), XDP_PASS);  // the day's newcomer, and its burst of one
  int passed = 0;
  for (uint64_t t = 5; t <= 3700; t += 5) passed += run(frame, t * kHz) == XDP_PASS;
  EXPECT_EQ(passed, 1) << "its next token, at the hour";
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 0u) << "taken for a new source while sending all along";
}

// A source sending under its limit before and during a flood of one-packet
// spoofed sources that churns the whole table keeps its bucket and its
// traffic: the flood's newcomers are the least recently used, not it.
TEST_F(Program, EstablishedSourceSurvivesChurn) {
  load(XT_MIN_MAX_SOURCES);
  // An admission budget large enough to churn the table ten times over.
  rule("198.18.0.0/15", "100/s", 10, [](RuleSpec& s) { s.new_rate = *parse_rate("100000/s"); });
  const auto legit = Packet().ipv4("198.18.200.200").build();
  int legit_sent = 0, legit_passed = 0;
  uint64_t now = 0;
  for (int i = 0; i < 20000; i++) {
    if (i % 20 == 0) {  // the legitimate source: 50/s, under its 100/s
      legit_sent++;
      legit_passed += run(legit, now) == XDP_PASS;
    }
    run(Packet().ipv4(nth_source(i)).build(), now);
    now = i / 1;  // one spoofed packet a tick
  }
  EXPECT_EQ(legit_passed, legit_sent) << "no loss for the established source";
  // And not by luck: had its bucket been evicted, the generous budget would
  // have readmitted it with a fresh one. Its bucket saw every packet.
  uint64_t legit_bucket_passed = 0;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    if (format_addr(e.key.family, e.key.addr) == "198.18.200.200") legit_bucket_passed = e.bucket.passed_packets;
  }));
  EXPECT_EQ(legit_bucket_passed, static_cast<uint64_t>(legit_sent)) << "its bucket was never evicted";
  EXPECT_GT(counter(XT_PASS_LIMIT), 10000u) << "the flood really did churn the table";
}

TEST_F(Program, UntrackedAgainAfterTheIdleWindow) {
  load();
  // Without memory (--remember 0): a source that behaved would otherwise be
  // let back in outside the budget (bpf Proof.AReturningClientIsRemembered).
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) {
    s.new_rate = *parse_rate("1/day");
    s.remember = 0;
  });
  const auto frame = Packet().ipv4("198.18.0.1").build();
  EXPECT_EQ(run(frame, 0), XDP_PASS) << "admitted by the budget's burst of 1";
  EXPECT_EQ(run(frame, (XT_DEFAULT_IDLE_SECONDS - 2) * kSec), XDP_PASS) << "still tracked";
  EXPECT_EQ(run(Packet().ipv4("198.18.0.2").build(), 1), XDP_DROP) << "budget spent";
  EXPECT_EQ(run(frame, (2 * XT_DEFAULT_IDLE_SECONDS + 2) * kSec), XDP_DROP)
      << "idle past the window: untracked, so the (spent) new-source budget decides";
}

// A slot's 16-bit `used` stamp wraps: idle for a whole cycle (65,536 units,
// 262 s at the default idle window), its source read as used again and
// passed, tracked, where the spent budget should have decided. xt_age,
// which serve runs every 30 s, keeps idle stamps short of the wrap.
TEST_F(Program, AStampIdleForAWholeCycleStaysIdleWhenAged) {
  load();
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) {
    s.new_rate = *parse_rate("1/day");
    s.remember = 0;
  });
  const xt_config cfg = state_->config().value();
  const uint64_t cycle = uint64_t{65536} << cfg.used_shift;
  const auto frame = Packet().ipv4("198.18.0.1").build();
  ASSERT_EQ(run(frame, 0), XDP_PASS) << "admitted by the budget's burst of 1";
  // A stamp a little ahead of the walk's clock (written by another CPU
  // after the walk read it) is in use: it took such a one for a cycle old.
  ASSERT_EQ(run(frame, 10 * kSec), XDP_PASS);
  skel_->bss->xt_test_now = 10 * kSec - (uint64_t{2} << cfg.used_shift);
  EXPECT_EQ(state_->age_stamps().value().stamps, 0u) << "a stamp ahead of the walk is not aged";
  const uint64_t used = 10 * kSec + 1;
  EXPECT_EQ(run(frame, used), XDP_PASS) << "still tracked";
  EXPECT_EQ(run(frame, used + cycle), XDP_PASS) << "without ageing, idle for a cycle reads as used: the wrap";
  // As serve does: every 30 s.
  uint64_t aged = 0;
  const uint64_t every = age_every_seconds(cfg) * kSec;
  EXPECT_EQ(every, 30 * kSec) << "the default window";
  for (uint64_t t = used + cycle + every; t < used + 2 * cycle; t += every) {
    skel_->bss->xt_test_now = t;
    aged += state_->age_stamps().value().stamps;
  }
  EXPECT_GE(aged, 1u) << "its stamp set back once it was idle";
  EXPECT_EQ(run(frame, used + 2 * cycle), XDP_DROP) << "aged: idle past the window, so the (spent) budget decides";
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 1u);
}

// xt_age set an idle stamp just past the window by its own clock: a CPU
// whose clock read a unit earlier found it exactly at the window's edge,
// tracked, and let the source past its spent budget and tracked it again.
TEST_F(Program, AnAgedStampIsIdleOnACPUWhoseClockIsBehind) {
  load();
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) {
    s.new_rate = *parse_rate("1/day");
    s.remember = 0;
  });
  const xt_config cfg = state_->config().value();
  const auto frame = Packet().ipv4("198.18.0.1").build();
  ASSERT_EQ(run(frame, 0), XDP_PASS) << "admitted by the budget's burst of 1";
  const uint64_t t = uint64_t{(2 * XT_DEFAULT_IDLE_SECONDS + 2) * kSec} >> cfg.used_shift << cfg.used_shift;
  skel_->bss->xt_test_now = t;
  ASSERT_EQ(state_->age_stamps().value().stamps, 1u);
  EXPECT_EQ(run(frame, t - 1), XDP_DROP) << "a unit behind the walk: idle still, so the (spent) budget decides";
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 1u);
}

TEST_F(Program, HotCacheDropsOnlyWhatTheBucketWould) {
  load();
  rule("198.18.0.0/15", "10/s", 2);
  const auto frame = Packet().ipv4("198.18.0.1").build();
  EXPECT_EQ(passed(frame, 50, 0), 2);
  EXPECT_EQ(passed(frame, 50, 99), 0) << "the hot cache holds the source until its next token";
  EXPECT_EQ(passed(frame, 50, 100), 1) << "and lets it through exactly then";
  const xt_rule_stats s = rule_stats("198.18.0.0/15");
  EXPECT_EQ(s.passed_packets, 3u);
  EXPECT_EQ(s.dropped_packets, 147u) << "drops in the hot cache are counted per rule";
  // Per-source drops reach the bucket when the source next gets that far.
  EXPECT_EQ(run(frame, 200), XDP_PASS);
  uint64_t bucket_drops = 0;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) { bucket_drops += e.bucket.dropped_packets; }));
  EXPECT_EQ(bucket_drops, 147u);

  // A rule change invalidates the cache at once: the drained source carries
  // its empty bucket over, and refills at the new rate from the change on.
  EXPECT_EQ(passed(frame, 5, 200), 0);
  rule("198.18.0.0/15", "1000/s", 1000);
  EXPECT_EQ(passed(frame, 10, 205), 5) << "5 ms at 1000/s";
}

// The hot cache's set of a source is read only while its bit in
// xt_hot_bitmap says it may hold something: set when an entry is filled,
// cleared (and the set's spent entries emptied) by the first lookup that
// finds nothing live and no drops to settle there. Verdicts and counts are
// those of the bucket throughout.
TEST_F(Program, TheHotCacheIsReadOnlyWhereItHoldsSomething) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  load();
  rule("198.18.0.0/15", "10/s", 2);
  const xt_config cfg = state_->config().value();
  const auto set_of = [&](const std::string& src) {
    xt_pkt pkt{};
    pkt.family = XT_FAMILY_V4;
    inet_pton(AF_INET, src.c_str(), pkt.addr);
    return XT_TOP_BITS(xt_hash_source(cfg.hash_key, &pkt, 0), cfg.hot_bits & 31);  // CPU 0's part
  };
  const auto bits = [&] {
    std::vector<uint32_t> set;
    const int fd = bpf_map__fd(skel_->maps.xt_hot_bitmap);
    for (uint32_t w = 0; w < (1u << cfg.hot_bits) / 64; w++) {
      uint64_t v = 0;
      EXPECT_EQ(bpf_map_lookup_elem(fd, &w, &v), 0);
      for (uint32_t b = 0; b < 64; b++)
        if (v >> b & 1) set.push_back(w * 64 + b);
    }
    return set;
  };
  // Another source in the same set as 198.18.0.1.
  const uint32_t heavy_set = set_of("198.18.0.1");
  std::string neighbour;
  for (uint32_t i = 2; i < (1u << 20) && neighbour.empty(); i++) {
    const std::string a = "198.18." + std::to_string(i >> 8 & 0xff) + "." + std::to_string(i & 0xff);
    if ((i >> 16) == 0 && set_of(a) == heavy_set) neighbour = a;
  }
  ASSERT_FALSE(neighbour.empty()) << "no address of 198.18.0.0/16 shares the heavy source's set";
  const auto heavy = Packet().ipv4("198.18.0.1").build(), other = Packet().ipv4(neighbour).build();

  EXPECT_EQ(passed(other, 1, 0), 1);
  EXPECT_TRUE(bits().empty()) << "nothing over a limit: no set to read";
  EXPECT_EQ(passed(heavy, 50, 0), 2);
  EXPECT_EQ(bits(), std::vector<uint32_t>{heavy_set}) << "the heavy source's set, once it is dropped";
  EXPECT_EQ(passed(heavy, 50, 99), 0) << "dropped from the hot cache until its next token";
  EXPECT_EQ(passed(other, 1, 99), 1) << "a source sharing the set is not held by the heavy one's entry";
  EXPECT_EQ(bits(), std::vector<uint32_t>{heavy_set}) << "the entry still drops, and has drops to settle";
  // Past the entry's tick, its drops settle when the heavy source passes;
  // then a lookup there finds nothing to read for.
  EXPECT_EQ(passed(heavy, 1, 100), 1);
  EXPECT_EQ(bits(), std::vector<uint32_t>{heavy_set}) << "its own lookup found its entry";
  EXPECT_EQ(passed(other, 1, 200), 1);
  EXPECT_TRUE(bits().empty()) << "nothing live, nothing to settle: cleared";
  // Over its limit again: its own spent entry was emptied, so it is filled
  // once, and counted exactly.
  EXPECT_EQ(passed(heavy, 50, 300), 2);
  EXPECT_EQ(passed(heavy, 10, 350), 0);
  EXPECT_EQ(bits(), std::vector<uint32_t>{heavy_set});
  EXPECT_EQ(passed(heavy, 1, 400), 1);
  uint64_t dropped = 0;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    if (e.key.addr[3] == 1) dropped += e.bucket.dropped_packets;
  }));
  EXPECT_EQ(dropped, 48u + 50 + 48 + 10) << "every drop reached the heavy source's bucket";
  EXPECT_EQ(rule_stats("198.18.0.0/15").dropped_packets, 48u + 50 + 48 + 10);
}

// A line of the hot cache holds four IPv4 sources over their limits, or two
// IPv6 ones, and a source whose line is full goes to the other line of its
// pair: each of them is then dropped there, its drops pending for its own
// bucket (as the controller reads them), and a source that finds no room
// in either is metered in its bucket, exactly as well. (Two-way lines held
// two IPv4 sources: a botnet's sources evicted each other.)
TEST_F(Program, APairOfLinesHoldsEightIPv4SourcesOrFourIPv6) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  load();
  rule("198.18.0.0/15", "10/s", 2);
  rule("2001:db8::/32", "10/s", 2);
  const xt_config cfg = state_->config().value();
  const uint32_t bits4 = cfg.hot_bits, bits6 = cfg.hot_bits - XT_HOT_V6_SHIFT;
  const uint32_t v6_base = static_cast<uint32_t>(libbpf_num_possible_cpus()) << bits4;
  // Sources whose lines are one pair (CPU 0's part), in the order found:
  // the first `want`, and the line of each.
  struct Source {
    std::string addr;
    uint32_t line;
  };
  const auto sharing = [&](int family, size_t want) {
    std::map<uint32_t, std::vector<Source>> by_pair;
    for (uint32_t i = 1; i < (1u << 17); i++) {
      char a[INET6_ADDRSTRLEN];
      if (family == AF_INET)
        std::snprintf(a, sizeof(a), "198.%u.%u.%u", 18 + (i >> 16), i >> 8 & 0xff, i & 0xff);
      else
        std::snprintf(a, sizeof(a), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);  // a /64 each
      xt_pkt pkt{};
      pkt.family = family == AF_INET ? XT_FAMILY_V4 : XT_FAMILY_V6;
      EXPECT_EQ(inet_pton(family, a, pkt.addr), 1) << a;
      const uint64_t h = xt_hash_source(cfg.hash_key, &pkt, 0);
      const uint32_t line = family == AF_INET ? XT_TOP_BITS(h, bits4) : v6_base + XT_TOP_BITS(h, bits6);
      auto& v = by_pair[line >> 1];
      v.push_back({a, line});
      if (v.size() == want) return v;
    }
    return std::vector<Source>{};
  };
  const auto nine = sharing(AF_INET, 9);
  const auto five = sharing(AF_INET6, 5);
  ASSERT_EQ(nine.size(), 9u);
  ASSERT_EQ(five.size(), 5u);
  for (const auto& s : nine) EXPECT_EQ(passed(Packet().ipv4(s.addr).build(), 50, 0), 2) << s.addr;
  for (const auto& s : five) EXPECT_EQ(passed(Packet().ipv6(s.addr).build(), 50, 0), 2) << s.addr;

  // Who holds the pair's slots: the first eight IPv4 sources, the first
  // four IPv6 ones.
  const auto held = [&](uint32_t pair_line, bool v6) {
    std::set<std::string> out;
    for (const uint32_t line : {pair_line & ~1u, pair_line | 1u}) {
      xt_hot_set set{};
      EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xt_hot), &line, &set), 0);
      for (int i = 0; i < 4; i += v6 ? 2 : 1) {
        if (!(set.slot[i].who & XT_HOT_USED)) continue;
        char text[INET6_ADDRSTRLEN];
        inet_ntop(v6 ? AF_INET6 : AF_INET, v6 ? static_cast<const void*>(&set.slot[i + 1]) : set.slot[i].addr, text,
                  sizeof(text));
        out.insert(text);
      }
    }
    return out;
  };
  std::set<std::string> first8, first4;
  for (size_t i = 0; i < 8; i++) first8.insert(nine[i].addr);
  for (size_t i = 0; i < 4; i++) first4.insert(five[i].addr);
  EXPECT_EQ(held(nine[0].line, false), first8);
  EXPECT_EQ(held(five[0].line, true), first4);
  // Each held source's first drop is its bucket's, the other 47 wait in
  // its entry; the sources without room have all 48 in their buckets.
  const PendingDrops pending = state_->hot_pending().value();
  ASSERT_EQ(pending.size(), 12u);
  for (const auto& [key, n] : pending) EXPECT_EQ(n, 47u) << "source " << key.addr[3];
  // Past their next token, each passes once and its drops settle.
  for (const auto& s : nine) EXPECT_EQ(passed(Packet().ipv4(s.addr).build(), 1, 100), 1) << s.addr;
  for (const auto& s : five) EXPECT_EQ(passed(Packet().ipv6(s.addr).build(), 1, 100), 1) << s.addr;
  EXPECT_TRUE(state_->hot_pending().value().empty());
  int buckets = 0;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    EXPECT_EQ(e.bucket.dropped_packets, 48u);
    EXPECT_EQ(e.bucket.passed_packets, 3u);
    buckets++;
  }));
  EXPECT_EQ(buckets, 14);
}

// An entry that drops its source for good (a deny rule's) keeps its whole
// epoch: entries keep the low 16 bits of the epoch they were filled in,
// and such an entry would otherwise drop its source again 65,536 rule
// changes later, whatever the rules say then.
TEST_F(Program, ADenyEntryDoesNotComeBack65536RuleChangesLater) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  load();
  rule("198.18.0.0/15", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  const uint32_t denied_at = state_->config().value().epoch;
  const auto frame = Packet().ipv4("198.18.0.1").build();
  EXPECT_EQ(passed(frame, 3, 0), 0) << "denied, then held by the hot cache";
  rule("198.18.0.0/15", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_ALLOW; });
  EXPECT_EQ(passed(frame, 1, 0), 1) << "allowed in the next epoch";
  // The epoch 65,536 on from the deny's: as if that many changes were made.
  xt_config cfg = state_->config().value();
  cfg.epoch = denied_at + 65536;
  ASSERT_NO_FATAL_FAILURE(write_config(cfg));
  EXPECT_EQ(passed(frame, 1, 0), 1) << "the allow rule still holds";
}

// A hot cache entry keeps the low 32 bits of its tick: one that outlived
// its tick must not look live again when those bits wrap, 2^31 ticks on,
// for a source that kept talking (its spent entry is emptied) or one that
// went away with drops not yet settled (an entry is live only up to
// XT_HOT_MAX_WAIT ahead). Both used to be dropped for 2^31 ticks.
TEST_F(Program, AHotCacheEntryDoesNotComeBackWhenItsTickWraps) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  load();
  rule("198.18.0.0/15", "10/s", 2);
  const auto talker = Packet().ipv4("198.18.0.1").build(), leaver = Packet().ipv4("198.18.0.2").build(),
             later = Packet().ipv4("198.18.0.3").build();
  for (const auto& f : {talker, leaver, later}) EXPECT_EQ(passed(f, 10, 0), 2) << "dropped until tick 100";
  EXPECT_EQ(passed(talker, 1, 100), 1) << "its drops settle";
  EXPECT_EQ(passed(talker, 1, 200), 1) << "and it keeps talking, within its limit";
  const uint64_t wrapped = (1ull << 31) + 150;
  EXPECT_EQ(passed(talker, 1, wrapped), 1);
  EXPECT_EQ(passed(leaver, 1, wrapped), 1) << "back after 2^31 ticks, its 8 drops never settled";
  EXPECT_EQ(passed(later, 1, 100 + (1ull << 32) - (1ull << 25)), 1) << "back later still";
}

// ... except in the last 2^24 ticks of every 2^32 (49.5 to 49.7 days at
// HZ=1000), for a source whose line nothing read meanwhile: its entry read
// as live again, and the source was dropped for up to 4.7 hours but for
// every 256th packet. serve's ageing (xt_age) gives an entry whose hold
// ended 2^31 - 2^28 ticks ago or more an end 2^30 ago, so it never gets
// there; it leaves a live entry alone, also one filled by a CPU whose
// clock is ahead of the walk's, and one it aged until it is that old again.
TEST_F(Program, AHotCacheEntryAgedByServeDoesNotComeBackAfterFortyNineDays) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  load();
  rule("198.18.0.0/15", "10/s", 2);
  rule("2001:db8::/32", "10/s", 2);
  const auto frame = Packet().ipv4("198.18.0.1").build();
  // An IPv6 line: two slots an entry, the second the address's low half,
  // whose first bytes (0x0080 here) a walk taking it for an entry of its
  // own would read as one in use, and rewrite.
  const auto frame6 = Packet().ipv6("2001:db8::80:0:0:1").build();
  ASSERT_EQ(passed(frame, 10, kSec), 2) << "dropped until tick kSec + 100";
  ASSERT_EQ(passed(frame6, 10, kSec), 2);
  skel_->bss->xt_test_now = kSec / 2;  // the walk's clock behind the filler's
  EXPECT_EQ(state_->age_stamps().value().hot, 0u) << "an entry ahead of the walk is live";
  skel_->bss->xt_test_now = kSec + 50;
  EXPECT_EQ(state_->age_stamps().value().hot, 0u) << "a live entry is left alone";
  EXPECT_EQ(passed(frame, 1, kSec + 99), 0) << "and still drops";
  EXPECT_EQ(passed(frame6, 1, kSec + 99), 0);
  // serve runs it every 30 s; a run every 2^29 ticks (6.2 days) is enough
  // for this, and stands in for them here.
  const uint64_t back = kSec + 100 + (1ull << 32) - (1ull << 23);
  std::vector<uint64_t> aged;
  for (uint64_t t = kSec + 100 + (1ull << 29); t < back; t += 1ull << 29) {
    skel_->bss->xt_test_now = t;
    aged.push_back(state_->age_stamps().value().hot);
  }
  EXPECT_EQ(aged, (std::vector<uint64_t>{0, 0, 0, 2, 0, 2, 0}))
      << "each hold's end set back to 2^30 ticks ago once it is 2^31 - 2^28 old, and not on every walk";
  EXPECT_EQ(passed(frame, 1, back), 1) << "back after 49.6 days: its bucket, long full, decides";
  EXPECT_EQ(passed(frame6, 1, back), 1) << "the IPv6 entry too, its address read whole";
  EXPECT_EQ(rule_stats("198.18.0.0/15").dropped_packets, 9u) << "its held drops counted once, none since";
  EXPECT_EQ(rule_stats("2001:db8::/32").dropped_packets, 9u);
}

// An entry emptied when its source passed again keeps its tick and epoch:
// read by xt_hot_live alone, without XT_HOT_USED, it looked live again in
// the last 2^24 ticks of every 2^32 after its hold (49.5 days on, for 4.7
// hours), while no rule changed. Nothing was dropped for it, but a fill
// found no room in the line, so the sources over their limits then were
// metered in their buckets on every packet, and the line's bit stayed set.
TEST_F(Program, AnEmptiedHotCacheSlotIsRoomAgainFortyNineDaysOn) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  load();
  rule("198.18.0.0/15", "10/s", 2);
  const xt_config cfg = state_->config().value();
  // Eight IPv4 sources of one pair of lines (CPU 0's part): all its room.
  std::map<uint32_t, std::vector<std::string>> by_pair;
  std::vector<std::string> eight;
  for (uint32_t i = 1; i < (1u << 16) && eight.empty(); i++) {
    const std::string a = "198.18." + std::to_string(i >> 8) + "." + std::to_string(i & 0xff);
    xt_pkt pkt{};
    pkt.family = XT_FAMILY_V4;
    ASSERT_EQ(inet_pton(AF_INET, a.c_str(), pkt.addr), 1);
    auto& v = by_pair[XT_TOP_BITS(xt_hash_source(cfg.hash_key, &pkt, 0), cfg.hot_bits) >> 1];
    v.push_back(a);
    if (v.size() == 8) eight = v;
  }
  ASSERT_EQ(eight.size(), 8u);
  for (const auto& a : eight) EXPECT_EQ(passed(Packet().ipv4(a).build(), 10, 0), 2) << "held until tick 100";
  ASSERT_EQ(state_->hot_pending().value().size(), 8u);
  for (const auto& a : eight) EXPECT_EQ(passed(Packet().ipv4(a).build(), 1, 100), 1) << "settled and emptied";
  ASSERT_TRUE(state_->hot_pending().value().empty());
  const uint64_t back = 100 + (1ull << 32) - (1ull << 24) + 10;
  for (uint64_t t = 100 + (1ull << 29); t < back; t += 1ull << 29) {  // serve's ageing, as often as it needs
    skel_->bss->xt_test_now = t;
    ASSERT_TRUE(state_->age_stamps().has_value());
  }
  for (const auto& a : eight) EXPECT_EQ(passed(Packet().ipv4(a).build(), 50, back), 2) << a;
  const PendingDrops pending = state_->hot_pending().value();
  EXPECT_EQ(pending.size(), 8u) << "each held in the pair again";
  for (const auto& [key, n] : pending) EXPECT_EQ(n, 47u) << "source " << int(key.addr[3]);
}

// Two CPUs metering one bucket, every packet within its limits: none is
// dropped, and the bucket is never taken to be over them. The limits'
// words were swapped in one round, started over whenever a swap was lost,
// the words taken so far given back; the give-backs made the other CPU
// lose its own swaps in turn, and under a rule of three windows (one
// bucket: --per 0) 6,600 to 46,000 of these 10M packets ran out of rounds
// and were dropped as over the limit, the bucket throttled.
TEST_F(Program, TwoCPUsOnOneBucketWithinItsLimitsDropNothing) {
  load();
  rule("198.18.0.0/15", std::nullopt, std::nullopt, [](RuleSpec& s) {
    s.per = 0;
    s.rates = {*parse_rate("100000000/s"), *parse_rate("1000000000/min"), *parse_rate("10000000000/hour")};
    s.bursts = {100000000, 1000000000, 10000000000};
  });
  const auto frame = Packet().ipv4("198.18.0.1").build();
  ASSERT_EQ(run(frame, 1), XDP_PASS);  // the bucket made
  constexpr uint32_t kEach = 5'000'000;
  std::atomic<int> failed{0};
  auto meter_on = [&](int cpu) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
                .repeat = kEach);
    if (!pin_to_cpu(cpu) || bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.xthrottle), &opts) != 0)
      failed++;
  };
  std::thread first(meter_on, 0), second(meter_on, 1);
  first.join();
  second.join();
  ASSERT_EQ(failed, 0) << "cannot run on CPUs 0 and 1";
  EXPECT_EQ(counter(XT_DROP_LIMIT), 0u);
  EXPECT_EQ(counter(XT_PASS_LIMIT), 2 * kEach + 1);
  int throttled = 0;
  for (const xt_event& e : events()) throttled += e.type == XT_EVENT_THROTTLED;
  EXPECT_EQ(throttled, 0);
}

// Two rule changes in a row while a source is throttled (the hot cache drops
// its packets, which writes nothing to its bucket): it must not come out with
// a fresh burst, nor after generations wrap around.
TEST_F(Program, RepeatedReplacementsGiveNoFreshBurst) {
  load();
  rule("198.18.0.0/15", "10/s", 10);
  const auto frame = Packet().ipv4("198.18.0.1").build();
  EXPECT_EQ(passed(frame, 20, 0), 10);
  for (int i = 0; i < 2 * XT_GEN_MAX; i++) {
    rule("198.18.0.0/15", "10/s", 10 + i);
    EXPECT_EQ(passed(frame, 5, 0), 0) << "after replacement " << i + 1;
  }
  EXPECT_EQ(passed(frame, 5, 100 * kMs), 1) << "and it refills at the rate";
}

// The parser fuzzer's corpus (the seeds and regressions in fuzz/corpus/parse,
// and what a fuzz run found, when XT_PARSE_CORPUS names more directories,
// colon-separated) through the real object: for every frame the kernel can
// hand to XDP, the program's verdict is the host parser's, and an IP frame is
// metered in the bucket of the very source the host parser read.
TEST_F(Program, FuzzCorpusVerdictsAgreeWithTheHostParser) {
  std::vector<std::filesystem::path> files;
  std::string dirs = XT_PARSE_CORPUS_DIR;
  if (const char* more = std::getenv("XT_PARSE_CORPUS")) dirs += std::string(":") + more;
  // Every directory named must be there and give files: a fuzz run's
  // findings that are not replayed must not pass as replayed.
  for (const auto& dir : std::views::split(dirs, ':')) {
    const std::filesystem::path path(std::string(dir.begin(), dir.end()));
    if (path.empty()) continue;
    ASSERT_TRUE(std::filesystem::is_directory(path)) << path << ": no such corpus directory";
    const size_t before = files.size();
    for (const auto& entry : std::filesystem::directory_iterator(path))
      if (entry.is_regular_file()) files.push_back(entry.path());
    ASSERT_GT(files.size(), before) << path << ": a corpus directory with no files";
  }
  ASSERT_GE(files.size(), 15u) << "the seed corpus is missing";

  // Both forms of the program: single-buffer (standard MTU; the kernel
  // takes frames up to a page in it) and multi-buffer (jumbo MTU).
  for (const bool frags : {false, true}) {
    SCOPED_TRACE(frags ? "multi-buffer program" : "single-buffer program");
    load(XT_MIN_MAX_SOURCES, frags);
    rule("0.0.0.0/0", "1000/s", 1000);
    rule("::/0", "1000/s", 1000, [](RuleSpec& s) { s.per = 128; });
    const auto rules = state_->rules().value();
    ASSERT_EQ(rules.size(), 2u);
    const size_t longest = frags ? 9216 : 3500;

    uint64_t now = 0;
    size_t replayed = 0, ip = 0;
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      const std::vector<uint8_t> frame((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      // The kernel hands XDP no frame shorter than an Ethernet header (and
      // BPF_PROG_TEST_RUN refuses one).
      if (frame.size() < ETH_HLEN || frame.size() > longest) continue;
      xt_pkt pkt{};
      const int parsed = xt_parse(frame.data(), frame.data() + frame.size(), frame.size(), XT_LINK_ETHER, &pkt);
      const xt_reason want = parsed == XT_PARSE_MALFORMED ? XT_DROP_MALFORMED
                             : parsed == XT_PARSE_NON_IP  ? XT_PASS_NON_IP
                                                          : XT_PASS_LIMIT;
      xt_bucket_key key{};
      xt_bucket before{};
      if (parsed == XT_PARSE_IP) {
        const xt_rule& r = rules[pkt.family == XT_FAMILY_V4 ? 0 : 1].rule;
        xt_bucket_key_for(&pkt, r.id, r.per_len, &key);
        before = state_->find_bucket(key).value().value_or(xt_bucket{});  // absent: zero
      }
      const uint64_t count = counter(want);
      now += kSec;  // a second apart: every source well within its limit, the new-source budget full
      const int action = run(frame, now);
      ASSERT_EQ(action, want >= XT_FIRST_DROP ? XDP_DROP : XDP_PASS) << file;
      ASSERT_EQ(counter(want), count + 1) << file << ": not counted as the host parser's verdict";
      if (parsed == XT_PARSE_IP) {
        const auto found = state_->find_bucket(key).value();
        ASSERT_TRUE(found.has_value()) << file << ": no bucket for " << format_addr(pkt.family, pkt.addr);
        const xt_bucket after = *found;
        EXPECT_EQ(after.passed_packets, before.passed_packets + 1) << file;
        ip++;
      }
      replayed++;
    }
    std::cout << (frags ? "multi" : "single") << "-buffer program: replayed " << replayed << " of " << files.size()
              << " corpus frames, " << ip << " of them IP\n";
    EXPECT_GE(ip, 10u) << "the replay must reach the metering";
  }
}

// The tick rate: measured from the program's clock, it agrees with the
// kernel's configuration where the system keeps one.
TEST_F(Program, MeasuredTickRateMatchesTheKernelConfiguration) {
  auto measured = clock_hz();
  ASSERT_TRUE(measured.has_value()) << measured.error().message;
  EXPECT_TRUE(*measured == 100 || *measured == 250 || *measured == 300 || *measured == 1000)
      << *measured << " Hz is none of the kernel's choices";
  if (auto configured = configured_hz()) {
    EXPECT_EQ(*measured, *configured);
  }
}

// One measurement of the tick a preempted thread made a few percent off
// does not pick the rate, though it lands within 1% of another rate a
// kernel may be built with (256 for 250 was taken as soon as it was read).
TEST(Clock, AMeasurementAPreemptedThreadMadeDoesNotPickTheRate) {
  EXPECT_EQ(kernel_hz_of({256.1, 250.2, 249.9}), 250u);
  EXPECT_EQ(kernel_hz_of({242.0, 250.1, 250.0}), 250u);
  EXPECT_EQ(kernel_hz_of({1000.4, 999.8, 1031.0}), 1000u);
  EXPECT_EQ(kernel_hz_of({256.0, 255.9, 250.0}), 256u) << "a kernel built with 256";
  EXPECT_EQ(kernel_hz_of({173.0, 173.2, 172.9}), 173u) << "no rate a kernel is built with: as measured";
}

// The kernel's verifier refuses a program it cannot prove safe with EACCES,
// to root too. The message said "xthrottle needs root" to root; it must
// say what refused instead.
TEST(Errors, AProgramTheVerifierRefusesIsNotBlamedOnPrivileges) {
  XT_REQUIRE_ROOT();
  ASSERT_TRUE(holds_needed_caps()) << "root without CAP_BPF, CAP_NET_ADMIN or CAP_SYS_ADMIN";
  // r0 = *(u64 *)(r1 + 4096), a read far past the XDP context; exit.
  const bpf_insn insns[] = {
      {.code = BPF_LDX | BPF_MEM | BPF_DW, .dst_reg = BPF_REG_0, .src_reg = BPF_REG_1, .off = 4096, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xt_refused", "GPL", insns, std::size(insns), nullptr);
  if (fd >= 0) close(fd);
  ASSERT_EQ(fd, -EACCES) << "the verifier let the program through";
  const std::string message = system_error("cannot load the program", fd).error().message;
  EXPECT_NE(message.find("Permission denied"), std::string::npos) << message;
  EXPECT_EQ(message.find("needs root"), std::string::npos) << message;
  EXPECT_NE(message.find("verifier"), std::string::npos) << message;
}

}  // namespace
}  // namespace xt
