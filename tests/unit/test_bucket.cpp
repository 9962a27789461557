// SPDX-License-Identifier: MIT
// Token bucket arithmetic (bpf/bucket.h) on the host, with a clock the test
// owns: exact refill, burst, long idle, clocks going backwards, both limits,
// and budgets carried across a rule replacement.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "bucket.h"
#include "policy.h"

namespace xt {
namespace {

constexpr uint64_t kSec = kNsPerSec;
constexpr uint64_t kDay = 86400 * kSec;

xt_rule limit_rule(const std::string& rate, std::optional<uint64_t> burst = std::nullopt) {
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.rate = *parse_rate(rate);
  spec.burst = burst;
  auto rule = compile_rule(spec);
  EXPECT_TRUE(rule.has_value()) << rule.error().message;
  rule->gen = 1;
  return *rule;
}

struct Sim {
  xt_rule rule;
  xt_bucket bucket{};
  explicit Sim(xt_rule r, uint64_t t0 = 0) : rule(r) { xt_bucket_init(&bucket, &rule, t0); }
  bool send(uint64_t now, uint64_t len = 64) { return xt_meter(&bucket, &rule, now, len) == 1; }
  // Offers n packets at time now, returns how many passed.
  uint64_t offer(uint64_t now, uint64_t n, uint64_t len = 64) {
    uint64_t passed = 0;
    for (uint64_t i = 0; i < n; i++) passed += send(now, len);
    return passed;
  }
};

TEST(Bucket, BurstThenExactRefill) {
  Sim s(limit_rule("100/s"));
  EXPECT_EQ(s.offer(0, 150), 100u) << "the burst is the count in the rate";
  EXPECT_FALSE(s.send(10'000'000 - 1)) << "one token takes 10 ms";
  EXPECT_TRUE(s.send(10'000'000));
  EXPECT_FALSE(s.send(10'000'000));
  EXPECT_EQ(s.offer(kSec + 10'000'000, 1000), 100u) << "one second refills exactly 100";
}

TEST(Bucket, ExplicitBurst) {
  Sim s(limit_rule("10/s", 3));
  EXPECT_EQ(s.offer(0, 10), 3u);
  EXPECT_EQ(s.offer(100 * kSec, 10), 3u) << "refill is capped at the burst";
}

// A source that takes its whole burst at 0, then offers `per_tick` packets
// every `tick` ns (more than the rate) for `ticks` ticks: passed must be
// exactly burst + floor(count * elapsed / period).
void expect_exact(const std::string& rate, uint64_t burst, uint64_t tick, uint64_t ticks, uint64_t per_tick) {
  const xt_rule rule = limit_rule(rate, burst);
  Sim s(rule);
  uint64_t passed = s.offer(0, burst);
  for (uint64_t i = 0; i <= ticks; i++) passed += s.offer(i * tick, per_tick);
  const unsigned __int128 elapsed = static_cast<unsigned __int128>(ticks) * tick;
  const uint64_t expected =
      rule.burst + static_cast<uint64_t>(elapsed * rule.rate_count / rule.rate_period_ns);
  EXPECT_EQ(passed, expected) << rate << " over " << static_cast<uint64_t>(elapsed) << " ns";
}

TEST(Bucket, NoDriftAcrossRates) {
  expect_exact("3/s", 3, 1'000'000, 100'000, 2);            // 100 s, a token every 333.33 ms
  expect_exact("7/min", 7, 100'000'000, 36'000, 1);         // 1 h
  expect_exact("1000/day", 1000, 60 * kSec, 10 * 24 * 60, 5);  // 10 days, minute ticks
  expect_exact("999999/s", 5000, 1'000, 200'000, 3);        // 0.2 s, sub-µs interval
  expect_exact("100000000/s", 1000, 1'000, 20'000, 200);    // 100M/s: 100 tokens per µs
  // A month in ticks that never line up with the 1-day interval. (With a
  // burst of 1 the bucket would be full at each late tick and rightly lose
  // the excess, so the formula needs a burst of 2.)
  expect_exact("1/day", 2, kDay / 7, 7 * 30, 1);
}

TEST(Bucket, OnePerDay) {
  Sim s(limit_rule("1/day"));
  EXPECT_TRUE(s.send(0));
  EXPECT_FALSE(s.send(kDay - 1));
  EXPECT_TRUE(s.send(kDay));
  EXPECT_FALSE(s.send(kDay + 1));
}

TEST(Bucket, HundredMillionPerSecond) {
  Sim s(limit_rule("100000000/s"));
  EXPECT_EQ(s.offer(0, 100'000'001), 100'000'000u);
  EXPECT_FALSE(s.send(9)) << "one token takes 10 ns";
  EXPECT_TRUE(s.send(10));
  EXPECT_EQ(s.offer(1'010, 1000), 100u) << "1 µs later: exactly 100 more";
}

TEST(Bucket, LongIdleNeitherOverflowsNorExceedsBurst) {
  for (const char* rate : {"100000000/s", "1/day", "5/s"}) {
    Sim s(limit_rule(rate));
    const uint64_t burst = s.rule.burst;
    s.offer(0, burst);
    // Ten years, and the largest time the clock can show.
    EXPECT_EQ(s.offer(3650 * kDay, burst + 1), burst) << rate;
    EXPECT_EQ(s.offer(UINT64_MAX, burst + 1), burst) << rate;
  }
}

TEST(Bucket, ClockGoingBackwardsMintsNothing) {
  Sim s(limit_rule("100/s"), 50 * kSec);
  EXPECT_EQ(s.offer(50 * kSec, 100), 100u);
  EXPECT_FALSE(s.send(40 * kSec)) << "earlier time, no tokens";
  EXPECT_FALSE(s.send(50 * kSec)) << "back to the last time: the interval is not credited twice";
  EXPECT_FALSE(s.send(50 * kSec + 9'999'999));
  EXPECT_TRUE(s.send(50 * kSec + 10'000'000));
}

TEST(Bucket, BandwidthCountsBytes) {
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.bandwidth = *parse_bandwidth("8kbit/s");  // 1000 bytes/s
  spec.burst_bytes = 1500;
  xt_rule rule = *compile_rule(spec);
  rule.gen = 1;
  Sim s(rule);
  EXPECT_TRUE(s.send(0, 1000));
  EXPECT_FALSE(s.send(0, 501));
  EXPECT_TRUE(s.send(0, 500));
  EXPECT_FALSE(s.send(kSec - 1, 1000));
  EXPECT_TRUE(s.send(kSec, 1000));
}

TEST(Bucket, BothLimitsMustAllowAndADropCostsNothing) {
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.rate = *parse_rate("10/s");
  spec.bandwidth = *parse_bandwidth("8kbit/s");  // 1000 bytes/s, burst 1000
  xt_rule rule = *compile_rule(spec);
  rule.gen = 1;
  Sim s(rule);
  EXPECT_FALSE(s.send(0, 1001)) << "over the byte burst";
  EXPECT_EQ(s.offer(0, 20, 10), 10u) << "the failed packet took no packet token; packets limit now";
  EXPECT_EQ(s.bucket.passed_packets, 10u);
  EXPECT_EQ(s.bucket.dropped_packets, 11u);
  EXPECT_FALSE(s.send(0, 1)) << "packet tokens gone, bytes left: still dropped";
  EXPECT_TRUE(s.send(100'000'000, 900)) << "100 ms: one packet token, and 900 bytes left";
}

TEST(Bucket, ReplacedRuleCarriesWholeTokensOver) {
  xt_rule before = limit_rule("100/s");
  Sim s(before);
  EXPECT_EQ(s.offer(0, 60), 60u);  // 40 left

  auto replace = [](const xt_rule& old, xt_rule next) {
    next.gen = old.gen + 1;
    next.prev_gen = old.gen;
    next.prev_pkt_cost = old.pkt.cost;
    return next;
  };
  s.rule = replace(before, limit_rule("1000/s"));
  EXPECT_EQ(s.offer(0, 100), 40u) << "40 tokens carry over into the new units";

  xt_rule middle = s.rule;
  s.rule = replace(middle, limit_rule("10/s", 5));
  s.bucket.pkt_tokens = middle.pkt.cost * 30;  // 30 tokens under the middle rule
  EXPECT_EQ(s.offer(0, 100), 5u) << "clamped to the new, smaller burst";

  xt_rule last = s.rule;
  xt_rule unrelated = limit_rule("10/s", 7);
  unrelated.gen = last.gen + 2;  // the bucket missed a version: starts full
  unrelated.prev_gen = last.gen + 1;
  s.rule = unrelated;
  EXPECT_EQ(s.offer(0, 100), 7u);
}

TEST(Keys, BucketKeyMasksToPer) {
  xt_pkt pkt{XT_FAMILY_V4, {198, 18, 7, 77}};
  xt_rule rule = limit_rule("10/s");
  rule.id = 9;
  rule.per_len = 24;
  xt_bucket_key key;
  xt_bucket_key_for(&pkt, &rule, &key);
  EXPECT_EQ(key.rule_id, 9u);
  EXPECT_EQ(key.per_len, 24);
  EXPECT_EQ(format_addr(XT_FAMILY_V4, key.addr), "198.18.7.0");
  rule.per_len = 0;
  xt_bucket_key_for(&pkt, &rule, &key);
  EXPECT_EQ(format_addr(XT_FAMILY_V4, key.addr), "0.0.0.0");

  xt_pkt v6{XT_FAMILY_V6, {}};
  inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", v6.addr);
  rule.per_len = 61;
  xt_bucket_key_for(&v6, &rule, &key);
  EXPECT_EQ(format_addr(XT_FAMILY_V6, key.addr), "2001:db8:1::");
}

}  // namespace
}  // namespace xt
