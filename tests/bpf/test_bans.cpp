// SPDX-License-Identifier: MIT
// Bans (issue 14): a banned prefix is dropped outright until its ban ends,
// whatever its rule, from the hot cache after its first packet; an --allow
// rule beats it; lifting it lets its sources through at once. Through the
// real object with the settable clock.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace xt
