// SPDX-License-Identifier: MIT
// Several windows in one rule (issue 13): each a GCRA of its own over a word
// of the source's bucket, a packet passing only if every one allows it.
// Checked through the real object with the settable clock, against a model
// of classic token buckets (tests/common/reference_bucket.h) that shares no
// code with the program.
#include <gtest/gtest.h>

#include <array>

#include "packet.h"
#include "program.h"
#include "reference_bucket.h"
#include "rules.h"

namespace xt {
namespace {

using test::kHz;
using test::kMs;
using test::kSec;
using test::Packet;
using test::Program;
using test::ReferenceBucket;

constexpr uint64_t kMinute = 60 * kSec, kDay = 86400 * kSec;

// The windows of a rule as the operator writes them, e.g. {"100/min", "1000/day"}.
std::function<void(RuleSpec&)> windows(std::vector<std::string> rates, std::vector<uint64_t> bursts = {}) {
  return [=](RuleSpec& s) {
    s.rates.clear();
    for (const auto& r : rates) s.rates.push_back(*parse_rate(r));
    s.bursts = bursts;
  };
}

// The seed's quota: `rule add 0.0.0.0/0 --rate 100/min --rate 1000/day`, a
// source sending 4 packets a second for a whole simulated day. Every
// verdict is the model's (two token buckets, a packet taking a token from
// each or passing neither); and what the operator reads off it holds: 100
// at once and 100 a minute until the day's 1000 at once are spent, then
// 1000 a day.
TEST_F(Program, TheSeedsQuotaHoldsOverASimulatedDay) {
  load();
  rule("0.0.0.0/0", std::nullopt, std::nullopt, windows({"100/min", "1000/day"}));
  const xt_rule compiled = state_->rules().value().at(0).rule;
  ASSERT_EQ(compiled.limits, 0b11);
  ReferenceBucket minute = ReferenceBucket::full(compiled.limit[0], 0);
  ReferenceBucket day = ReferenceBucket::full(compiled.limit[1], 0);

  const auto frame = Packet().ipv4("198.18.0.7").build();
  constexpr uint64_t kEvery = 250 * kMs;
  uint64_t passed = 0, in_first_minute = 0, disagreements = 0;
  uint64_t day_binds_at = 0;  // when the minute window had a token the day window did not
  for (uint64_t now = 0; now < kDay; now += kEvery) {
    minute.refill(now);
    day.refill(now);
    const bool want = minute.has(1) && day.has(1);
    if (!day_binds_at && minute.has(1) && !day.has(1)) day_binds_at = now;
    if (want) minute.take(1), day.take(1);
    const bool got = run(frame, now) == XDP_PASS;
    disagreements += got != want;
    passed += got;
    if (now <= kMinute) in_first_minute += got;
  }
  EXPECT_EQ(disagreements, 0u) << "every verdict of the day is the model's";
  EXPECT_EQ(in_first_minute, 200u) << "the minute's burst of 100, and 100 more by the minute's end";
  // 100 + 100 a minute reaches the day's burst of 1000 (and the trickle of
  // 1000 a day it earned meanwhile) after about nine minutes.
  EXPECT_GT(day_binds_at, 9 * kMinute);
  EXPECT_LT(day_binds_at, 10 * kMinute);
  EXPECT_EQ(passed, 1999u) << "a day: the burst of 1000 and 1000 a day (the last token is due at the day's end)";
  const xt_rule_stats s = rule_stats("0.0.0.0/0");
  EXPECT_EQ(s.passed_packets, passed);
  EXPECT_EQ(s.passed_packets + s.dropped_packets, kDay / kEvery);
}

// The tightest window decides at each moment, packets and bytes alike: 10
// a second (5 at once), 50 a minute (20 at once) and 8000 bytes a minute,
// under bursts of 10 frames every 700 ms for two minutes: of 100 bytes in
// the first minute, of 1000 in the second.
// Every verdict is the model's, and each window is, at some moment, the
// one that refuses a packet the others would pass.
TEST_F(Program, EveryWindowMustAllowAPacket) {
  load();
  rule("198.18.0.0/15", std::nullopt, std::nullopt, [](RuleSpec& s) {
    windows({"10/s", "50/min"}, {5, 20})(s);
    s.bandwidths = {*parse_bandwidth("64kbit/min")};
  });
  const xt_rule r = state_->rules().value().at(0).rule;
  ASSERT_EQ(r.limits, 0b111);
  ASSERT_EQ(r.byte_limits, 0b100) << "the packet windows, then the byte window";
  std::array<ReferenceBucket, 3> model;
  for (int p = 0; p < 3; p++) model[p] = ReferenceBucket::full(r.limit[p], 0);
  const auto small = Packet().ipv4("198.18.0.1").size(100).build();
  const auto large = Packet().ipv4("198.18.0.1").size(1000).build();
  uint64_t passed = 0, passed_bytes = 0, disagreements = 0;
  std::array<uint64_t, 3> alone_refused{};  // packets only this window refused
  for (uint64_t now = 0; now <= 2 * kMinute; now += 700 * kMs) {
    const auto& frame = now < kMinute ? small : large;
    const uint64_t units[3] = {1, 1, frame.size()};
    for (int i = 0; i < 10; i++) {
      int refusing = 0, which = -1;
      for (int p = 0; p < 3; p++) {
        model[p].refill(now);
        if (!model[p].has(units[p])) refusing++, which = p;
      }
      if (refusing == 1) alone_refused[which]++;
      if (!refusing)
        for (int p = 0; p < 3; p++) model[p].take(units[p]);
      const bool got = run(frame, now) == XDP_PASS;
      disagreements += got != !refusing;
      passed += got;
      passed_bytes += got ? frame.size() : 0;
    }
  }
  EXPECT_EQ(disagreements, 0u);
  EXPECT_GT(alone_refused[0], 0u) << "10/s binds";
  EXPECT_GT(alone_refused[1], 0u) << "50/min binds";
  EXPECT_GT(alone_refused[2], 0u) << "64kbit/min binds";
  EXPECT_LE(passed, 20u + 2 * 50) << "no more than the minute's window allows";
  EXPECT_LE(passed_bytes, 8000u + 2 * 8000) << "nor the byte window";
}

// Windows keep their state when the rule changes: a second window added
// to a spent minute quota, or the second's window taken off a day quota
// that is mostly spent, gives no fresh tokens.
TEST_F(Program, ChangingTheWindowsKeepsWhatWasSpent) {
  load();
  rule("198.18.0.0/15", std::nullopt, std::nullopt, windows({"100/min"}));
  const auto frame = Packet().ipv4("198.18.0.1").build();
  EXPECT_EQ(passed(frame, 150, 0), 100);
  rule("198.18.0.0/15", std::nullopt, std::nullopt, windows({"10/s", "100/min"}));
  EXPECT_EQ(passed(frame, 20, 0), 0) << "the minute's window stays spent when a window is added";
  EXPECT_EQ(passed(frame, 20, 6 * kSec), 10) << "6 s refill 10 of 100/min; 10/s holds 10 at most";

  rule("198.18.0.0/15", std::nullopt, std::nullopt, windows({"10/s", "1000/day"}));
  // The minute window became a day window (the nearest in rate): its
  // state is converted, so the 100/min's empty bucket is an empty day's.
  EXPECT_EQ(passed(frame, 20, 6 * kSec), 0);
  rule("198.18.0.0/15", std::nullopt, std::nullopt, windows({"1000/day"}));
  EXPECT_EQ(passed(frame, 20, 6 * kSec), 0) << "and the day quota stays spent when the second's goes";
  EXPECT_EQ(passed(frame, 20, 6 * kSec + 87 * kSec), 1) << "1000/day: a token every 86.4 s";
}

}  // namespace
}  // namespace xt
