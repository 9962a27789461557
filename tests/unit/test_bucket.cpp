// SPDX-License-Identifier: MIT
// Bucket arithmetic (bpf/gcra.h, bpf/meter.h) on the host with a clock the test owns,
// counted in kernel ticks: exact refill at any tick rate, burst, long idle,
// clock skew between CPUs and words left past the horizon, both limits, budgets carried across a rule
// replacement, the hot cache's certainty, the bucket table's ways and stamps, and a
// randomized cross-check against an independent token-bucket model.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>

#include "keys.h"
#include "meter.h"
#include "slots.h"
#include "policy.h"
#include "rules.h"
#include "reference_bucket.h"

namespace xt {
namespace {

constexpr uint32_t kMsHz = 1000;  // ticks are milliseconds in most tests (test_policy.cpp: 250)

xt_rule limit_rule(const std::string& rate, std::optional<uint64_t> burst = std::nullopt, uint32_t hz = kMsHz) {
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.rates = {*parse_rate(rate)};
  if (burst) spec.bursts = {*burst};
  auto rule = compile_rule(spec, hz);
  EXPECT_TRUE(rule.has_value()) << rate << ": " << rule.error().message;
  rule->gen = 1;
  return *rule;
}

// 1000 bytes/s (8 kbit/s) with a byte burst of 1500, and no packet limit.
xt_rule bandwidth_rule() {
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.bandwidths = {*parse_bandwidth("8kbit/s")};
  spec.burst_bytes = {1500};
  xt_rule rule = *compile_rule(spec, kMsHz);
  rule.gen = 1;
  return rule;
}

struct Sim {
  xt_rule rule;
  xt_bucket bucket{};
  explicit Sim(xt_rule r, uint64_t t0 = 0) : rule(r) { xt_bucket_init(&bucket, &rule, t0); }
  bool send(uint64_t now, uint64_t len = 64) { return xt_meter(&bucket, &rule, now, len) == 1; }
  // Offers n packets at tick now, returns how many passed.
  uint64_t offer(uint64_t now, uint64_t n, uint64_t len = 64) {
    uint64_t passed = 0;
    for (uint64_t i = 0; i < n; i++) passed += send(now, len);
    return passed;
  }
};

// How long ago a 32-bit tick was, for what ends a while after the last
// drop: a drop up to `ahead` past now is ahead (another CPU's clock, a
// hold's end); anything else is behind, however far, to 2^32 ticks.
TEST(Ticks, ALastDropIsAheadOnlyWithinItsReach) {
  const uint32_t gap = 1000, ahead = 30000;
  for (uint32_t now : {5000u, 0u, 0xffffff00u}) {
    EXPECT_FALSE(xt_ticks_since(now, now, gap, ahead)) << now << ": just now";
    EXPECT_FALSE(xt_ticks_since(now, now - 999, gap, ahead)) << now << ": under the gap";
    EXPECT_TRUE(xt_ticks_since(now, now - 1000, gap, ahead)) << now << ": the gap";
    EXPECT_TRUE(xt_ticks_since(now, now - 0x90000000u, gap, ahead)) << now << ": 28 days back at HZ=1000, past 2^31";
    EXPECT_FALSE(xt_ticks_since(now, now + 1, gap, ahead)) << now << ": a tick ahead";
    EXPECT_FALSE(xt_ticks_since(now, now + ahead, gap, ahead)) << now << ": at the end of its reach";
    EXPECT_TRUE(xt_ticks_since(now, now + ahead + 1, gap, ahead)) << now << ": past it, long ago across the wrap";
  }
}

TEST(Bucket, BurstThenExactRefill) {
  Sim s(limit_rule("100/s"));
  EXPECT_EQ(s.offer(0, 150), 100u) << "the burst is the count in the rate";
  EXPECT_FALSE(s.send(9)) << "one token takes 10 ticks (ms)";
  EXPECT_TRUE(s.send(10));
  EXPECT_FALSE(s.send(10));
  EXPECT_EQ(s.offer(1010, 1000), 100u) << "one second refills exactly 100";
}

TEST(Bucket, ExplicitBurst) {
  Sim s(limit_rule("10/s", 3));
  EXPECT_EQ(s.offer(0, 10), 3u);
  EXPECT_EQ(s.offer(100'000, 10), 3u) << "refill is capped at the burst";
}

// A source that takes its whole burst at 0, then every `tick` ticks for
// `ticks` steps offers more than the rate brings: passed must be exactly
// burst + floor(count * elapsed / period).
void expect_exact(const std::string& rate, uint64_t burst, uint32_t hz, uint64_t tick, uint64_t ticks) {
  const xt_rule rule = limit_rule(rate, burst, hz);
  const Rate r = *parse_rate(rate);
  const uint64_t per_tick = r.count * tick / (r.period_ns / kNsPerSec * hz) + 2;
  Sim s(rule);
  uint64_t passed = s.offer(0, burst);
  for (uint64_t i = 0; i <= ticks; i++) passed += s.offer(i * tick, per_tick);
  const unsigned __int128 elapsed_ns = static_cast<unsigned __int128>(ticks) * tick * kNsPerSec / hz;
  const uint64_t expected = burst + static_cast<uint64_t>(elapsed_ns * r.count / r.period_ns);
  EXPECT_EQ(passed, expected) << rate << " at " << hz << " Hz over " << ticks * tick << " ticks";
}

TEST(Bucket, NoDriftAcrossRatesAndTickRates) {
  for (uint32_t hz : {100u, 250u, 300u, 1000u}) {
    expect_exact("3/s", 3, hz, 1, 100 * hz);                   // 100 s, a token every 1/3 s
    expect_exact("7/min", 7, hz, 1, 3600 * hz);                // 1 h
    expect_exact("1000/day", 1000, hz, 60 * hz, 10 * 24 * 60);  // 10 days, minute steps
    expect_exact("999999/s", 20000, hz, 1, hz / 5);            // 0.2 s at ~1M/s
  }
  expect_exact("100000000/s", 200000, 1000, 1, 3);  // 100M/s: 100000 a tick
  // A month of 1/day in steps that never line up with the 1-day interval.
  // (With a burst of 1 the bucket would be full at each late step and rightly
  // lose the excess, so the formula needs a burst of 2.)
  expect_exact("1/day", 2, 250, 86400 * 250 / 7 + 3, 7 * 30);
}

TEST(Bucket, OnePerDay) {
  const uint64_t day = 86400ULL * kMsHz;
  Sim s(limit_rule("1/day"));
  EXPECT_TRUE(s.send(0));
  EXPECT_FALSE(s.send(day - 1));
  EXPECT_TRUE(s.send(day));
  EXPECT_FALSE(s.send(day + 1));
}

TEST(Bucket, HundredMillionPerSecond) {
  Sim s(limit_rule("100000000/s", 200'000));
  EXPECT_EQ(s.offer(0, 200'001), 200'000u);
  EXPECT_EQ(s.offer(1, 150'000), 100'000u) << "one 1 ms tick brings exactly 100000";
}

TEST(Bucket, LongIdleRefillsToTheBurstAndNoFurther) {
  for (const char* rate : {"100000000/s", "1/day", "5/s", "999999/s"}) {
    const xt_rule rule = limit_rule(rate, std::nullopt, 250);
    Sim s(rule);
    const uint64_t full = parse_rate(rate)->count;  // the default burst
    const uint64_t burst = full > 1'000'000 ? 1'000'000 : full;
    s.offer(0, burst);
    // A year of ticks at 250 Hz: within the horizon compile_rule guarantees.
    const uint64_t year = 365ULL * 86400 * 250;
    EXPECT_EQ(xt_available(&rule.limit[0], s.bucket.word[0], year), full) << rate;
    EXPECT_EQ(xt_available(&rule.limit[0], s.bucket.word[0], 10 * year + 17), full) << rate << " after ten years";
  }
}

// CPUs read the clock a tick apart: a word written by a CPU whose clock is
// ahead reads as spent on one that is behind, never as a fresh burst.
TEST(Bucket, ClockSkewBetweenCpusMintsNothing) {
  const uint64_t t = 50'000;
  Sim s(limit_rule("100/s"), t);
  EXPECT_EQ(s.offer(t, 100), 100u);
  EXPECT_FALSE(s.send(t - XT_SKEW_TICKS)) << "a clock behind by the most skew allowed, no tokens";
  EXPECT_FALSE(s.send(t - 1));
  EXPECT_FALSE(s.send(t)) << "back to the last time: still nothing";
  EXPECT_FALSE(s.send(t + 9));
  EXPECT_TRUE(s.send(t + 10));
  EXPECT_FALSE(s.send(t + 10)) << "the trip behind credited nothing twice";
}

// A word nothing wrote for longer than the horizon has wrapped around: its
// TAT looks far in the future. The clock never goes back, so it is a source
// idle that long, and its bucket is full (a regression the bucket fuzzer
// found: it used to read as empty, and could stay so for another horizon).
TEST(Bucket, AWordUnwrittenPastTheHorizonReadsFull) {
  for (uint32_t hz : {100u, 250u, 1000u}) {
    for (const char* rate : {"1/s", "1000/s", "999999/s", "100000000/s"}) {
      const xt_rule rule = limit_rule(rate, 4, hz);
      Sim s(rule);
      EXPECT_EQ(s.offer(0, 10), 4u) << rate;
      const uint64_t wrap = (1ULL << XT_TAT_BITS) / rule.limit[0].fill;  // ticks for the TAT to come around
      for (uint64_t later : {wrap / 2 + 1, wrap / 2 + 12345, wrap - 3 * wrap / 8, wrap + wrap / 4}) {
        ASSERT_GT(later, XT_MIN_HORIZON_SECONDS * hz) << rate;
        EXPECT_EQ(xt_available(&rule.limit[0], s.bucket.word[0], later), 4u)
            << rate << " at " << hz << " Hz, " << later << " ticks on";
      }
    }
  }
}

// A bucket's last drop is kept if a later one is recorded (another CPU's,
// the end of a hold, at most `reach` ahead), else replaced: wherever the
// 32-bit clock is, a zeroed or old stamp is no drop in the future. (Compared
// plainly, a bucket made while the clock's low 32 bits were 2^31 or more,
// as for the first five minutes after boot, never recorded a drop.)
TEST(Bucket, ALastDropIsRecordedWhereverTheClockIs) {
  constexpr uint32_t reach = 30000 + 4096;
  for (const uint32_t now : {0u, 1000u, (1u << 31) - 1, 1u << 31, (1u << 31) + 5, 0xffffffffu - 300000}) {
    xt_bucket b{};
    xt_note_drop(&b, now, now, reach);
    EXPECT_EQ(b.last_drop, now) << "a zeroed bucket, at " << now;
    b.last_drop = now - (1u << 31) - 10;  // older than 2^31 ticks
    xt_note_drop(&b, now, now, reach);
    EXPECT_EQ(b.last_drop, now) << "an old stamp, at " << now;
    xt_note_drop(&b, now + 2000, now, reach);
    EXPECT_EQ(b.last_drop, now + 2000) << "the end of a hold";
    xt_note_drop(&b, now, now, reach);
    EXPECT_EQ(b.last_drop, now + 2000) << "a hold's end is not moved back by a drop now";
    xt_note_drop(&b, now + 1000, now, reach);
    EXPECT_EQ(b.last_drop, now + 2000) << "nor by an earlier end";
    b.last_drop = now + reach + 1;  // further ahead than any hold
    xt_note_drop(&b, now, now, reach);
    EXPECT_EQ(b.last_drop, now) << "a stamp no hold reaches is replaced";
  }
  // A fresh bucket starts with its last drop at now, not 0.
  xt_rule r{};
  xt_bucket b{};
  xt_bucket_init(&b, &r, (1ull << 32) + (1u << 31) + 7);
  EXPECT_EQ(b.last_drop, (1u << 31) + 7);
}

TEST(Bucket, BandwidthCountsBytes) {
  Sim s(bandwidth_rule());
  EXPECT_TRUE(s.send(0, 1000));
  EXPECT_FALSE(s.send(0, 501));
  EXPECT_TRUE(s.send(0, 500));
  EXPECT_FALSE(s.send(999, 1000));
  EXPECT_TRUE(s.send(1000, 1000));
  EXPECT_FALSE(s.send(100'000, 1501)) << "more than the byte burst never passes";
}

TEST(Bucket, BothLimitsMustAllowAndADropCostsNothing) {
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.rates = {*parse_rate("10/s")};
  spec.bandwidths = {*parse_bandwidth("8kbit/s")};  // 1000 bytes/s, burst 1000
  xt_rule rule = *compile_rule(spec, kMsHz);
  rule.gen = 1;
  Sim s(rule);
  EXPECT_FALSE(s.send(0, 1001)) << "over the byte burst";
  EXPECT_EQ(s.offer(0, 20, 10), 10u) << "the failed packet took no packet token; packets limit now";
  EXPECT_EQ(s.bucket.passed_packets, 10u);
  EXPECT_EQ(s.bucket.dropped_packets, 11u);
  EXPECT_FALSE(s.send(0, 1)) << "packet tokens gone, bytes left: still dropped";
  EXPECT_TRUE(s.send(100, 900)) << "100 ms: one packet token, and 900 bytes left";
}

xt_rule replace(const xt_rule& old, xt_rule next) {
  next.gen = static_cast<uint8_t>(old.gen % XT_GEN_MAX + 1);
  next.prev_gen = old.gen;
  next.prev[0] = old.limit[0];
  return next;
}

TEST(Bucket, ReplacedRuleCarriesWholeTokensOver) {
  xt_rule before = limit_rule("100/s");
  Sim s(before);
  EXPECT_EQ(s.offer(0, 60), 60u);  // 40 left

  s.rule = replace(before, limit_rule("1000/s"));
  EXPECT_EQ(s.offer(0, 100), 40u) << "40 tokens carry over into the new units";

  xt_rule middle = s.rule;
  s.rule = replace(middle, limit_rule("10/s", 5));
  s.bucket.word[0] = xt_word(xt_scaled(&middle.limit[0], 0) + middle.limit[0].cap - 30 * middle.limit[0].cost, middle.gen);
  EXPECT_EQ(s.offer(0, 100), 5u) << "30 tokens, clamped to the new, smaller burst";

  xt_rule last = s.rule;
  xt_rule unrelated = limit_rule("10/s", 7);
  unrelated.gen = static_cast<uint8_t>(last.gen + 2);  // the bucket missed a version: starts full
  unrelated.prev_gen = static_cast<uint8_t>(last.gen + 1);
  s.rule = unrelated;
  EXPECT_EQ(s.offer(0, 100), 7u);
}

// The controller records the tick of a change, walks the table (seconds, on
// a big one), then installs the rule: a throttled source metered under the
// old rule meanwhile must come out spent, not with a fresh burst.
TEST(Bucket, AReplacementInstalledLateGivesNoFreshBurst) {
  const xt_rule before = limit_rule("10/s", 5);
  Sim s(before);
  const uint64_t recorded = 1000, installed = 1000 + 30 * kMsHz;  // a 30 s walk
  EXPECT_EQ(s.offer(recorded, 10), 5u);
  EXPECT_EQ(s.offer(installed, 10), 5u) << "refilled over the walk, throttled again at its end";
  xt_rule next = replace(before, limit_rule("10/s", 50));
  next.replaced_at = recorded;
  s.rule = next;
  EXPECT_EQ(s.offer(installed + 1, 10), 0u) << "spent as of now, not as of the recorded tick";
  EXPECT_EQ(s.offer(installed + 100, 10), 1u) << "and refilling at the new rate";
}

// A replacement that leaves a window as it was (another --ban-for, or
// --new-rate) converted its word to whole tokens all the same and lost the
// fraction of the next one: under 1/day with a burst of 1, a source that
// sent at 0, its rule replaced at 23 h, waited until 47 h for the token due
// at 24 h. A changed window still carries whole tokens only.
TEST(Bucket, AReplacementThatKeepsAWindowKeepsItsWordWhole) {
  const uint64_t h = 3600 * kMsHz;
  const xt_rule before = limit_rule("1/day", 1);
  Sim s(before);
  EXPECT_TRUE(s.send(0));
  xt_rule same = replace(before, limit_rule("1/day", 1));
  same.replaced_at = 23 * h;
  s.rule = same;
  EXPECT_FALSE(s.send(23 * h + 1)) << "not due yet";
  EXPECT_TRUE(s.send(24 * h)) << "due a day after the last, as before the replacement";
  EXPECT_FALSE(s.send(24 * h + 1));
}

// The hot cache drops a source's packets until now + wait without asking the
// bucket: each of those drops must be one the bucket would have made too.
TEST(Bucket, WaitIsCertain) {
  for (const char* rate : {"100/s", "7/min", "3/s", "1000000/s"}) {
    for (uint32_t hz : {250u, 1000u}) {
      xt_rule rule = limit_rule(rate, 2, hz);
      Sim s(rule);
      uint64_t now = 12345;
      for (int round = 0; round < 50; round++) {
        while (s.send(now)) {
        }
        const uint64_t wait = xt_meter_wait(&rule, &s.bucket, now, XT_MIN_FRAME_V4);
        ASSERT_GT(wait, 0u) << rate;
        Sim probe = s;
        EXPECT_FALSE(probe.send(now + wait - 1)) << rate << " at " << hz << " Hz: dropped within the wait";
        EXPECT_TRUE(probe.send(now + wait)) << rate << " at " << hz << " Hz: passes right after it";
        now += wait + round % 3;
      }
    }
  }
}

TEST(Bucket, WaitForBytesAssumesTheSmallestFrame) {
  const xt_rule rule = bandwidth_rule();
  Sim s(rule);
  EXPECT_TRUE(s.send(0, 1490));
  EXPECT_FALSE(s.send(0, 100));
  const uint64_t wait = xt_meter_wait(&rule, &s.bucket, 0, xt_min_frame(XT_FAMILY_V4, XT_LINK_ETHER));
  EXPECT_EQ(wait, XT_MIN_FRAME_V4 - 10u) << "a 34-byte frame fits after 24 ms";
  EXPECT_FALSE(s.send(wait - 1, XT_MIN_FRAME_V4));
  EXPECT_TRUE(s.send(wait, XT_MIN_FRAME_V4));
}

// An independent formulation (reference_bucket.h); fuzz/fuzz_bucket.cpp
// explores the same agreement over any rule and any traffic.
TEST(Bucket, AgreesWithAClassicTokenBucketOnRandomTraffic) {
  std::mt19937_64 rng(42);
  const char* rates[] = {"1/s", "3/s", "100/s", "6000/min", "50000/hour", "1000/day", "999999/s", "100000000/s"};
  for (uint32_t hz : {100u, 250u, 300u, 1000u}) {
    for (const char* rate : rates) {
      const uint64_t burst = 1 + rng() % 50;
      xt_rule rule = limit_rule(rate, burst, hz);
      Sim s(rule);
      auto ref = test::ReferenceBucket::full(rule.limit[0], 0);
      uint64_t now = 0, agree = 0;
      for (int i = 0; i < 20000; i++) {
        // Mostly bursts at one tick, sometimes a pause of up to ~a period.
        const Rate r = *parse_rate(rate);
        if (rng() % 4 == 0) now += rng() % (r.period_ns / kNsPerSec * hz / r.count * 3 + 2);
        const bool mine = s.send(now), theirs = ref.send(now, 1);
        ASSERT_EQ(mine, theirs) << rate << " burst " << burst << " at " << hz << " Hz, packet " << i << " tick "
                                << now;
        agree += mine;
      }
      EXPECT_GT(agree, 0u);
    }
  }
}

TEST(Keys, BucketKeyMasksToPer) {
  xt_pkt pkt{.addr = {198, 18, 7, 77}, .family = XT_FAMILY_V4};
  xt_bucket_key key;
  xt_bucket_key_for(&pkt, 9, 24, &key);
  EXPECT_EQ(key.rule_id, 9u);
  EXPECT_EQ(key.per_len, 24);
  EXPECT_EQ(format_addr(XT_FAMILY_V4, key.addr), "198.18.7.0");
  xt_bucket_key_for(&pkt, 9, 0, &key);
  EXPECT_EQ(format_addr(XT_FAMILY_V4, key.addr), "0.0.0.0");

  xt_pkt v6{.addr = {}, .family = XT_FAMILY_V6};
  inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", v6.addr);
  xt_bucket_key_for(&v6, 9, 61, &key);
  EXPECT_EQ(format_addr(XT_FAMILY_V6, key.addr), "2001:db8:1::");
}

TEST(Slots, UsedStampsAgeAndCycle) {
  xt_config cfg{};
  cfg.used_shift = 2;   // units of 4 ticks
  cfg.used_idle = 100;  // untracked after 100 units
  for (uint64_t t0 : {0ULL, 4ULL * 65535, 4ULL * 65536, 987654321ULL}) {
    const uint16_t used = xt_used_now(&cfg, t0);
    EXPECT_TRUE(xt_used_recent(&cfg, used, xt_used_now(&cfg, t0))) << t0;
    EXPECT_TRUE(xt_used_recent(&cfg, used, xt_used_now(&cfg, t0 + 4 * 100))) << t0 << ": within the window, across the wrap";
    EXPECT_FALSE(xt_used_recent(&cfg, used, xt_used_now(&cfg, t0 + 4 * 101))) << t0 << ": idle past the window";
  }
  // A stamp ahead of this CPU's clock (another CPU read it later): in use,
  // up to a second's worth of units, not a cycle old.
  cfg.hz = 1000;
  ASSERT_EQ(xt_age_ahead(&cfg), 250);
  for (uint16_t unit : {uint16_t{5000}, uint16_t{65535}}) {
    EXPECT_TRUE(xt_used_recent(&cfg, static_cast<uint16_t>(unit + 1), unit)) << unit << ": a unit ahead";
    EXPECT_TRUE(xt_used_recent(&cfg, static_cast<uint16_t>(unit + 250), unit)) << unit << ": a second ahead";
    EXPECT_FALSE(xt_used_recent(&cfg, static_cast<uint16_t>(unit + 251), unit)) << unit << ": past that, a cycle old";
  }
}

TEST(Slots, WhereAFingerprintIsAndWhereANewcomerGoes) {
  static_assert(XT_BUCKET_WAYS == 15);
  const uint32_t idle = 50;
  const uint16_t ahead = 2;
  xt_set_tags home{}, next{};
  auto put = [](xt_set_tags& t, int way, uint16_t fp, uint16_t used) {
    t.way[way].half[XT_TAG_FP] = fp;
    t.way[way].half[XT_TAG_USED] = used;
  };
  const uint16_t fps[15] = {7, 9, 11, 9, 5, 6, 8, 3, 13, 15, 17, 19, 21, 23, 25};
  const uint16_t used[15] = {100, 90, 99, 95, 99, 98, 97, 96, 99, 99, 99, 99, 99, 99, 99};
  for (int i = 0; i < 15; i++) put(home, i, fps[i], used[i]);
  EXPECT_EQ(xt_tag_fp(&home, 3), 9);
  EXPECT_EQ(xt_tag_used(&home, 3), 95) << "the two halves of one word";
  EXPECT_EQ(xt_locate(&home, nullptr, 9, XT_NOWHERE), XT_PLACE(0, 1)) << "the first way holding it";
  EXPECT_EQ(xt_locate(&home, nullptr, 9, XT_PLACE(0, 1)), XT_PLACE(0, 3)) << "then the next one";
  EXPECT_EQ(xt_locate(&home, nullptr, 9, XT_PLACE(0, 3)), XT_NOWHERE);
  EXPECT_EQ(xt_locate(&home, nullptr, 25, XT_NOWHERE), XT_PLACE(0, 14)) << "the last way";
  EXPECT_EQ(xt_locate(&home, nullptr, 4, XT_NOWHERE), XT_NOWHERE);
  int lru = -1;
  uint32_t seen = 0;
  EXPECT_EQ(xt_free_way(&home, 100, idle, ahead, &lru, &seen), -1) << "every way in use";
  EXPECT_EQ(lru, 1) << "the least recently used";
  // The word each choice was made on, for the claim's compare-and-swap
  // to expect: it expected the word read again after the choice, and took
  // a way another CPU had claimed in between.
  EXPECT_EQ(seen, home.way[1].word);
  EXPECT_EQ(xt_fp_of(0x1234567800000000ull), 1) << "never 0, which marks a free way";
  EXPECT_EQ(xt_fp_of(0xabcd), 0xabcd);

  // All ways tracked: a newcomer goes to the next set, which home then
  // points to for good.
  ASSERT_FALSE(xt_spilled(&home));
  seen = 1;
  EXPECT_EQ(xt_newcomer_place(&home, &next, 100, idle, ahead, &seen), XT_PLACE(1, 0));
  EXPECT_EQ(seen, 0u) << "the next set's way, free";
  put(next, 0, 4, 100);
  ASSERT_TRUE(xt_spilled(&home));
  EXPECT_EQ(xt_locate(&home, &next, 4, XT_NOWHERE), XT_PLACE(1, 0));
  EXPECT_EQ(xt_locate(&home, &next, 4, XT_PLACE(1, 0)), XT_NOWHERE);
  EXPECT_EQ(xt_locate(&home, nullptr, 4, XT_NOWHERE), XT_NOWHERE) << "not looked for where home did not spill";
  put(next, 5, 9, 100);
  EXPECT_EQ(xt_locate(&home, &next, 9, XT_PLACE(0, 3)), XT_PLACE(1, 5)) << "from the home set on to the next";
  put(next, 5, 0, 0);
  EXPECT_TRUE(xt_spilled(&home)) << "a spill is not forgotten when the window is over: a quiet source there keeps its slot";
  // The next set full too: home's least recently used way.
  for (int i = 0; i < 15; i++) put(next, i, static_cast<uint16_t>(100 + i), 100);
  EXPECT_EQ(xt_newcomer_place(&home, &next, 100, idle, ahead, &seen), XT_PLACE(0, 1));
  EXPECT_EQ(seen, home.way[1].word) << "home's least recently used, the next set full";
  // A way gone idle in home comes first, across the stamps' wrap.
  for (int i = 0; i < 15; i++) put(home, i, fps[i], 20);
  put(home, 5, fps[5], 65530);
  EXPECT_EQ(xt_free_way(&home, 30, idle, ahead, nullptr, nullptr), -1) << "65530 is 36 units before 30: not idle";
  put(home, 5, fps[5], 65000);
  EXPECT_EQ(xt_newcomer_place(&home, &next, 30, idle, ahead, &seen), XT_PLACE(0, 5)) << "idle past the window: taken";
  EXPECT_EQ(seen, home.way[5].word);
  put(home, 2, 0, 20);
  put(home, 5, fps[5], 20);
  EXPECT_EQ(xt_free_way(&home, 30, idle, ahead, nullptr, nullptr), 2) << "a free way";
  // A stamp ahead of this CPU's clock is in use: neither idle nor the
  // least recently used (read as a cycle old, it was both).
  put(home, 2, fps[2], 32);
  put(home, 5, fps[5], 31);
  EXPECT_EQ(xt_free_way(&home, 30, idle, ahead, nullptr, nullptr), -1) << "stamps one and two units ahead";
  put(home, 5, fps[5], 33);
  EXPECT_EQ(xt_free_way(&home, 30, idle, ahead, nullptr, nullptr), 5) << "three ahead is past `ahead`: a cycle old, so idle";
  for (int i = 0; i < 15; i++) put(home, i, fps[i], 25);
  put(home, 7, fps[7], 31);
  put(home, 9, fps[9], 24);
  EXPECT_EQ(xt_free_way(&home, 30, idle, ahead, &lru, nullptr), -1);
  EXPECT_EQ(lru, 9) << "the oldest, not the one a unit ahead";
}

// A home set filling up sends newcomers on to the next set while that one
// is emptier, so that neither fills while the other has room: filled to its
// last way first, a home set left its overflow to a next set its own keys
// had filled, and a botnet of three quarters of the table evicted sources
// still sending in about one default table of thirty (tools/bench/placement.py).
TEST(Slots, ANewcomerOfAFullishSetGoesToTheEmptierNextOne) {
  const uint32_t idle = 50;
  const uint16_t ahead = 2, unit = 100;
  auto fill = [](xt_set_tags& t, int ways) {
    t = {};
    for (int i = 0; i < ways; i++) {
      t.way[i].half[XT_TAG_FP] = static_cast<uint16_t>(1 + i);
      t.way[i].half[XT_TAG_USED] = unit;
    }
  };
  xt_set_tags home{}, next{};
  uint32_t seen = 1;
  fill(home, XT_SPILL_FROM - 1);
  fill(next, 0);
  EXPECT_EQ(xt_newcomer_place(&home, &next, unit, idle, ahead, &seen), XT_PLACE(0, XT_SPILL_FROM - 1))
      << "room early in the home set: home, however empty the next";
  EXPECT_FALSE(xt_spilled(&home));
  fill(home, XT_SPILL_FROM);
  fill(next, 3);
  seen = 1;
  EXPECT_EQ(xt_newcomer_place(&home, &next, unit, idle, ahead, &seen), XT_PLACE(1, 3))
      << XT_SPILL_FROM << " in use at home, 3 in the next set: the next";
  EXPECT_EQ(seen, 0u) << "the next set's free way, as judged";
  EXPECT_TRUE(xt_spilled(&home)) << "and lookups look there";
  fill(home, XT_SPILL_FROM);
  fill(next, XT_SPILL_FROM);
  EXPECT_EQ(xt_newcomer_place(&home, &next, unit, idle, ahead, &seen), XT_PLACE(0, XT_SPILL_FROM))
      << "both as full: home";
  EXPECT_EQ(seen, home.way[XT_SPILL_FROM].word);
  EXPECT_FALSE(xt_spilled(&home));
  fill(home, XT_BUCKET_WAYS);
  fill(next, XT_BUCKET_WAYS - 1);
  EXPECT_EQ(xt_newcomer_place(&home, &next, unit, idle, ahead, &seen), XT_PLACE(1, XT_BUCKET_WAYS - 1))
      << "home full: the next set's last free way, as before";
}

// The marks are a filter in front of the tags: a mark in any way must be
// found (or a tracked source would be taken for a newcomer); one in no way
// must not be, nor may the `spilled` byte pass for a way.
TEST(Slots, MarksTellWhetherAKeyMayBeInASet) {
  EXPECT_EQ(xt_mark_of(0x1234567800abffffull), 0xab);
  EXPECT_EQ(xt_mark_of(0xffffffffff00ffffull), 1) << "never 0, which a way never written has";
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; round++) {
    xt_set_marks m{};
    const int filled = round % (XT_BUCKET_WAYS + 1);
    for (int w = 0; w < filled; w++) m.way[w] = static_cast<uint8_t>(rng() % 4 ? rng() % 255 + 1 : 0x80);
    m.spilled = static_cast<uint8_t>(rng() % 256);
    for (int mark = 1; mark < 256; mark++) {
      bool naive = false;
      for (int w = 0; w < XT_BUCKET_WAYS; w++) naive |= m.way[w] == mark;
      ASSERT_EQ(xt_marks_hold(&m, static_cast<uint8_t>(mark)) != 0, naive)
          << "round " << round << ", mark " << mark << ", spilled " << int(m.spilled);
    }
  }
  xt_set_marks home{}, next{};
  home.way[3] = 0x11;
  next.way[14] = 0x22;
  EXPECT_TRUE(xt_marks_may_hold(&home, &next, 0x11));
  EXPECT_FALSE(xt_marks_may_hold(&home, &next, 0x22)) << "the next set is not looked at where home never spilled";
  home.spilled = 1;
  EXPECT_TRUE(xt_marks_may_hold(&home, &next, 0x22)) << "and is once it did";
  EXPECT_FALSE(xt_marks_may_hold(&home, &next, 0x33));
}

}  // namespace
}  // namespace xt
