// SPDX-License-Identifier: MIT
// A rule's new-source budget saturated by a flood, through the real object:
// the data path tells when it starts turning untracked sources away and when
// it stops, with what it dropped meanwhile, and keeps the state that status
// reports.
#include <gtest/gtest.h>

#include <bpf/libbpf.h>

#include <memory>

#include "program.h"
#include "stats.h"

namespace xt {
namespace {

using test::nth_source;
using test::Packet;
using test::Program;
using test::kMs;
using test::kSec;

class Budget : public Program {
 protected:
  xt_rule_state rule_state() { return state_->rule_counters().value().at(0).state; }
};

// Issue 9.15: a flood on the budget used to pass unnoticed.
TEST_F(Budget, SaturationIsToldWhenItStartsAndWhenItEnds) {
  load();
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("10/s"); });
  int admitted = 0;
  for (int i = 0; i < 30; i++) admitted += run(Packet().ipv4(nth_source(i)).build(), 0) == XDP_PASS;
  EXPECT_EQ(admitted, 10);
  auto seen = events();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, XT_EVENT_NEW_SATURATED);
  EXPECT_EQ(seen[0].rule_id, state_->rules().value().at(0).rule.id);
  EXPECT_NE(rule_state().saturated_since, 0u) << "status and metrics read this";

  EXPECT_EQ(run(Packet().ipv4(nth_source(100)).build(), 500 * kMs), XDP_PASS);
  EXPECT_TRUE(events().empty()) << "an admission half a second after the last drop does not end it";
  int later = 0;
  for (int i = 200; i < 210; i++) later += run(Packet().ipv4(nth_source(i)).build(), 900 * kMs) == XDP_PASS;
  EXPECT_EQ(later, 8) << "9 tokens refilled by 900 ms, one taken at 500 ms";

  EXPECT_EQ(run(Packet().ipv4(nth_source(300)).build(), 2 * kSec), XDP_PASS);
  seen = events();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, XT_EVENT_NEW_RECOVERED);
  EXPECT_EQ(seen[0].dropped_packets, 22u) << "what the budget dropped while saturated";
  EXPECT_NEAR(seen[0].throttled_ticks, 2 * kSec, 1) << "how long it lasted, to a tick";
  EXPECT_EQ(rule_state().saturated_since, 0u);

  for (int i = 400; i < 450; i++) run(Packet().ipv4(nth_source(i)).build(), 3 * kSec);
  seen = events();
  ASSERT_EQ(seen.size(), 1u) << "a new flood, a new saturation";
  EXPECT_EQ(seen[0].type, XT_EVENT_NEW_SATURATED);
}

// A budget saturated, then no new source for a month: the last drop is
// 2^31 ticks or more back, which a signed compare read as ahead. The first
// admission after it did not end the saturation (status said it had, and
// no new flood was told), and sources that behaved were not remembered.
TEST_F(Budget, ASaturationEndsAtTheFirstAdmissionAMonthLater) {
  load();
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("10/s"); });
  for (int i = 0; i < 30; i++) run(Packet().ipv4(nth_source(i)).build(), 0);
  ASSERT_NE(rule_state().saturated_since, 0u);
  ASSERT_EQ(events().size(), 1u);
  const uint64_t back = uint64_t{30} * 86400 * kSec;
  EXPECT_EQ(run(Packet().ipv4(nth_source(100)).build(), back), XDP_PASS);
  EXPECT_EQ(rule_state().saturated_since, 0u) << "ended";
  const auto seen = events();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, XT_EVENT_NEW_RECOVERED);
}

// The tick of the last drop is another CPU's, whose clock may be a tick
// ahead: an admission at tick T after a drop stamped T + 1 comes no time
// after it, not 2^32 ticks. (Compared unsigned, it ended the saturation
// in the middle of the flood, and told so.)
TEST_F(Budget, ADropStampedATickAheadDoesNotEndTheSaturation) {
  load();
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("10/s"); });
  for (int i = 0; i < 30; i++) run(Packet().ipv4(nth_source(i)).build(), 0);
  ASSERT_EQ(events().size(), 1u) << "saturated";
  // Another CPU, its clock at 501 ms, drops a newcomer (written here as
  // it would write it) while this one, at 500 ms, admits one.
  const uint64_t t = 500 * kMs;
  const int fd = bpf_map__fd(skel_->maps.xt_rule_state);
  uint32_t id = state_->rules().value().at(0).rule.id;
  xt_rule_state st{};
  ASSERT_EQ(bpf_map_lookup_elem(fd, &id, &st), 0);
  st.last_new_drop = static_cast<uint32_t>(t + 1);
  ASSERT_EQ(bpf_map_update_elem(fd, &id, &st, BPF_EXIST), 0);
  EXPECT_EQ(run(Packet().ipv4(nth_source(100)).build(), t), XDP_PASS) << "a token has come by 500 ms";
  EXPECT_TRUE(events().empty()) << "no recovery told a tick after a drop";
  EXPECT_NE(rule_state().saturated_since, 0u) << "still saturated";
}

// What stats and status say of a saturation, read in the tick it began.
// The data path stamps its start now | 1, a tick ahead on an even tick:
// the unsigned difference made it "full for 4294967 s". And stats said of
// a dry-run rule that it dropped the flood and turned new clients away,
// and of a rule with TCP proofs and memory (the defaults) that new clients
// were turned away; status said neither.
TEST_F(Budget, ASaturationIsToldAsItIsInTheTickItBegins) {
  load();
  rule("198.18.0.0/16", "100/s", std::nullopt, [](RuleSpec& s) {
    s.new_rate = *parse_rate("10/s");
    s.dry_run = true;
  });
  rule("198.19.0.0/16", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("10/s"); });
  const uint64_t t = 1000 * kMs;  // an even tick
  for (int i = 0; i < 30; i++) {
    run(Packet().ipv4(nth_source(i)).build(), t);
    run(Packet().ipv4("198.19.0." + std::to_string(i + 1)).build(), t);
  }
  auto stats = read_stats(*state_);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  ASSERT_EQ(stats->saturated.size(), 2u);
  for (const auto& sat : stats->saturated) EXPECT_LT(sat.seconds, 1.0) << sat.rule << " began in this tick";
  const std::string text = stats_text(*stats);
  const auto dry = text.find("198.18.0.0/16 (10/s) has been full");
  const auto live = text.find("198.19.0.0/16 (10/s) has been full");
  ASSERT_NE(dry, std::string::npos) << text;
  ASSERT_NE(live, std::string::npos) << text;
  const std::string dry_line = text.substr(dry, text.find('\n', dry) - dry);
  const std::string live_line = text.substr(live, text.find('\n', live) - live);
  EXPECT_NE(dry_line.find("would drop"), std::string::npos) << dry_line;
  EXPECT_EQ(dry_line.find("turned away"), std::string::npos) << "a dry-run rule drops nothing: " << dry_line;
  EXPECT_NE(live_line.find("new clients get in only by proof (TCP) or as known sources"), std::string::npos)
      << live_line;
}

// An operator who raises --new-rate during a flood lets new clients in at
// once: the replaced rule's budget is its whole burst, in the very tick the
// old one was refusing, and so is a new rule's in a deleted one's slot; the
// next ticks bring its refill.
TEST_F(Budget, AReplacedOrNewRuleHasItsWholeBudgetAtOnce) {
  // On one CPU, so that a shortcut a CPU keeps of a refusal (the thirteenth
  // round tried one, docs/design.md) would be caught outliving its rule.
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());
  load();
  auto new_rate = [](const char* r) { return [r](RuleSpec& s) { s.new_rate = *parse_rate(r); }; };
  const uint64_t t = 7;  // one tick for the first three floods
  auto admitted = [&](int first, int n, uint64_t now) {
    int a = 0;
    for (int i = first; i < first + n; i++) a += run(Packet().ipv4(nth_source(i)).build(), now) == XDP_PASS;
    return a;
  };
  rule("198.18.0.0/15", "100/s", std::nullopt, new_rate("10/s"));
  EXPECT_EQ(admitted(0, 30, t), 10);
  rule("198.18.0.0/15", "100/s", std::nullopt, new_rate("20/s"));
  EXPECT_EQ(admitted(100, 30, t), 20) << "the replaced rule's budget, in the tick of the refusals";
  ASSERT_TRUE(state_->del_rule(*parse_cidr("198.18.0.0/15")).has_value());
  rule("198.18.0.0/15", "100/s", std::nullopt, new_rate("5/s"));
  EXPECT_EQ(state_->rules().value().at(0).rule.id, 0u) << "the deleted rule's slot";
  EXPECT_EQ(admitted(200, 30, t), 5) << "the new rule's budget, in the tick of the refusals";
  EXPECT_EQ(admitted(300, 10, t + 400 * kMs), 2) << "two tokens of 5/s in 400 ms";
  EXPECT_EQ(rule_stats("198.18.0.0/15").new_source_dropped_packets, 25u + 8u) << "every refusal counted";
}

}  // namespace
}  // namespace xt
