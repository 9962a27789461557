// SPDX-License-Identifier: MIT
// --over redirect:IFACE (issue 14): what a rule would drop is sent out
// another interface instead, those kinds of drop the operator chose, from
// the rule's own path and from the hot cache alike; an interface removed
// drops again. Through the real object with the settable clock, in the
// test's own network namespace, with a veth of its own as the
// target (BPF_PROG_TEST_RUN returns the verdict; nothing is sent).
#include <gtest/gtest.h>

#include <net/if.h>

#include <cstdlib>

#include "packet.h"
#include "program.h"
#include "rules.h"

namespace xt {
namespace {

using test::kSec;
using test::Packet;
using test::Program;

class Over : public Program {
 protected:
  // A veth pair in the test's namespace (Program::SetUp made one).
  void SetUp() override {
    Program::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(std::system("ip link add xtscrub0 type veth peer name xtscrub1 && ip link set xtscrub0 up"), 0);
    ifindex_ = if_nametoindex("xtscrub0");
    ASSERT_NE(ifindex_, 0u);
    load();
  }
  void rule_over(const std::string& cidr, std::optional<std::string> rate, std::function<void(RuleSpec&)> tweak) {
    rule(cidr, rate, rate ? std::optional<uint64_t>(2) : std::nullopt, [&](RuleSpec& s) {
      s.redirect = "xtscrub0";
      if (tweak) tweak(s);
    });
  }
  uint32_t redirects_flag() { return state_->config().value().redirects; }
  uint32_t ifindex_ = 0;
};

TEST_F(Over, OverLimitPacketsAreSentOutTheInterfaceFirstAndFromTheHotCache) {
  rule_over("198.18.0.0/15", "10/s", nullptr);
  EXPECT_EQ(redirects_flag(), 1u) << "a drop looks for a redirect only while some rule has one";
  const auto frame = Packet().ipv4("198.18.0.9").build();
  EXPECT_EQ(run(frame, 0), XDP_PASS);
  EXPECT_EQ(run(frame, 0), XDP_PASS);
  EXPECT_EQ(run(frame, 0), XDP_REDIRECT) << "the first drop, metered";
  EXPECT_EQ(run(frame, 0), XDP_REDIRECT) << "and the next, from the hot cache";
  EXPECT_EQ(run(frame, 0), XDP_REDIRECT);
  EXPECT_EQ(counter(XT_DROP_LIMIT), 3u) << "still counted as dropped, under their reason";
  EXPECT_EQ(counter(XT_REDIRECTED), 3u);
  const xt_rule_stats s = rule_stats("198.18.0.0/15");
  EXPECT_EQ(s.dropped_packets, 3u);
  EXPECT_EQ(s.redirected_packets, 3u);
  EXPECT_EQ(s.redirected_bytes, 3 * frame.size());
  EXPECT_EQ(run(frame, kSec), XDP_PASS) << "a token later, it passes again";
  const auto to = state_->redirects_of(0).value();
  EXPECT_EQ(to[XT_OVER_LIMIT], ifindex_);
  EXPECT_EQ(to[XT_OVER_NEW_SOURCE], ifindex_);
  EXPECT_EQ(to[XT_OVER_TOTAL], 0u) << "no total, no key for it";
}

TEST_F(Over, OnlyTheChosenKindsOfDropGo) {
  rule_over("198.18.0.0/15", "10/s", [](RuleSpec& s) {
    s.new_rate = *parse_rate("1/s");
    s.verify = false;
    s.over_kinds = 1u << XT_OVER_NEW_SOURCE;
  });
  const auto first = Packet().ipv4("198.18.0.9").build(), second = Packet().ipv4("198.18.0.10").build();
  EXPECT_EQ(passed(first, 2), 2);
  EXPECT_EQ(run(first, 0), XDP_DROP) << "over its limit: over_limit is not chosen";
  EXPECT_EQ(run(second, 0), XDP_REDIRECT) << "over the new-source budget: sent out";
  EXPECT_EQ(counter(XT_DROP_LIMIT), 1u);
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 1u);
  EXPECT_EQ(counter(XT_REDIRECTED), 1u);
}

TEST_F(Over, ADenyRulesPacketsGoToo) {
  rule_over("198.18.0.0/24", std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  const auto frame = Packet().ipv4("198.18.0.9").build();
  EXPECT_EQ(run(frame, 0), XDP_REDIRECT);
  EXPECT_EQ(run(frame, 0), XDP_REDIRECT) << "from the hot cache too";
  EXPECT_EQ(counter(XT_DROP_DENY), 2u);
  EXPECT_EQ(counter(XT_REDIRECTED), 2u);
}

// A deny rule's source held by the hot cache is held until the rules
// change. Banned by hand or put on a blocklist since, it is dropped as the
// ban or the list says, not sent on to the scrubber as the deny rule's: a
// ban added and a list loaded start a new epoch too (as a ban replaced or
// lifted did).
TEST_F(Over, ADeniedSourceBannedOrBlocklistedSinceIsDroppedAsSuch) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  rule_over("198.18.0.0/24", std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  const auto banned = Packet().ipv4("198.18.0.9").build(), listed = Packet().ipv4("198.18.0.10").build();
  for (const auto* f : {&banned, &listed}) {
    EXPECT_EQ(run(*f, 0), XDP_REDIRECT);
    EXPECT_EQ(run(*f, 0), XDP_REDIRECT) << "from the hot cache";
  }
  ASSERT_TRUE(state_->add_ban(*parse_cidr("198.18.0.9/32"), 60).has_value());
  EXPECT_EQ(run(banned, 0), XDP_DROP) << "banned";
  EXPECT_EQ(counter(XT_DROP_BANNED), 1u);
  ASSERT_TRUE(state_->load_blocklist("scanners", {*parse_cidr("198.18.0.10/32")}).has_value());
  EXPECT_EQ(run(listed, 0), XDP_DROP) << "blocklisted";
  EXPECT_EQ(counter(XT_DROP_BLOCKLISTED), 1u);
  EXPECT_EQ(counter(XT_REDIRECTED), 4u);
}

// Replaced without --over, deleted, or its interface removed: the rule drops
// again, and once no rule redirects, drops do not look for one.
TEST_F(Over, ARuleReplacedDeletedOrWhoseInterfaceIsGoneDropsAgain) {
  const auto frame = Packet().ipv4("198.18.0.9").build();
  rule_over("198.18.0.0/15", "10/s", nullptr);
  EXPECT_EQ(passed(frame, 2), 2);
  EXPECT_EQ(run(frame, 0), XDP_REDIRECT);
  rule("198.18.0.0/15", "10/s", 2);
  EXPECT_EQ(run(frame, 0), XDP_DROP) << "replaced without --over";
  EXPECT_EQ(redirects_flag(), 0u);
  EXPECT_EQ(state_->redirects_of(0).value()[XT_OVER_LIMIT], 0u);

  rule_over("198.18.0.0/15", "10/s", nullptr);
  EXPECT_EQ(run(frame, 0), XDP_REDIRECT) << "replaced with it again";
  ASSERT_EQ(std::system("ip link del xtscrub0"), 0);
  EXPECT_EQ(state_->redirects_of(0).value()[XT_OVER_LIMIT], 0u) << "the kernel emptied the key";
  EXPECT_EQ(run(frame, 0), XDP_DROP) << "the interface is gone: dropped";
  EXPECT_EQ(counter(XT_REDIRECTED), 2u);

  ASSERT_TRUE(state_->del_rule(*parse_cidr("198.18.0.0/15")).has_value());
  EXPECT_EQ(redirects_flag(), 0u) << "no rule redirects";
}

// Nothing changes for a rule whose interface does not exist: refused, with
// its name.
TEST_F(Over, ARuleNamingAnInterfaceThatDoesNotExistIsRefused) {
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.rates = {*parse_rate("10/s")};
  spec.redirect = "xtnosuch0";
  auto put = state_->put_rule(spec, compile_rule(spec, test::kHz).value());
  ASSERT_FALSE(put.has_value());
  EXPECT_NE(put.error().message.find("xtnosuch0"), std::string::npos) << put.error().message;
  EXPECT_TRUE(state_->rules().value().empty());
}

// A deleted rule's slot goes to the next rule: its drops are its own.
TEST_F(Over, ASlotReusedByAnotherRuleDoesNotInheritItsRedirect) {
  rule_over("198.18.0.0/15", "10/s", nullptr);
  ASSERT_TRUE(state_->del_rule(*parse_cidr("198.18.0.0/15")).has_value());
  rule("198.18.0.0/16", "10/s", 2);
  ASSERT_EQ(state_->rules().value().at(0).rule.id, 0u) << "the same slot";
  const auto frame = Packet().ipv4("198.18.0.9").build();
  EXPECT_EQ(passed(frame, 3), 2);
  EXPECT_EQ(run(frame, 0), XDP_DROP);
  EXPECT_EQ(redirects_flag(), 0u);
  EXPECT_EQ(counter(XT_REDIRECTED), 0u);
}

}  // namespace
}  // namespace xt
