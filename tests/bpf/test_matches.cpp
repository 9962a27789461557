// SPDX-License-Identifier: MIT
// Rules with a match (issue 13): --proto, --port, --syn, through the real
// object. The rule of a packet is the longest source prefix among the rules
// whose match fits it, then the most specific match; what the parser cannot
// reach (a non-first fragment, a long IPv6 header chain) has no port.
#include <gtest/gtest.h>

#include "program.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;

constexpr uint8_t kSyn = 0x02, kRst = 0x04, kAck = 0x10;

// A match as `rule add` words would make it.
Match match(std::optional<uint8_t> proto, std::optional<std::pair<uint16_t, uint16_t>> ports = std::nullopt,
            bool syn = false) {
  return Match{proto, ports, syn};
}
std::pair<uint16_t, uint16_t> port(uint16_t p) { return {p, p}; }

class Matches : public Program {
 protected:
  // A limit rule of a burst of `burst` packets (refilling at 1/s, which the
  // tests never wait for) for cidr and m.
  void limit(const std::string& cidr, const Match& m, uint64_t burst) {
    rule(cidr, "1/s", burst, [&](RuleSpec& s) { s.match = m; });
  }
  void deny(const std::string& cidr, const Match& m) {
    rule(cidr, std::nullopt, std::nullopt, [&](RuleSpec& s) {
      s.match = m;
      s.action = XT_ACT_DENY;
    });
  }
  static std::vector<uint8_t> udp(const std::string& src, uint16_t dport) {
    return Packet().ipv4(src).ports(40000, dport).build();
  }
  static std::vector<uint8_t> tcp(const std::string& src, uint16_t dport, uint8_t flags) {
    return Packet().ipv4(src).tcp().flags(flags).ports(40000, dport).build();
  }
};

TEST_F(Matches, TheMostSpecificMatchOfTheLongestPrefixDecides) {
  load();
  limit("198.18.0.0/15", {}, 5);
  limit("198.18.0.0/15", match(17), 3);
  limit("198.18.0.0/15", match(17, port(53)), 2);
  EXPECT_EQ(passed(udp("198.18.0.1", 53), 10), 2) << "udp/53: the port rule";
  EXPECT_EQ(passed(udp("198.18.0.2", 80), 10), 3) << "udp/80: the protocol rule";
  EXPECT_EQ(passed(tcp("198.18.0.3", 53, kAck), 10), 5) << "tcp/53: the rule without a match";
  EXPECT_EQ(rule_stats("198.18.0.0/15 udp/53").passed_packets, 2u);
  EXPECT_EQ(rule_stats("198.18.0.0/15 udp").passed_packets, 3u);
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 5u);
  EXPECT_EQ(counter(XT_DROP_LIMIT), 20u);
}

TEST_F(Matches, ALongerSourcePrefixBeatsAMoreSpecificMatch) {
  load();
  limit("198.18.0.0/15", match(17, port(53)), 2);
  limit("198.18.5.0/24", {}, 4);
  EXPECT_EQ(passed(udp("198.18.5.1", 53), 10), 4) << "the /24's rule, though it has no match";
  EXPECT_EQ(passed(udp("198.18.6.1", 53), 10), 2) << "outside the /24: the port rule";
  EXPECT_EQ(passed(udp("198.18.6.2", 54), 10), 10) << "no rule fits: unmatched";
  EXPECT_EQ(counter(XT_PASS_UNMATCHED), 10u);
}

TEST_F(Matches, NestedPortRangesNarrowestFirstButPrefixesFirstOfAll) {
  load();
  limit("0.0.0.0/0", match(17, std::pair<uint16_t, uint16_t>(1, 1023)), 3);
  limit("0.0.0.0/0", match(17, port(53)), 1);
  limit("198.18.0.0/16", match(17, std::pair<uint16_t, uint16_t>(1, 1023)), 6);
  EXPECT_EQ(passed(udp("198.19.0.1", 53), 10), 1) << "0/0: the narrower range";
  EXPECT_EQ(passed(udp("198.19.0.2", 100), 10), 3) << "0/0: the wider range holds 100";
  EXPECT_EQ(passed(udp("198.19.0.3", 2000), 10), 10) << "in no range";
  // The /16's range is found by walking out from port 53's range.
  EXPECT_EQ(passed(udp("198.18.0.1", 53), 10), 6) << "the /16 is longer than 0/0, whose range is narrower";
}

TEST_F(Matches, SynRulesTakeNewConnectionsOnly) {
  load();
  limit("0.0.0.0/0", match(6), 100);
  limit("0.0.0.0/0", match(6, port(22), true), 2);
  limit("0.0.0.0/0", match(6, std::nullopt, true), 3);
  EXPECT_EQ(passed(tcp("198.18.0.1", 22, kSyn), 10), 2) << "a SYN to 22: --syn --port 22";
  EXPECT_EQ(passed(tcp("198.18.0.2", 80, kSyn), 10), 3) << "a SYN to 80: --syn";
  EXPECT_EQ(passed(tcp("198.18.0.1", 22, kSyn | kAck), 10), 10) << "a SYN-ACK is no new connection: --proto tcp";
  EXPECT_EQ(passed(tcp("198.18.0.1", 22, kAck), 10), 10);
  // A bare RST is what a stack answers a proof (a SYN-ACK it did not ask
  // for) with: it goes back to the --syn rule. A RST with ACK ends a
  // connection, which is no new one.
  EXPECT_EQ(passed(tcp("198.18.0.3", 22, kRst), 10), 2) << "a bare RST to 22: --syn --port 22";
  EXPECT_EQ(passed(tcp("198.18.0.4", 22, kRst | kAck), 10), 10) << "a RST-ACK: --proto tcp";
  EXPECT_EQ(rule_stats("0.0.0.0/0 tcp").passed_packets, 30u);
}

// What is dropped as over one rule's limit is remembered (the hot cache) for
// that rule's packets only: the same source's other traffic gets its own rule.
TEST_F(Matches, ASourceOverOneRuleIsNotDroppedUnderAnother) {
  load();
  on_one_cpu();
  limit("0.0.0.0/0", {}, 1000);
  limit("0.0.0.0/0", match(17, port(53)), 1);
  EXPECT_EQ(passed(udp("198.18.0.1", 53), 50), 1);
  EXPECT_EQ(passed(udp("198.18.0.1", 80), 50), 50) << "not the port rule's";
  EXPECT_EQ(passed(tcp("198.18.0.1", 53, kAck), 50), 50);
  EXPECT_EQ(passed(udp("198.18.0.1", 53), 50), 0) << "still over the port rule";
  EXPECT_EQ(rule_stats("0.0.0.0/0 udp/53").dropped_packets, 99u);
  deny("198.18.0.1/32", match(1));
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").proto(1).build(), 5), 0) << "ICMP from it: denied";
  EXPECT_EQ(passed(udp("198.18.0.1", 80), 5), 5) << "a deny for ICMP keeps its UDP";
}

TEST_F(Matches, FragmentsWithoutTheirTransportHeaderMatchOnlyRulesWithoutAPort) {
  load();
  deny("0.0.0.0/0", match(17, port(53)));
  limit("0.0.0.0/0", match(17), 3);
  const auto first = Packet().ipv4("198.18.0.1").ports(40000, 53).fragment(0, true).build();
  const auto later = Packet().ipv4("198.18.0.1").ports(40000, 53).fragment(185, false).build();
  EXPECT_EQ(run(first), XDP_DROP) << "a first fragment has its port";
  EXPECT_EQ(counter(XT_DROP_DENY), 1u);
  EXPECT_EQ(passed(later, 10), 3) << "a later one has none: the protocol rule";
}

TEST_F(Matches, IPv6TransportHeadersAfterExtensionHeaders) {
  load();
  deny("2001:db8::/32", match(17, port(53)));
  auto v6 = [](std::vector<uint8_t> exts, uint16_t frag = 0) {
    Packet p;
    p.ipv6("2001:db8::1").ports(40000, 53);
    for (uint8_t e : exts) p.ext(e);
    return p.ext_fragment_offset(frag).build();
  };
  EXPECT_EQ(run(v6({})), XDP_DROP);
  EXPECT_EQ(run(v6({0, 43, 60})), XDP_DROP) << "three extension headers are stepped over";
  EXPECT_EQ(run(v6({0, 44})), XDP_DROP) << "a first fragment";
  EXPECT_EQ(run(v6({44}, 100)), XDP_PASS) << "a later fragment has no port";
  EXPECT_EQ(run(v6({0, 43, 60, 60, 60})), XDP_PASS) << "past four extension headers: out of reach";
  EXPECT_EQ(counter(XT_DROP_DENY), 3u);
  EXPECT_EQ(counter(XT_PASS_UNMATCHED), 2u);
}

TEST_F(Matches, DeletingAMatchRuleLeavesTheOthersAndClearsWhatOnlyItNeeded) {
  load();
  limit("0.0.0.0/0", {}, 4);
  limit("0.0.0.0/0", match(17, port(53)), 1);
  ASSERT_TRUE(state_->del_rule(*parse_cidr("0.0.0.0/0"), match(17, port(53))).has_value());
  EXPECT_EQ(passed(udp("198.18.0.1", 53), 10), 4) << "the rule without a match again";
  auto cfg = state_->config();
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(cfg->matches, 0u) << "no rule has a match: packets are not even parsed for one";
  EXPECT_EQ(cfg->proto_levels[17], 0);
  auto rules = state_->rules();
  ASSERT_TRUE(rules.has_value());
  ASSERT_EQ(rules->size(), 1u);
  EXPECT_EQ(rules->front().spec.match, Match{});
  auto missing = state_->del_rule(*parse_cidr("0.0.0.0/0"), match(17, port(53)));
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("0.0.0.0/0 udp/53"), std::string::npos) << missing.error().message;
}

TEST_F(Matches, OverlappingPortRangesAreRefusedWithNothingChanged) {
  load();
  limit("0.0.0.0/0", match(6, std::pair<uint16_t, uint16_t>(1000, 2000)), 1);
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.match = match(6, std::pair<uint16_t, uint16_t>(1500, 3000));
  spec.rates = {*parse_rate("1/s")};
  auto put = state_->put_rule(spec, *compile_rule(spec, test::kHz));
  ASSERT_FALSE(put.has_value());
  EXPECT_NE(put.error().message.find("1000-2000"), std::string::npos) << put.error().message;
  EXPECT_EQ(state_->rules()->size(), 1u);
  EXPECT_EQ(passed(tcp("198.18.0.1", 2500, kAck), 5), 5) << "unmatched, as before";
  spec.match = match(17, std::pair<uint16_t, uint16_t>(1500, 3000));
  EXPECT_TRUE(state_->put_rule(spec, *compile_rule(spec, test::kHz)).has_value()) << "UDP's ranges are apart";
}

// A `rule add` killed after its port range went in and before its rule did
// (the new slot's sweep takes a second over a large table) left the range
// with no rule: a crossing range was then refused as overlapping it, until
// some rule with a match was deleted.
TEST_F(Matches, ARangeLeftByAnAddCutShortDoesNotBlockTheNext) {
  load();
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.match = match(6, std::pair<uint16_t, uint16_t>(1000, 2000));
  spec.rates = {*parse_rate("1/s")};
  struct Killed {};
  state_->set_step_hook([] { throw Killed{}; });  // the first step: the range is in
  EXPECT_THROW((void)state_->put_rule(spec, *compile_rule(spec, test::kHz)), Killed);
  state_->set_step_hook(nullptr);
  ASSERT_TRUE(state_->rules()->empty()) << "the rule never went in";
  spec.match = match(6, std::pair<uint16_t, uint16_t>(1500, 3000));
  auto put = state_->put_rule(spec, *compile_rule(spec, test::kHz));
  ASSERT_TRUE(put.has_value()) << put.error().message;
  EXPECT_EQ(passed(tcp("198.18.0.1", 2500, kAck), 5), 1) << "the new range's rule, 1/s";
  EXPECT_EQ(passed(tcp("198.18.0.1", 1200, kAck), 5), 5) << "unmatched: the range left behind is gone";
}

}  // namespace
}  // namespace xt
