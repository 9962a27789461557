// SPDX-License-Identifier: MIT
// A fleet's charges (issue 15) through the real object: what other hosts
// passed for a source of a --scope fleet rule is taken from this host's
// bucket of that source (XT_RESTORE_CHARGE), exactly, into a debt that is
// bounded, and never into a word of a version of the rule the charge was not
// made for.
#include <gtest/gtest.h>

#include <cstring>

#include "fleet.h"
#include "packet.h"
#include "program.h"
#include "rules.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;
using test::kHz;

constexpr uint64_t kSec = kHz;

class Fleets : public Program {
 protected:
  void SetUp() override {
    Program::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    load();
  }
  void fleet_rule(const std::string& rate, uint64_t burst) {
    rule("198.18.0.0/15", rate, burst, [](RuleSpec& s) { s.fleet = true; });
  }
  RuleEntry entry() {
    auto rules = state_->rules();
    EXPECT_TRUE(rules.has_value());
    EXPECT_EQ(rules->size(), 1u);
    return rules->at(0);
  }
  static FleetUse use(const std::string& src, uint32_t packets, uint8_t per_len = 32) {
    FleetUse u;
    u.family = XT_FAMILY_V4;
    u.per_len = per_len;
    const Cidr c = *parse_cidr(src + "/32");
    std::memcpy(u.addr, c.addr.data(), 16);
    u.packets = packets;
    return u;
  }
  Charged charge(const RuleEntry& e, const std::vector<FleetUse>& batch, uint64_t now) {
    skel_->bss->xt_test_now = now;
    auto done = charge_use(*state_, e, batch);
    EXPECT_TRUE(done.has_value()) << done.error().message;
    return done.value_or(Charged{});
  }
  static std::vector<uint8_t> from(const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); }
};

TEST_F(Fleets, WhatOtherHostsPassedIsTakenExactly) {
  fleet_rule("10/s", 10);
  const uint64_t t = 100 * kSec;
  EXPECT_EQ(passed(from("198.18.1.1"), 3, t), 3);
  const Charged c = charge(entry(), {use("198.18.1.1", 4), use("198.18.1.2", 6), use("198.18.1.3", 1, 24)}, t);
  EXPECT_EQ(c.sources, 2u) << "one bucket found, one claimed";
  EXPECT_EQ(c.packets, 10u);
  EXPECT_EQ(c.refused, 1u) << "another --per makes other buckets than this host's";
  EXPECT_EQ(c.stale, 0u);
  EXPECT_EQ(passed(from("198.18.1.1"), 10, t), 3) << "10 of the burst: 3 here, 4 elsewhere, 3 left";
  EXPECT_EQ(passed(from("198.18.1.2"), 10, t), 4) << "a source seen only by other hosts: 6 taken";
  EXPECT_EQ(passed(from("198.18.1.2"), 2, t + kSec / 10), 1) << "and it refills as any bucket does";
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 3u + 3u + 4u + 1u) << "others' use is not this host's pass";
}

TEST_F(Fleets, TheDebtPastEmptyIsBounded) {
  fleet_rule("10/s", 10);
  const uint64_t t = 100 * kSec;
  // A host far behind tells a million packets at once: the bucket is
  // empty for the burst and XT_CHARGE_DEBT_TICKS' refill, no longer.
  const Charged c = charge(entry(), {use("198.18.2.1", 1000000)}, t);
  EXPECT_EQ(c.sources, 1u);
  const uint64_t back = t + XT_CHARGE_DEBT_TICKS + kSec / 10;  // then one packet's refill
  EXPECT_EQ(passed(from("198.18.2.1"), 1, t), 0);
  EXPECT_EQ(passed(from("198.18.2.1"), 1, back - 1), 0);
  EXPECT_EQ(passed(from("198.18.2.1"), 2, back), 1);
  // Charges past the bound add nothing to it.
  charge(entry(), {use("198.18.2.2", 1000000)}, t);
  charge(entry(), {use("198.18.2.2", 1000000)}, t);
  EXPECT_EQ(passed(from("198.18.2.2"), 1, back - 1), 0);
  EXPECT_EQ(passed(from("198.18.2.2"), 2, back), 1);
}

TEST_F(Fleets, AChargeForAReplacedVersionOfTheRuleIsLeft) {
  fleet_rule("10/s", 10);
  const uint64_t t = 100 * kSec;
  const RuleEntry before = entry();
  // Two sources alike, but for the charges taken from the second.
  for (const char* src : {"198.18.3.1", "198.18.3.2"}) EXPECT_EQ(passed(from(src), 2, t), 2);
  fleet_rule("20/s", 20);  // replaced: a new generation
  for (const char* src : {"198.18.3.1", "198.18.3.2"})
    EXPECT_EQ(passed(from(src), 2, t), 2) << "its words now of the new generation";
  const Charged stale = charge(before, {use("198.18.3.2", 5)}, t);
  EXPECT_EQ(stale.stale, 1u) << "read before the replace: not taken against the new version's limit";
  const Charged fresh = charge(entry(), {use("198.18.3.2", 5)}, t);
  EXPECT_EQ(fresh.stale, 0u);
  EXPECT_EQ(fresh.sources, 1u);
  const int untouched = passed(from("198.18.3.1"), 40, t);
  EXPECT_GT(untouched, 5);
  EXPECT_EQ(passed(from("198.18.3.2"), 40, t), untouched - 5) << "the one charge made for this version taken";
}

}  // namespace
}  // namespace xt
