// SPDX-License-Identifier: MIT
// Bans (issue 14): a banned prefix is dropped outright until its ban ends,
// whatever its rule, from the hot cache after its first packet; an --allow
// rule beats it; lifting it lets its sources through at once. Through the
// real object with the settable clock.
#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "keys.h"
#include "meter.h"
#include "packet.h"
#include "program.h"
#include "rules.h"

namespace xt {
namespace {

using test::kSec;
using test::Packet;
using test::Program;

class Bans : public Program {
 protected:
  void SetUp() override {
    Program::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    load();
  }
  void ban(const std::string& cidr, uint64_t seconds) {
    auto ok = state_->add_ban(*parse_cidr(cidr), seconds);
    ASSERT_TRUE(ok.has_value()) << ok.error().message;
  }
  uint32_t bans_flag() { return state_->config().value().bans; }
};

TEST_F(Bans, ABannedSourceIsDroppedUntilItsBanEnds) {
  rule("198.18.0.0/15", "1000/s");
  ban("198.18.0.9", 10);
  EXPECT_EQ(bans_flag(), 1u);
  const auto banned = Packet().ipv4("198.18.0.9").build(), other = Packet().ipv4("198.18.0.10").build();
  EXPECT_EQ(run(banned, 0), XDP_DROP);
  EXPECT_EQ(run(banned, 0), XDP_DROP) << "from the hot cache";
  EXPECT_EQ(run(banned, 9 * kSec), XDP_DROP);
  EXPECT_EQ(run(other, 0), XDP_PASS) << "its neighbour is not banned";
  EXPECT_EQ(counter(XT_DROP_BANNED), 3u);
  EXPECT_EQ(counter(XT_DROP_LIMIT), 0u);
  EXPECT_EQ(rule_stats("198.18.0.0/15").dropped_packets, 3u) << "counted under its rule";
  ASSERT_EQ(state_->bans().value().size(), 1u) << "listed while in force (at the test's clock, 9 s)";
  EXPECT_EQ(run(banned, 10 * kSec), XDP_PASS) << "the ban is over";
  EXPECT_TRUE(state_->bans().value().empty()) << "and no longer listed";
}

TEST_F(Bans, APrefixBanCoversItsSourcesEvenWithoutARule) {
  ban("198.18.0.0/24", 60);
  const auto in = Packet().ipv4("198.18.0.200").build(), out = Packet().ipv4("198.18.1.1").build();
  EXPECT_EQ(run(in, 0), XDP_DROP) << "no rule covers it, and it is banned";
  EXPECT_EQ(run(out, 0), XDP_PASS);
  const auto v6 = Packet().ipv6("2001:db8::9").build();
  ban("2001:db8::/64", 60);
  EXPECT_EQ(run(v6, 0), XDP_DROP);
  EXPECT_EQ(counter(XT_DROP_BANNED), 2u);
}

TEST_F(Bans, AnAllowRuleBeatsABan) {
  rule("198.18.0.0/15", "1000/s");
  rule("198.18.0.9", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_ALLOW; });
  ban("198.18.0.0/24", 60);
  EXPECT_EQ(run(Packet().ipv4("198.18.0.9").build(), 0), XDP_PASS) << "allowed";
  EXPECT_EQ(run(Packet().ipv4("198.18.0.8").build(), 0), XDP_DROP) << "banned";
}

TEST_F(Bans, LiftingABanLetsItsSourcesThroughAtOnce) {
  rule("198.18.0.0/15", "1000/s");
  ban("198.18.0.9", 3600);
  const auto banned = Packet().ipv4("198.18.0.9").build();
  EXPECT_EQ(run(banned, 0), XDP_DROP);
  EXPECT_EQ(run(banned, 0), XDP_DROP) << "the hot cache holds it until the ban's end";
  ASSERT_TRUE(state_->del_ban(*parse_cidr("198.18.0.9")).has_value());
  EXPECT_EQ(run(banned, 0), XDP_PASS) << "lifted: the hot cache's entry is of an old epoch";
  EXPECT_EQ(bans_flag(), 0u) << "no ban left: no packet looks for one";
  auto again = state_->del_ban(*parse_cidr("198.18.0.9"));
  ASSERT_FALSE(again.has_value());
  EXPECT_NE(again.error().message.find("no ban for 198.18.0.9/32"), std::string::npos) << again.error().message;
}

// A hot cache entry keeps the low 16 bits of its epoch. A banned source's
// was held to its ban's end, and came back 65,536 publishes (rule, ban and
// list changes, by hand or from a fleet) after the ban was lifted: its
// source dropped as banned again, until the lifted ban's end. It is held
// for half the idle window at most now, as a limit's hold is.
TEST_F(Bans, ALiftedBanDoesNotComeBack65536ChangesLater) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  rule("198.18.0.0/15", "1000/s");
  ban("198.18.0.9", 3600);
  const uint32_t banned_at = state_->config().value().epoch;
  const auto banned = Packet().ipv4("198.18.0.9").build();
  EXPECT_EQ(run(banned, 0), XDP_DROP) << "banned, and held by the hot cache";
  ASSERT_TRUE(state_->del_ban(*parse_cidr("198.18.0.9")).has_value());
  // The epoch 65,536 on from the ban's: as if that many changes were made.
  xt_config cfg = state_->config().value();
  cfg.epoch = banned_at + 65536;
  ASSERT_NO_FATAL_FAILURE(write_config(cfg));
  EXPECT_EQ(run(banned, 1000 * kSec), XDP_PASS) << "the ban was lifted, and its hour is not over";
  EXPECT_EQ(counter(XT_DROP_BANNED), 1u);
}

// Rules deleted together (an apply) leave each of their bans marked as a
// deleted rule's before their slots are free, in one walk of the ban
// table: the rules that take the slots next are not named as the makers of
// bans they did not make. Another rule's ban and the operator's keep
// their makers.
TEST_F(Bans, RulesDeletedTogetherLeaveTheirBansMarkedAsADeletedRules) {
  const char* cidrs[] = {"198.18.0.0/24", "198.18.1.0/24", "198.18.2.0/24"};
  for (const char* c : cidrs)
    rule(c, "1/s", 1, [](RuleSpec& s) {
      s.ban_after = 2;
      s.ban_for = 3600;
    });
  // A ban each rule made, as the data path writes it.
  const int fd = bpf_map__fd(skel_->maps.xt_bans);
  for (uint32_t id = 0; id < 3; id++) {
    xt_ban_key key{};
    key.prefixlen = XT_BAN_KEY_BITS + 32;
    key.family = XT_FAMILY_V4;
    const uint8_t addr[4] = {198, 18, static_cast<uint8_t>(id), 9};
    std::memcpy(key.addr, addr, sizeof(addr));
    const xt_ban by_rule{.until = 3600 * kSec, .since = 0, .prefixlen = key.prefixlen, .rule = id + 1};
    ASSERT_EQ(bpf_map_update_elem(fd, &key, &by_rule, BPF_NOEXIST), 0);
  }
  ban("198.18.0.0/24", 3600);  // the operator's
  ASSERT_TRUE(state_->del_rules({{*parse_cidr(cidrs[0]), Match{}}, {*parse_cidr(cidrs[2]), Match{}}}).has_value());
  std::map<std::string, uint32_t> maker;
  const auto listed = state_->bans().value();
  for (const auto& b : listed) maker[format_cidr(b.cidr)] = b.ban.rule;
  EXPECT_EQ(maker.size(), 4u);
  EXPECT_EQ(maker["198.18.0.9/32"], XT_BAN_BY_DELETED_RULE);
  EXPECT_EQ(maker["198.18.2.9/32"], XT_BAN_BY_DELETED_RULE);
  EXPECT_EQ(maker["198.18.1.9/32"], 2u) << "the live rule's, id 1";
  EXPECT_EQ(maker["198.18.0.0/24"], 0u) << "the operator's";
}

// An ended ban of a longer prefix does not hide the shorter one around it
// (a trie finds the longest prefix only); a ban shortened takes effect
// though the hot cache held the longer one.
TEST_F(Bans, AnEndedBanHidesNothingAndAShortenedOneEndsOnTime) {
  rule("198.18.0.0/15", "1000/s");
  ban("198.18.0.0/24", 60);
  ban("198.18.0.9", 1);
  const auto source = Packet().ipv4("198.18.0.9").build();
  EXPECT_EQ(run(source, 0), XDP_DROP);
  EXPECT_EQ(run(source, 2 * kSec), XDP_DROP) << "its own ban is over, the /24's is not";
  EXPECT_EQ(counter(XT_DROP_BANNED), 2u);

  const auto other = Packet().ipv4("198.18.1.9").build();
  ban("198.18.1.9", 3600);
  EXPECT_EQ(run(other, 3 * kSec), XDP_DROP);
  EXPECT_EQ(run(other, 3 * kSec), XDP_DROP) << "the hot cache holds it";
  ban("198.18.1.9", 1);  // at the test clock's 3 s: until 4 s
  EXPECT_EQ(run(other, 5 * kSec), XDP_PASS) << "shortened: over at 4 s";

  // A ban in force around four ended ones, nested: the packet looked once
  // more after the first, found the second ended too, and passed.
  ban("198.18.2.0/24", 3600);
  ban("198.18.2.0/25", 1);
  ban("198.18.2.0/26", 1);
  ban("198.18.2.0/27", 1);
  ban("198.18.2.7", 1);
  EXPECT_EQ(run(Packet().ipv4("198.18.2.7").build(), 10 * kSec), XDP_DROP) << "the /24's ban is in force";
}

// A ban of a month: the source's bucket waits in its slot while its
// packets are dropped before metering. Back after it, the source floods
// again and is banned again. Its last drop was 30 days back, past 2^31
// ticks: compared signed, it read as ahead, so the throttle was never
// released and --ban-after counted from the first one, 30 days before
// (negative): no second ban for 19.7 days more.
TEST_F(Bans, ASourceBannedForAMonthIsBannedAgainWhenItFloodsAfter) {
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.ban_after = 2;
    s.ban_for = 30 * 86400;
  });
  const auto heavy = Packet().ipv4("198.18.0.9").build();
  for (uint64_t now = 0; now < 4 * kSec; now += 10) run(heavy, now);
  const uint64_t first = counter(XT_DROP_BANNED);
  ASSERT_GT(first, 0u) << "banned for the month";
  const uint64_t back = uint64_t{30} * 86400 * kSec + 10 * kSec;
  for (uint64_t now = back; now < back + 10 * kSec; now += 10) run(heavy, now);
  EXPECT_GT(counter(XT_DROP_BANNED), first) << "banned again, 2 s into its new flood";
}

// --ban-after 2s --ban-for 10s: a source over its limit without a break
// for 2 s is banned for 10 s (its drops counted as banned from then on),
// then metered again; one that takes breaks is never banned.
TEST_F(Bans, ASourceOverItsLimitForLongIsBannedByItsRule) {
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.ban_after = 2;
    s.ban_for = 10;
  });
  EXPECT_EQ(bans_flag(), 1u) << "a rule that bans has packets look in the table";
  const auto heavy = Packet().ipv4("198.18.0.9").build();
  uint64_t banned_at = 0;
  for (uint64_t now = 0; now < 4 * kSec && !banned_at; now += 10) {
    run(heavy, now);
    if (counter(XT_DROP_BANNED)) banned_at = now;
  }
  ASSERT_GT(banned_at, 0u) << "banned";
  // It began dropping once its burst was spent (~110 ms); it is banned at
  // its first metered drop 2 s after that (between tokens, 100 ms apart,
  // the hot cache drops it without metering).
  EXPECT_GE(banned_at, 2 * kSec + 100) << "not before --ban-after";
  EXPECT_LE(banned_at, 2 * kSec + 110 + 100 + 10);
  const auto bans = state_->bans().value();
  ASSERT_EQ(bans.size(), 1u);
  EXPECT_EQ(format_cidr(bans[0].cidr), "198.18.0.9/32") << "its bucket's prefix";
  EXPECT_EQ(bans[0].ban.until - bans[0].ban.since, 10 * kSec);
  EXPECT_EQ(run(heavy, banned_at + 5 * kSec), XDP_DROP);
  const uint64_t banned = counter(XT_DROP_BANNED);
  EXPECT_EQ(run(heavy, banned_at + 10 * kSec + 1), XDP_PASS) << "the ban is over, and tokens have come";
  EXPECT_EQ(counter(XT_DROP_BANNED), banned);
  EXPECT_GE(counter(XT_EVENTS_SENT), 2u) << "throttled, then banned";

  // A source that is over its limit in bursts, with breaks of more than
  // XT_RELEASE_SECONDS, is released each time and never banned.
  const auto bursty = Packet().ipv4("198.18.0.10").build();
  const uint64_t before = counter(XT_DROP_BANNED);
  for (uint64_t t = 0; t < 20 * kSec; t += 3 * kSec)
    for (int i = 0; i < 30; i++) run(bursty, 100 * kSec + t);
  EXPECT_EQ(counter(XT_DROP_BANNED), before) << "never banned";
}

// --ban-after 0: banned at the first drop over the limit, on an even tick
// as on an odd one. (On an even tick the throttle's start, the tick with its
// low bit set, read as a tick ahead: no ban until a later drop reached the
// bucket, after the hot cache's hold.)
TEST_F(Bans, ABanAfterNoTimeBansAtTheFirstDropOnAnyTick) {
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.ban_after = 0;
    s.ban_for = 60;
  });
  for (const uint64_t at : {10 * kSec, 20 * kSec + 1}) {
    SCOPED_TRACE(at % 2 ? "odd tick" : "even tick");
    const auto src = Packet().ipv4(at % 2 ? "198.18.0.11" : "198.18.0.10").build();
    const uint64_t before = counter(XT_DROP_BANNED);
    (void)events();
    EXPECT_EQ(passed(src, 11, at), 10);
    EXPECT_EQ(counter(XT_DROP_BANNED), before + 1) << "its first drop is a ban";
    // Told as 0 ticks over its limit: on an even tick the throttle's start
    // (the tick with its low bit set) is a tick ahead, and it said 2^32 - 1.
    bool banned = false;
    for (const xt_event& e : events())
      if (e.type == XT_EVENT_BANNED) {
        banned = true;
        EXPECT_LE(e.throttled_ticks, 1u);
      }
    EXPECT_TRUE(banned) << "the ban is told";
  }
}

// One ban, told once. Every CPU holding a source of one bucket comes off
// its hold at the same tick, and each packet of them that read the ban
// table before the first ban went in banned again: the ban told two to N
// times, and written over each time (an operator's longer ban of the same
// prefix too). One CPU stands in for several here: the flag that has
// packets read the ban table is cleared, as if this one had read it
// before the ban was written.
TEST_F(Bans, ABanMadeByTwoPacketsAtOnceIsToldOnce) {
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.per = 24;
    s.ban_after = 0;
    s.ban_for = 60;
  });
  const auto a = Packet().ipv4("198.18.0.1").build(), b = Packet().ipv4("198.18.0.2").build();
  (void)events();
  EXPECT_EQ(passed(a, 11, kSec), 10) << "the /24's burst, then banned at its first drop";
  xt_config cfg = state_->config().value();
  ASSERT_NE(cfg.bans, 0u) << "a rule that bans has packets read the ban table";
  cfg.bans = 0;
  ASSERT_NO_FATAL_FAILURE(write_config(cfg));
  EXPECT_EQ(run(b, kSec + 50 * test::kMs), XDP_DROP) << "the same /24, from a packet that missed the ban";
  EXPECT_EQ(counter(XT_DROP_BANNED), 2u) << "each dropped as banned";
  int told = 0;
  for (const xt_event& e : events()) told += e.type == XT_EVENT_BANNED;
  EXPECT_EQ(told, 1) << "one ban, told once";
  const auto bans = state_->bans().value();
  ASSERT_EQ(bans.size(), 1u);
  EXPECT_EQ(bans[0].ban.until, kSec + 60 * kSec) << "the first packet's ban";

  // An operator's ban of a /24 for an hour, met the same way: kept, not
  // written over with the rule's minute.
  ban("198.18.1.0/24", 3600);
  cfg = state_->config().value();
  cfg.bans = 0;
  ASSERT_NO_FATAL_FAILURE(write_config(cfg));
  EXPECT_EQ(passed(Packet().ipv4("198.18.1.1").build(), 11, 2 * kSec), 10);
  int found = 0;
  const auto listed = state_->bans().value();  // (a range-for over value() of the temporary would dangle)
  for (const auto& b : listed)
    if (b.cidr == *parse_cidr("198.18.1.0/24")) {
      found++;
      EXPECT_GE(b.ban.until, 3600 * kSec) << "the operator's hour";
      EXPECT_EQ(b.ban.rule, 0u) << "the operator's, not the rule's";
    }
  EXPECT_EQ(found, 1);
  told = 0;
  for (const xt_event& e : events()) told += e.type == XT_EVENT_BANNED;
  EXPECT_EQ(told, 0) << "nothing banned that was not already";
}

// A source throttled once (over its own limit), then within it while the
// rule's --total drops some of its packets, is released by its packets that
// pass: the total's drops are not its own. (They kept the throttle going,
// and its next burst over its own limit banned it, --ban-after after a
// throttle that had ended long before.)
TEST_F(Bans, ATotalsDropsDoNotKeepAThrottleGoing) {
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.total = *parse_rate("100/s");
    s.ban_after = 3;
    s.ban_for = 3600;
  });
  const auto src = Packet().ipv4("198.18.0.9").build();
  std::vector<std::vector<uint8_t>> others;
  for (int i = 0; i < 20; i++) others.push_back(Packet().ipv4(test::nth_source(100 + i)).build());
  EXPECT_EQ(passed(src, 11, kSec), 10) << "its burst, then over its own limit: throttled";
  uint64_t total_drops = 0, own_passes = 0;
  // 3.5 s of the total saturated by twenty others at their own 10/s, the
  // source within its own limit (10/s) beside them. (The others were sent
  // at 100/s, over their own limit, which the total's share, settled at a
  // packet a second, hid: their packets were the total's drops, not their
  // own limit's. With the share where it should be, they were banned.)
  for (uint64_t now = kSec + 10 * test::kMs; now < 4 * kSec + 500 * test::kMs; now += 10 * test::kMs) {
    if (now % (100 * test::kMs) == 50 * test::kMs)
      for (const auto& o : others) run(o, now);
    if (now % (100 * test::kMs) == 0) {
      const uint64_t before = counter(XT_DROP_TOTAL);
      own_passes += run(src, now) == XDP_PASS;
      total_drops += counter(XT_DROP_TOTAL) > before;
    }
  }
  ASSERT_GT(total_drops, 5u) << "the total dropped some of its packets";
  ASSERT_GT(own_passes, 5u) << "and passed others";
  // The others gone, a burst over its own limit: a throttle anew, no ban.
  EXPECT_EQ(passed(src, 30, 5 * kSec), 10);
  EXPECT_EQ(counter(XT_DROP_LIMIT), 1u + 20u) << "the source's two bursts over its own limit, and nothing else";
  EXPECT_EQ(counter(XT_DROP_BANNED), 0u) << "banned for a throttle that ended seconds ago";
  EXPECT_TRUE(state_->bans().value().empty());
}

// Drops no rule decided (a malformed frame; a ban or a blocklist of a
// source no rule covers) are counted as such: with the drops by rule they
// make all the drops, which the metrics' rule="none" relies on. (Before,
// "none" had the malformed frames only, and a host protected by
// blocklists alone graphed no drops at all.)
TEST_F(Bans, DropsNoRuleDecidedAddUpWithTheRulesDrops) {
  rule("198.18.0.0/16", "1000/s");
  ban("198.19.0.9", 10);
  ban("198.18.0.10", 10);  // a rule covers it: the rule's drop
  ASSERT_TRUE(state_->load_blocklist("l", {*parse_cidr("198.19.1.0/24"), *parse_cidr("198.18.2.0/24")}).has_value());
  const auto banned = Packet().ipv4("198.19.0.9").build(), listed = Packet().ipv4("198.19.1.7").build(),
             covered = Packet().ipv4("198.18.0.10").build(), listed_covered = Packet().ipv4("198.18.2.7").build(),
             malformed = Packet().ipv4("198.18.6.1").size(14 + 19).build();
  for (int i = 0; i < 5; i++) EXPECT_EQ(run(banned), XDP_DROP);
  for (int i = 0; i < 3; i++) EXPECT_EQ(run(listed), XDP_DROP);
  for (int i = 0; i < 4; i++) EXPECT_EQ(run(covered), XDP_DROP);
  for (int i = 0; i < 2; i++) EXPECT_EQ(run(listed_covered), XDP_DROP);  // the rule's drop too
  EXPECT_EQ(run(malformed), XDP_DROP);
  EXPECT_EQ(counter(XT_DROPPED_WITHOUT_RULE), 5u + 3) << "banned or listed, no rule covering them";
  EXPECT_EQ(counter(XT_DROP_MALFORMED), 1u);
  EXPECT_EQ(rule_stats("198.18.0.0/16").dropped_packets, 4u + 2);
  uint64_t dropped = 0;
  for (uint32_t r = XT_FIRST_DROP; r < XT_REASONS; r++) dropped += counter(static_cast<xt_reason>(r));
  EXPECT_EQ(dropped, counter(XT_DROPPED_WITHOUT_RULE) + counter(XT_DROP_MALFORMED) +
                         rule_stats("198.18.0.0/16").dropped_packets);
}

// The tick of a bucket's last drop is another CPU's, whose clock may be a
// tick ahead: a packet passing at tick T after a drop stamped T + 1 is no
// break in being over the limit. (Compared unsigned, it read as 2^32
// ticks since the last drop: the source was told released, and its
// --ban-after started over.)
TEST_F(Bans, ADropStampedATickAheadIsNoBreak) {
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.ban_after = 10;
    s.ban_for = 60;
  });
  const xt_rule r = state_->rules().value().at(0).rule;
  const std::string addr = "198.18.0.9";
  xt_pkt src{};
  src.family = XT_FAMILY_V4;
  ASSERT_EQ(inet_pton(AF_INET, addr.c_str(), src.addr), 1);
  xt_bucket_key key;
  xt_bucket_key_for(&src, r.id, r.per_len, &key);
  // Over its limit since 100 s, its last drop stamped 110.001 s by a CPU
  // a tick ahead; this CPU, at 110 s, finds tokens (another CPU's passes
  // in flight) and passes one.
  const uint64_t t = 110 * kSec;
  skel_->bss->xt_test_now = t;
  xt_bucket b;
  xt_bucket_init(&b, &r, t);
  b.throttled_since = static_cast<uint32_t>(100 * kSec) | 1;
  b.last_drop = static_cast<uint32_t>(t + 1);
  plant({{key, b}});
  const auto heavy = Packet().ipv4(addr).build();
  ASSERT_EQ(run(heavy, t), XDP_PASS);
  auto now_b = state_->find_bucket(key);
  ASSERT_TRUE(now_b.has_value() && now_b->has_value());
  EXPECT_NE((*now_b)->throttled_since, 0u) << "not released a tick after a drop";
  EXPECT_EQ(counter(XT_EVENTS_SENT), 0u) << "nothing told";
  // Still over its limit without a break: its next drop bans it.
  for (int i = 0; i < 20; i++) run(heavy, t + 1);
  EXPECT_GT(counter(XT_DROP_BANNED), 0u) << "over its limit for 10 s: banned";
}

// A bucket the hot cache holds is dropping until the hold ends, though its
// drops reach the bucket only when that entry settles: a packet of the
// bucket from elsewhere (here another source of its --per /24) that passes
// when the token comes finds the source dropped 10 ms ago, not 2 s, and the
// source is neither told released nor has its --ban-after started over.
// (It was told released every 2 s, and never banned.)
TEST_F(Bans, ASourceTheHotCacheHoldsIsNotReleasedByAnotherOfItsBucket) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  rule("198.18.0.0/16", "30/min", 1, [](RuleSpec& s) {
    s.per = 24;
    s.ban_after = 5;
    s.ban_for = 60;
  });
  const auto x = Packet().ipv4("198.18.0.9").build(), y = Packet().ipv4("198.18.0.77").build();
  ASSERT_EQ(run(x, 0), XDP_PASS);
  ASSERT_EQ(run(x, 1), XDP_DROP) << "the burst spent: held until the next token, at 2 s";
  uint64_t t = 10;
  for (; t < 2 * kSec; t += 10) ASSERT_EQ(run(x, t), XDP_DROP);
  ASSERT_EQ(run(y, 2 * kSec), XDP_PASS) << "the token, taken by another source of the /24";
  EXPECT_EQ(counter(XT_EVENTS_SENT), 1u) << "throttled, and not told released";
  // X goes on flooding, Y takes each token: the /24 has been over its
  // limit without a break, and is banned after 5 s.
  for (t = 2 * kSec + 10; t < 8 * kSec && !counter(XT_DROP_BANNED); t += 10)
    run(t % (2 * kSec) == 0 ? y : x, t);
  EXPECT_GT(counter(XT_DROP_BANNED), 0u) << "over its limit for 5 s: banned";
  EXPECT_LE(t, 6 * kSec + 20) << "at its first metered drop after 5 s";
}

// A source over its limit in bursts, with breaks, is told released after
// each and never banned, wherever the 32-bit clock is: the drops a bucket
// made are recorded when the clock's low 32 bits are 2^31 or more too (the
// first five minutes after boot, as jiffies start at -300 s, and half of
// every 49.7 days at HZ=1000). Each clock a source of its own.
TEST_F(Bans, ABreakIsABreakWhereverTheClockIs) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.ban_after = 2;
    s.ban_for = 10;
  });
  const uint64_t bases[] = {0, (1ull << 31) + 5 * kSec, (1ull << 32) - 300 * kSec, (1ull << 32) + (1ull << 31)};
  for (size_t i = 0; i < std::size(bases); i++) {
    const auto bursty = Packet().ipv4("198.18.0." + std::to_string(10 + i)).build();
    const uint64_t events = counter(XT_EVENTS_SENT);
    for (uint64_t t = 0; t < 20 * kSec; t += 3 * kSec)
      for (int n = 0; n < 30; n++) run(bursty, bases[i] + t);
    EXPECT_EQ(counter(XT_DROP_BANNED), 0u) << "banned, at clock " << bases[i];
    EXPECT_EQ(counter(XT_EVENTS_SENT) - events, 13u) << "7 bursts: throttled 7 times, released 6, at clock " << bases[i];
  }
}

// The whole ban table, IPv4 and IPv6, half of it ended: read in batches of
// the trie (a key at a time within each call, the cursor the last key),
// every ban in force is listed once, and clearing takes the ended ones and
// only those.
TEST_F(Bans, AFullTableIsListedOnceAndClearedOfItsEndedBansOnly) {
  const uint64_t now = 100 * kSec;
  skel_->bss->xt_test_now = now;
  std::vector<std::pair<Cidr, xt_ban>> all;
  char text[64];
  for (uint32_t n = 0; n < XT_MAX_BANS / 2; n++) {
    xt_ban ban{};
    ban.since = now - kSec;
    ban.until = n % 2 ? now - 1 : now + 3600 * kSec;
    std::snprintf(text, sizeof(text), "198.18.%u.%u", n >> 8, n & 255);
    all.emplace_back(*parse_cidr(text), ban);
    std::snprintf(text, sizeof(text), "2001:db8:%x::/48", n);
    all.emplace_back(*parse_cidr(text), ban);
  }
  ASSERT_TRUE(state_->put_bans(all).has_value());
  auto count = [&] {  // the table's own keys, a key at a time
    const int fd = bpf_map__fd(skel_->maps.xt_bans);
    xt_ban_key key{}, next{};
    size_t n = 0;
    for (const void* at = nullptr; bpf_map_get_next_key(fd, at, &next) == 0; at = &key, n++) key = next;
    return n;
  };
  ASSERT_EQ(count(), size_t{XT_MAX_BANS}) << "the table full";

  auto listed = state_->bans();
  ASSERT_TRUE(listed.has_value()) << listed.error().message;
  std::set<std::string> v4, v6;
  for (const auto& b : *listed) {
    EXPECT_EQ(b.ban.until, now + 3600 * kSec) << format_cidr(b.cidr) << " has ended";
    (b.cidr.family == XT_FAMILY_V4 ? v4 : v6).insert(format_cidr(b.cidr));
  }
  EXPECT_EQ(listed->size(), size_t{XT_MAX_BANS / 2});
  EXPECT_EQ(v4.size(), size_t{XT_MAX_BANS / 4}) << "each IPv4 ban in force once";
  EXPECT_EQ(v6.size(), size_t{XT_MAX_BANS / 4}) << "each IPv6 ban in force once";

  ASSERT_TRUE(state_->clear_ended_bans().has_value());
  EXPECT_EQ(count(), size_t{XT_MAX_BANS / 2}) << "the ended ones gone, the others kept";
  EXPECT_EQ(state_->bans().value().size(), size_t{XT_MAX_BANS / 2});
}

}  // namespace
}  // namespace xt
