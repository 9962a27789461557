// SPDX-License-Identifier: MIT
// New and returning clients during a flood (issue 12), through the real
// program: a TCP source its rule's new-source budget refuses is answered
// with a SYN-ACK carrying a cookie; the RST its stack sends back with the
// cookie proves the address and admits its next SYN outside the budget;
// wrong, stale or unasked-for cookies prove nothing; what is sent is
// rate-limited and never goes to a denied source. A source that behaved is
// remembered for --remember after it goes idle.
#include <arpa/inet.h>

#include <cstring>
#include <set>

#include "keys.h"
#include "program.h"
#include "status.h"

namespace xt::test {
namespace {

constexpr uint8_t kSyn = 0x02, kRst = 0x04, kAck = 0x10;

class Proof : public Program {
 protected:
  // 0.0.0.0/0 at 100/s, with a budget of one new source a second (spent at
  // once by `spend_budget`), plus tweaks.
  void SetUp() override {
    Program::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the proof budget is per CPU
    load();
  }
  void limit(std::function<void(RuleSpec&)> tweak = nullptr) {
    rule("0.0.0.0/0", "100/s", std::nullopt, [&](RuleSpec& s) {
      s.new_rate = *parse_rate("1/hour");
      if (tweak) tweak(s);
    });
  }
  // Spends the rule's new-source budget (one new source an hour) on a source
  // of its own: every other new source is then refused.
  void spend_budget(uint64_t now = 0) {
    ASSERT_EQ(run(Packet().ipv4("198.19.255.1", "198.18.0.2").build(), now), XDP_PASS);
  }
  // An IPv4 rule and an IPv6 one, each with its new-source budget spent.
  void spend_both_budgets() {
    limit();
    spend_budget();
    rule("::/0", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("1/hour"); });
    ASSERT_EQ(run(Packet().ipv6("2001:db8:ffff::1", "2001:db8::2").build()), XDP_PASS) << "its budget spent";
  }
  // The first n of the lab's sources (nth_source) that share nth_source(0)'s
  // set of the known table, as known.bpf.h places IPv4 sources (fewer if
  // the first 60,000 hold fewer).
  std::vector<std::string> sources_of_one_known_set(size_t n) {
    const xt_config cfg = state_->config().value();
    const auto set_of = [&](const std::string& src) {
      uint8_t a[4];
      inet_pton(AF_INET, src.c_str(), a);
      uint32_t v4;
      std::memcpy(&v4, a, 4);
      return XT_TOP_BITS(xt_hash_words(cfg.hash_key, 0x4b00 | XT_FAMILY_V4, v4, 0), cfg.known_bits);
    };
    std::vector<std::string> same;
    const uint32_t target = set_of(nth_source(0));
    for (int i = 0; same.size() < n && i < 60000; i++)
      if (set_of(nth_source(i)) == target) same.push_back(nth_source(i));
    return same;
  }
  // The first n addresses of 198.18.0.0/12 from 198.18.0.1 on (network
  // order) that share 198.18.0.1's set of the known table.
  std::vector<uint32_t> addresses_of_one_known_set(size_t n) {
    const xt_config cfg = state_->config().value();
    auto set_of = [&](uint32_t v4) {
      return XT_TOP_BITS(xt_hash_words(cfg.hash_key, 0x4b00 | XT_FAMILY_V4, v4, 0), cfg.known_bits);
    };
    std::vector<uint32_t> same;
    const uint32_t first = htonl(0xc6120001);  // 198.18.0.1
    for (uint32_t i = 1; same.size() < n && i < (1u << 20); i++) {
      const uint32_t v4 = htonl(0xc6120000 + i);
      if (set_of(v4) == set_of(first)) same.push_back(v4);
    }
    return same;
  }
  // A snapshot's record of a known IPv4 source (XT_RESTORE_KNOWN): how it is
  // known, and the tick it was seen.
  static xt_slot known_record(uint32_t v4, uint32_t how, uint64_t tick) {
    xt_slot r{};
    r.key.family = XT_FAMILY_V4;
    r.key.per_len = static_cast<uint8_t>(how);
    std::memcpy(r.key.addr, &v4, 4);
    r.bucket.word[0] = tick;
    return r;
  }
  // Two rules over 0.0.0.0/0, each at 100/s with a budget of one new
  // source an hour: UDP without proofs, remembering for udp_remember
  // seconds, and TCP with them, remembering for tcp_remember.
  void udp_and_tcp_rules(uint32_t udp_remember, uint32_t tcp_remember) {
    rule("0.0.0.0/0", "100/s", std::nullopt, [&](RuleSpec& s) {
      s.match = Match{17, std::nullopt, false};
      s.verify = false;
      s.remember = udp_remember;
      s.new_rate = *parse_rate("1/hour");
    });
    rule("0.0.0.0/0", "100/s", std::nullopt, [&](RuleSpec& s) {
      s.match = Match{6, std::nullopt, false};
      s.remember = tcp_remember;
      s.new_rate = *parse_rate("1/hour");
    });
  }
  // A SYN from port 40000 to 80 in the frame p describes.
  static std::vector<uint8_t> syn_in(Packet p) { return p.tcp(10).flags(kSyn).ports(40000, 80).seq(1000).build(); }
  static std::vector<uint8_t> syn(const std::string& src, uint16_t sport = 40000) {
    return Packet().ipv4(src, "198.18.0.2").tcp(10).flags(kSyn).ports(sport, 80).seq(1000).build();
  }
  static std::vector<uint8_t> rst(const std::string& src, uint32_t seq, uint16_t sport = 40000) {
    return Packet().ipv4(src, "198.18.0.2").tcp().flags(kRst).ports(sport, 80).seq(seq).build();
  }
  // Sends a SYN; returns the cookie of the SYN-ACK it got (failing if none).
  uint32_t cookie_for(const std::string& src, uint64_t now = 0, uint16_t sport = 40000) {
    std::vector<uint8_t> out;
    EXPECT_EQ(run(syn(src, sport), now, &out), XDP_TX) << "no proof sent to " << src;
    if (out.size() < 14 + 20 + 12) return 0;
    return static_cast<uint32_t>(out[42]) << 24 | out[43] << 16 | out[44] << 8 | out[45];
  }
};

TEST_F(Proof, ASourceThatAnswersItsProofGetsIn) {
  limit();
  spend_budget();
  EXPECT_EQ(run(syn("198.18.7.1")), XDP_TX) << "a SYN over the budget is answered, not passed";
  const uint32_t cookie = cookie_for("198.18.7.1");
  EXPECT_EQ(counter(XT_PROOFS_SENT), 2u);
  EXPECT_EQ(run(rst("198.18.7.1", cookie), 5 * kMs), XDP_DROP) << "the RST is the proof, not traffic";
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 1u);
  EXPECT_EQ(run(syn("198.18.7.1"), 10 * kMs), XDP_PASS) << "the SYN resent after the proof";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
  // Tracked from then on: the rest of the connection passes without the table.
  EXPECT_EQ(passed(Packet().ipv4("198.18.7.1", "198.18.0.2").tcp().build(), 20, 20 * kMs), 20);
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
  // None of it came out of the budget: another new source is still refused.
  EXPECT_EQ(run(Packet().ipv4("198.18.8.1").build(), 30 * kMs), XDP_DROP);
}

// The RST a client's stack answers a proof with carries no SYN: under a
// --syn rule, which asked for the proof, it must still be the rule's, not
// the rule for the rest of the source's TCP, where the proof is never
// looked at (and the source, new there too, was admitted as one).
TEST_F(Proof, TheAnswerToASynRulesProofComesBackToThatRule) {
  rule("0.0.0.0/0", "100/s", std::nullopt, [](RuleSpec& s) {
    s.match = Match{6, std::nullopt, true};
    s.new_rate = *parse_rate("1/hour");
  });
  rule("0.0.0.0/0", "1000/s");
  ASSERT_EQ(run(Packet().ipv4("198.19.255.1", "198.18.0.2").tcp().flags(kSyn).build()), XDP_PASS);
  const uint32_t cookie = cookie_for("198.18.7.1");
  EXPECT_EQ(run(rst("198.18.7.1", cookie), 5 * kMs), XDP_DROP) << "the RST is the proof, not traffic";
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 1u);
  EXPECT_EQ(run(syn("198.18.7.1"), 10 * kMs), XDP_PASS) << "the SYN resent after the proof";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
  // A RST that answers nothing is the --syn rule's too, and its budget is spent.
  EXPECT_EQ(run(rst("198.18.7.2", cookie), 20 * kMs), XDP_DROP);
  // The rest of a connection is the other rule's.
  EXPECT_EQ(run(Packet().ipv4("198.18.7.2", "198.18.0.2").tcp().flags(kAck).build(), 30 * kMs), XDP_PASS);
}

// A SYN sent to a group (the link's broadcast, an IPv4 multicast or the
// limited broadcast address, an IPv6 multicast one) is not this host's to
// answer: the kernel drops it, and answering it would have every xthrottle
// host of the segment send its source a SYN-ACK, from the group's address.
TEST_F(Proof, NoProofForASynSentToAGroup) {
  ASSERT_NO_FATAL_FAILURE(spend_both_budgets());
  EXPECT_EQ(run(syn_in(Packet().broadcast().ipv4("198.18.7.1", "198.18.0.2"))), XDP_DROP) << "to the link's broadcast";
  EXPECT_EQ(run(syn_in(Packet().ipv4("198.18.7.1", "255.255.255.255"))), XDP_DROP);
  EXPECT_EQ(run(syn_in(Packet().ipv4("198.18.7.1", "224.0.0.1"))), XDP_DROP);
  EXPECT_EQ(run(syn_in(Packet().ipv6("2001:db8:7::1", "ff02::1"))), XDP_DROP);
  EXPECT_EQ(counter(XT_PROOFS_SENT), 0u);
  EXPECT_EQ(run(syn_in(Packet().ipv4("198.18.7.1", "198.18.0.2"))), XDP_TX) << "to this host: answered";
  EXPECT_EQ(run(syn_in(Packet().ipv6("2001:db8:7::1", "2001:db8::2"))), XDP_TX);
  EXPECT_EQ(run(syn_in(Packet().ipv4("198.18.7.1", "240.0.0.2"))), XDP_TX) << "240/4 is unicast to Linux";
  EXPECT_EQ(counter(XT_PROOFS_SENT), 3u);
}

// Nor one sent from a group or from an address no host has: the SYN-ACK
// goes back to the source, and from a group's link address every host of
// the segment would receive it (a SYN each, from one sender on the
// segment); the kernel's stack drops such SYNs.
TEST_F(Proof, NoProofForASynFromAGroupOrAnAddressNoHostHas) {
  ASSERT_NO_FATAL_FAILURE(spend_both_budgets());
  EXPECT_EQ(run(syn_in(Packet().from_group().ipv4("198.18.7.1", "198.18.0.2"))), XDP_DROP) << "a group's MAC";
  EXPECT_EQ(run(syn_in(Packet().ipv4("224.0.0.1", "198.18.0.2"))), XDP_DROP);
  EXPECT_EQ(run(syn_in(Packet().ipv4("255.255.255.255", "198.18.0.2"))), XDP_DROP);
  EXPECT_EQ(run(syn_in(Packet().ipv4("0.0.0.0", "198.18.0.2"))), XDP_DROP);
  EXPECT_EQ(run(syn_in(Packet().ipv4("127.0.0.1", "198.18.0.2"))), XDP_DROP);
  EXPECT_EQ(run(syn_in(Packet().ipv6("ff02::1", "2001:db8::2"))), XDP_DROP);
  EXPECT_EQ(counter(XT_PROOFS_SENT), 0u);
  EXPECT_EQ(run(syn_in(Packet().ipv4("198.18.7.1", "198.18.0.2"))), XDP_TX) << "from a host: answered";
  EXPECT_EQ(counter(XT_PROOFS_SENT), 1u);
}

// The proof reads the TCP header within the IP packet's own length, as the
// parser does: a packet whose length ends at its IP header, with a SYN in
// the frame's padding, is no SYN (docs/hostile-input.md).
TEST_F(Proof, NoProofForASynInAFramesPadding) {
  ASSERT_NO_FATAL_FAILURE(spend_both_budgets());
  const auto syn = [](Packet p) { return p.tcp(5).flags(kSyn).ports(40000, 80).seq(1000); };
  EXPECT_NE(run(syn(Packet().ipv4("198.18.7.1", "198.18.0.2")).total_length(20).build()), XDP_TX);
  EXPECT_NE(run(syn(Packet().ipv6("2001:db8:7::1", "2001:db8::2")).total_length(8).build()), XDP_TX);
  // 0, which only a super-packet of more than 64 KB can mean: the frame's.
  EXPECT_NE(run(syn(Packet().ipv6("2001:db8:7::1", "2001:db8::2")).total_length(0).build()), XDP_TX);
  EXPECT_EQ(counter(XT_PROOFS_SENT), 0u);
  EXPECT_EQ(run(syn(Packet().ipv4("198.18.7.1", "198.18.0.2")).build()), XDP_TX) << "the whole SYN: answered";
}

// ... which reads the Ethernet group bit only where there is an Ethernet
// header: on a link without one (tun, WireGuard) the frame's first byte is
// the IP header's, 0x45 or 0x60, whose low bit would refuse every IPv4 SYN.
TEST_F(Proof, ASynOnALinkWithoutEthernetIsAnswered) {
  load(XT_MIN_MAX_SOURCES, false, XT_LINK_IP);
  limit();
  ASSERT_EQ(run(Packet().no_link().ipv4("198.19.255.1", "198.18.0.2").build()), XDP_PASS) << "the budget spent";
  EXPECT_EQ(run(syn_in(Packet().no_link().ipv4("198.18.7.1", "198.18.0.2"))), XDP_TX);
  EXPECT_EQ(counter(XT_PROOFS_SENT), 1u);
}

TEST_F(Proof, AWrongCookieProvesNothing) {
  limit();
  spend_budget();
  const uint32_t cookie = cookie_for("198.18.7.1");
  EXPECT_EQ(run(rst("198.18.7.1", cookie + 1)), XDP_DROP);
  EXPECT_EQ(run(rst("198.18.7.1", cookie, 40001)), XDP_DROP) << "another connection's";
  EXPECT_EQ(run(rst("198.18.7.2", cookie)), XDP_DROP) << "another source's";
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 0u);
  EXPECT_EQ(run(syn("198.18.7.1")), XDP_TX) << "still unproven";
  EXPECT_EQ(run(syn("198.18.7.2")), XDP_TX);
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 0u);
}

TEST_F(Proof, ARstWithoutASynAckProvesNothing) {
  limit();
  spend_budget();
  for (uint32_t seq : {0u, 1u, 1000u, 0xdeadbeefu}) EXPECT_EQ(run(rst("198.18.7.1", seq)), XDP_DROP);
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 0u);
  EXPECT_EQ(counter(XT_PROOFS_SENT), 0u) << "nothing is sent for a RST";
  EXPECT_EQ(run(syn("198.18.7.1")), XDP_TX);
}

TEST_F(Proof, ACookieIsGoodForItsPeriodAndTheNextOnly) {
  limit();
  spend_budget();
  const uint64_t period = XT_COOKIE_PERIOD_SECONDS * kSec;
  // Made at the start of a period: good to the end of the next one.
  const uint32_t fresh = cookie_for("198.18.7.1", 0);
  EXPECT_EQ(run(rst("198.18.7.1", fresh), 2 * period - 1), XDP_DROP);
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 1u);
  // Made at the start of a period: stale from the one after next.
  const uint32_t stale = cookie_for("198.18.7.2", 0);
  EXPECT_EQ(run(rst("198.18.7.2", stale), 2 * period), XDP_DROP);
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 1u) << "a stale cookie passed";
  EXPECT_EQ(run(syn("198.18.7.2"), 2 * period), XDP_TX);
}

TEST_F(Proof, NoProofForADeniedSourceOrWithVerifyOff) {
  limit();
  rule("198.18.9.0/24", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  rule("198.18.10.0/24", "100/s", std::nullopt, [](RuleSpec& s) {
    s.new_rate = *parse_rate("1/hour");
    s.verify = false;
  });
  spend_budget();
  EXPECT_EQ(run(Packet().ipv4("198.18.10.200").build()), XDP_PASS) << "spends the /24's budget";
  EXPECT_EQ(run(syn("198.18.9.1")), XDP_DROP) << "a denied source";
  EXPECT_EQ(run(syn("198.18.10.1")), XDP_DROP) << "--verify off";
  EXPECT_EQ(counter(XT_PROOFS_SENT), 0u);
}

TEST_F(Proof, ProofsAreRateLimited) {
  limit([](RuleSpec& s) { s.verify_rate = *parse_rate("3/s"); });
  spend_budget();
  int sent = 0;
  for (int i = 0; i < 10; i++) sent += run(syn(nth_source(i))) == XDP_TX;
  EXPECT_EQ(sent, 3) << "a burst of the rate, then none";
  EXPECT_EQ(run(syn(nth_source(20)), kSec), XDP_TX) << "refilled a second later";
  EXPECT_EQ(counter(XT_PROOFS_SENT), 4u);
}

TEST_F(Proof, AnIPv6SourceProvesItsSlash64) {
  rule("::/0", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("1/hour"); });
  ASSERT_EQ(run(Packet().ipv6("2001:db8:ffff::1", "2001:db8::2").build()), XDP_PASS);
  std::vector<uint8_t> out;
  const auto syn6 = Packet().ipv6("2001:db8:7::1", "2001:db8::2").tcp().flags(kSyn).ports(40000, 80).build();
  ASSERT_EQ(run(syn6, 0, &out), XDP_TX);
  ASSERT_EQ(out.size(), 14u + 40 + 20);
  const uint32_t cookie = static_cast<uint32_t>(out[62]) << 24 | out[63] << 16 | out[64] << 8 | out[65];
  const auto rst6 = Packet().ipv6("2001:db8:7::1", "2001:db8::2").tcp().flags(kRst).ports(40000, 80).seq(cookie).build();
  EXPECT_EQ(run(rst6), XDP_DROP);
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 1u);
  EXPECT_EQ(run(syn6), XDP_PASS);
}

// Memory: a source that behaved is let in outside the budget after its
// bucket went idle; one that was throttled, or sent one packet, is not.
TEST_F(Proof, AReturningClientIsRemembered) {
  limit([](RuleSpec& s) { s.verify = false; });
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  EXPECT_EQ(passed(from("198.18.7.1"), 5, 0), 5) << "behaves: admitted by the budget, then passes";
  EXPECT_EQ(passed(from("198.18.7.2"), 1, 2 * kSec), 0) << "the budget is spent";
  // Two minutes idle: the bucket is untracked again, the budget still spent.
  const uint64_t later = 120 * kSec;
  EXPECT_EQ(passed(from("198.18.7.1"), 30, later), 30);
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 1u);
  EXPECT_EQ(passed(from("198.18.7.3"), 1, later), 0) << "a stranger is still refused";
}

TEST_F(Proof, MemoryLastsRememberAfterTheLastGoodPacket) {
  limit([](RuleSpec& s) {
    s.verify = false;
    s.remember = 600;
    s.rates = {*parse_rate("3/s")};
    s.new_rate = *parse_rate("2/day");
  });
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  EXPECT_EQ(passed(from("198.18.7.1"), 3, 0), 3) << "behaves: known from its second packet";
  EXPECT_EQ(passed(from("198.18.7.5"), 1, 0), 1) << "one packet: not known";
  EXPECT_EQ(passed(from("198.18.7.1"), 5, 0), 0) << "then goes over its limit: throttled, not refreshed";
  EXPECT_EQ(passed(from("198.18.7.1"), 1, 599 * kSec), 1) << "known until 600 s after its last good packet";
  // That packet passed without a drop for over a second: released, and
  // known afresh from it.
  EXPECT_EQ(passed(from("198.18.7.1"), 1, 1100 * kSec), 1) << "refreshed at 599 s";
  EXPECT_EQ(passed(from("198.18.7.1"), 1, 1701 * kSec), 0) << "600 s after its last packet: forgotten";
  EXPECT_EQ(passed(from("198.18.7.5"), 1, 1701 * kSec), 0) << "the budget is spent; .5 was never known";
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 2u);
}

// Under --remember 1 a source that behaves is recorded once a second at
// most, as under any other --remember once in half of it: half of 1 s was
// 0, and every packet it passed rewrote its entry (a line every CPU
// shares) and counted another recording.
TEST_F(Proof, ARuleThatRemembersASecondRecordsItsSourcesOnceASecond) {
  limit([](RuleSpec& s) {
    s.verify = false;
    s.remember = 1;
  });
  const auto from = Packet().ipv4("198.18.7.1", "198.18.0.2").build();
  EXPECT_EQ(passed(from, 20, 0), 20) << "admitted by the budget, and within its rate";
  EXPECT_EQ(counter(XT_KNOWN_RECORDED), 1u) << "known from its second packet, and not again within the second";
  EXPECT_EQ(passed(from, 5, kSec), 5);
  EXPECT_EQ(counter(XT_KNOWN_RECORDED), 2u) << "refreshed a second on";
}

// A proof is good for XT_PROOF_SECONDS, kept beside what a source earned by
// behaving (under another rule) as in a way of its own: kept beside, it
// was good a second longer.
TEST_F(Proof, AProofLastsAsLongBesideWhatBehavedAsOnItsOwn) {
  rule("0.0.0.0/0", "100/s", std::nullopt, [](RuleSpec& s) {
    s.match = Match{17, std::nullopt, false};
    s.verify = false;
    s.remember = 600;
    s.new_rate = *parse_rate("100/s");
  });
  rule("0.0.0.0/0", "100/s", std::nullopt, [](RuleSpec& s) {
    s.match = Match{6, std::nullopt, false};
    s.remember = 0;  // proofs only
    s.new_rate = *parse_rate("1/hour");
  });
  ASSERT_EQ(run(syn("198.19.255.1"), 0), XDP_PASS) << "the TCP rule's one new source an hour";
  const std::string behaved[2] = {"198.18.7.1", "198.18.7.2"}, strangers[2] = {"198.18.8.1", "198.18.8.2"};
  for (const auto& b : behaved)
    ASSERT_EQ(passed(Packet().ipv4(b, "198.18.0.2").build(), 3, 10 * kSec), 3) << b << " behaves under the UDP rule";
  const uint64_t t = 120 * kSec;
  for (const auto& s : {behaved[0], behaved[1], strangers[0], strangers[1]})
    ASSERT_EQ(run(rst(s, cookie_for(s, t)), t + 1), XDP_DROP) << s << " proves its address at 120 s";
  EXPECT_EQ(run(syn(behaved[0]), t + (XT_PROOF_SECONDS - 1) * kSec), XDP_PASS) << "its proof, beside what behaved";
  EXPECT_EQ(run(syn(strangers[0]), t + (XT_PROOF_SECONDS - 1) * kSec), XDP_PASS) << "its proof, on its own";
  EXPECT_EQ(run(syn(behaved[1]), t + XT_PROOF_SECONDS * kSec), XDP_TX) << "the proof beside is over: asked again";
  EXPECT_EQ(run(syn(strangers[1]), t + XT_PROOF_SECONDS * kSec), XDP_TX) << "the proof on its own is over";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 2u);
}

// While a rule's budget is saturated, what it admits is mostly a flood's:
// no new source is remembered, and a proof lasts XT_PROOF_SECONDS only.
TEST_F(Proof, NothingIsRememberedUnderAFloodAndAProofIsShortLived) {
  limit();
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  spend_budget();
  EXPECT_EQ(passed(from("198.18.7.9"), 1, 0), 0) << "refused: the budget saturates";
  // A proven source gets in, passes, but is not remembered for --remember.
  const uint32_t cookie = cookie_for("198.18.7.1");
  ASSERT_EQ(run(rst("198.18.7.1", cookie), 1), XDP_DROP);
  EXPECT_EQ(passed(from("198.18.7.1"), 10, 2), 10) << "admitted by proof";
  // Idle past its bucket's window, and past the proof's life: it must prove
  // itself again.
  const uint64_t later = (XT_DEFAULT_IDLE_SECONDS + XT_PROOF_SECONDS + 1) * kSec;
  EXPECT_EQ(passed(from("198.18.7.1"), 1, later), 0);
  EXPECT_EQ(run(syn("198.18.7.1"), later), XDP_TX);
}

// A saturation ends at the budget's next admission a second after its last
// drop; once the flood was over, with only tracked sources sending, that
// admission could be long in coming, and until then nothing was remembered:
// a client that proved itself during the flood and went on sending after
// it stayed a stranger, refused again by the next flood.
TEST_F(Proof, WhatBehavesASecondAfterTheFloodsLastDropIsRemembered) {
  limit([](RuleSpec& s) { s.new_rate = *parse_rate("1/day"); });
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  spend_budget();
  EXPECT_EQ(passed(from("198.18.7.9"), 1, 0), 0) << "refused: the budget saturates";
  const std::string c = "198.18.7.1";
  ASSERT_EQ(run(rst(c, cookie_for(c, kSec)), kSec + 1), XDP_DROP);
  ASSERT_EQ(run(syn(c), kSec + 2), XDP_PASS) << "admitted by its proof";
  const uint64_t recorded = counter(XT_KNOWN_RECORDED);
  EXPECT_EQ(passed(from(c), 3, 5 * kSec), 3) << "the flood over: its last drop 4 s before";
  EXPECT_EQ(counter(XT_KNOWN_RECORDED), recorded + 1) << "behaved: remembered";
  const uint64_t later = (5 + XT_DEFAULT_IDLE_SECONDS + XT_PROOF_SECONDS + 1) * kSec;
  EXPECT_EQ(passed(from(c), 1, later), 1) << "back after its bucket went idle, the budget still spent";
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 1u);
}

// A proof is good for XT_PROOF_SECONDS, so a second one must count however
// soon it comes. A spoofed SYN in X's name has X's stack answer the
// SYN-ACK with a RST, which proves X; X's own user connecting 20 s later
// proves it again and must get in. (The second proof was taken for a
// refresh not yet due, 60 s being the known table's: counted as passed,
// it admitted nothing until a minute after the first.)
TEST_F(Proof, ASecondProofSoonAfterTheFirstCounts) {
  limit();
  spend_budget();
  const std::string x = "198.18.7.1";
  ASSERT_EQ(run(rst(x, cookie_for(x, 0)), 1), XDP_DROP) << "proven by the spoofer's SYN";
  const uint64_t t = 20 * kSec;
  ASSERT_EQ(run(rst(x, cookie_for(x, t)), t + 5), XDP_DROP);
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 2u);
  EXPECT_EQ(run(syn(x), t + 10), XDP_PASS) << "X's user, proven again, gets in";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
}

// A proof is good for XT_PROOF_SECONDS, even for a source that once behaved
// and was forgotten since: the proof had it known as behaved again for a
// whole --remember. A spoofed SYN in the name of a live host that once
// behaved (its stack answers the SYN-ACK with a RST) bought the spoofer a
// day outside the budget, and got around "nothing is remembered as behaved
// while the budget is saturated".
TEST_F(Proof, AProofOfASourceThatOnceBehavedIsStillAProof) {
  limit([](RuleSpec& s) { s.remember = 600; });
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  const std::string x = "198.18.7.1";
  EXPECT_EQ(passed(from(x), 3, 0), 3) << "the hour's one new source: behaves, remembered for 600 s";
  const uint64_t t = 700 * kSec;
  EXPECT_EQ(passed(from(x), 1, t), 0) << "forgotten at 600 s, and the budget spent";
  ASSERT_EQ(run(rst(x, cookie_for(x, t)), t + 1), XDP_DROP);
  EXPECT_EQ(passed(from(x), 1, t + 2), 1) << "admitted by its proof";
  const uint64_t later = t + (XT_DEFAULT_IDLE_SECONDS + XT_PROOF_SECONDS + 1) * kSec;
  EXPECT_EQ(passed(from(x), 1, later), 0) << "the proof is over: it proves itself again";
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 0u);
}

// ... and a proof asked for by one rule leaves what behaving earned under
// another that remembers longer: turned into a proof, the entry gave a
// client that behaved an hour before under a day's --remember 10 s, and
// while that rule's budget was saturated it could not behave its way back.
TEST_F(Proof, AProofLeavesWhatBehavingEarnedUnderAnotherRule) {
  udp_and_tcp_rules(86400, 600);
  const std::string x = "198.18.7.1";
  const auto udp = Packet().ipv4(x, "198.18.0.2").build();
  EXPECT_EQ(passed(udp, 3, 0), 3) << "the UDP rule's new source: behaves, remembered for a day";
  ASSERT_EQ(run(syn("198.19.255.1"), 0), XDP_PASS) << "the TCP rule's one new source an hour";
  const uint64_t t = 700 * kSec;
  ASSERT_EQ(run(rst(x, cookie_for(x, t)), t + 1), XDP_DROP) << "past the TCP rule's 600 s: proven";
  EXPECT_EQ(run(syn(x), t + 2), XDP_PASS) << "admitted by the proof";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
  // 30 s on: past the proof, and its UDP bucket idle (not at a multiple of
  // the `used` stamps' cycle, 262 s here, where an idle one looks used).
  EXPECT_EQ(passed(udp, 1, t + 30 * kSec), 1) << "still known to the UDP rule, for its day";
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 1u);
}

// The same 19 hours on: `proven` holds 18.2 hours after `seen` at most, and
// a later proof turned the entry into a proof, so the day the UDP rule
// remembers was lost after 10 s (and a spoofed SYN in the client's name,
// which its stack answers, wiped it on purpose). The proof now goes in a
// way of its own beside it.
TEST_F(Proof, AProofADayLaterLeavesWhatBehavingEarnedUnderAnotherRule) {
  udp_and_tcp_rules(86400, 3600);
  const std::string x = "198.18.7.1";
  const auto udp = Packet().ipv4(x, "198.18.0.2").build();
  EXPECT_EQ(passed(udp, 3, 0), 3) << "the UDP rule's new source: behaves, remembered for a day";
  // 19 hours on (and 30 s after it not at a multiple of the `used` stamps'
  // cycle, 262 s, where an idle slot looks used), each rule's budget spent.
  const uint64_t t = 68500 * kSec;
  ASSERT_EQ(run(syn("198.19.255.1"), t), XDP_PASS) << "the TCP rule's one new source an hour";
  ASSERT_EQ(run(rst(x, cookie_for(x, t)), t + 1), XDP_DROP) << "past the TCP rule's hour: proven";
  EXPECT_EQ(run(syn(x), t + 2), XDP_PASS) << "admitted by the proof";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
  ASSERT_EQ(passed(Packet().ipv4("198.19.255.2", "198.18.0.2").build(), 1, t + 30 * kSec), 1)
      << "the UDP rule's one new source an hour";
  EXPECT_EQ(passed(udp, 1, t + 30 * kSec), 1) << "still known to the UDP rule, for its day";
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 1u);
}

// A rule that trusts proofs only (--remember 0, --verify tcp) asks the
// known table about proofs; an address another rule remembers as behaved,
// its entry stamped by a CPU whose clock read a second later, was an age of
// -1 s, within a window of 0 s: admitted by memory, past the spent budget.
TEST_F(Proof, ARuleThatRemembersNothingTrustsNoBehaviourStampedAhead) {
  udp_and_tcp_rules(600, 0);
  ASSERT_EQ(run(syn("198.19.255.1"), 0), XDP_PASS) << "the TCP rule's one new source an hour";
  const std::string x = "198.18.7.1";
  ASSERT_EQ(passed(Packet().ipv4(x, "198.18.0.2").build(), 3, 10 * kSec), 3) << "behaves under the UDP rule at 10 s";
  EXPECT_EQ(run(syn(x), 10 * kSec - 1), XDP_TX) << "on a CPU whose clock still reads 9 s: asked for a proof";
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 0u);
}

// A refresh of a source that behaved moves its `seen`, and cleared the
// proof kept beside it: a client that proved itself to a rule that trusts
// proofs only, then sent a datagram another rule remembers it for, was
// asked for a proof again at its next SYN.
TEST_F(Proof, ARefreshOfWhatBehavedKeepsAProofMadeSince) {
  udp_and_tcp_rules(600, 0);
  ASSERT_EQ(run(syn("198.19.255.1"), 0), XDP_PASS) << "the TCP rule's one new source an hour";
  const std::string x = "198.18.7.1";
  const auto udp = Packet().ipv4(x, "198.18.0.2").build();
  ASSERT_EQ(passed(udp, 3, 10 * kSec), 3) << "behaves under the UDP rule";
  const uint64_t t = 120 * kSec;
  ASSERT_EQ(run(rst(x, cookie_for(x, t)), t + 1), XDP_DROP) << "proven to the TCP rule";
  EXPECT_EQ(passed(udp, 2, t + 2), 2) << "back under the UDP rule, by memory: a refresh is due";
  EXPECT_EQ(run(syn(x), t + 3), XDP_PASS) << "the SYN resent after the proof";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
}

// A bucket of a prefix (--per shorter than an address) that passed two
// packets says nothing of any one address in it: a spoofer staying under
// such a rule's rate, from random addresses, had each of them recorded as
// behaved, pushing out the clients every rule remembered and making its
// addresses known to all of them.
TEST_F(Proof, OnlyAnAddressOfItsOwnIsRememberedAsBehaved) {
  rule("198.18.0.0/16", "100/s", std::nullopt, [](RuleSpec& s) {
    s.per = 16;
    s.verify = false;
  });
  rule("198.19.0.0/16", "100/s", std::nullopt, [](RuleSpec& s) { s.verify = false; });
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  for (int i = 1; i <= 20; i++) EXPECT_EQ(passed(from("198.18." + std::to_string(i) + ".1"), 1, 0), 1);
  EXPECT_EQ(counter(XT_KNOWN_RECORDED), 0u) << "one bucket for the /16: no address in it behaved";
  EXPECT_EQ(passed(from("198.19.0.1"), 3, 0), 3);
  EXPECT_EQ(counter(XT_KNOWN_RECORDED), 1u) << "a source of its own bucket behaves";
}

// An IPv6 source is known by its /64, but a rule that counts IPv6 sources
// by more than that holds each address apart, and a /64 known to it gave
// each of the /64's 2^64 addresses a bucket of its own, with its burst,
// outside the budget: the limit held nothing for a host that owns a /64
// (any VPS) once one of its addresses had behaved or proved itself. Such
// a rule knows whole addresses.
TEST_F(Proof, ARuleOfWholeIPv6AddressesKnowsAddressesNotTheirSlash64) {
  rule("::/0", "100/s", std::nullopt, [](RuleSpec& s) {
    s.per = 128;
    s.new_rate = *parse_rate("1/hour");
  });
  const auto from = [](const std::string& src) { return Packet().ipv6(src, "2001:db8::2").build(); };
  EXPECT_EQ(passed(from("2001:db8:1::1"), 3, 0), 3) << "admitted by the budget, behaves";
  EXPECT_EQ(counter(XT_KNOWN_RECORDED), 1u);
  for (int i = 2; i <= 50; i++) {
    char src[64];
    std::snprintf(src, sizeof(src), "2001:db8:1::%x", i);
    EXPECT_EQ(passed(from(src), 1, kSec), 0) << src << ": another address of the known one's /64";
  }
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 0u);
  // The address itself is remembered: back after its bucket went idle.
  EXPECT_EQ(passed(from("2001:db8:1::1"), 1, 120 * kSec), 1);
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 1u);
  // A proof, the same: of the address that answered it.
  const auto syn6 = [](const std::string& src) {
    return Packet().ipv6(src, "2001:db8::2").tcp().flags(kSyn).ports(40000, 80).build();
  };
  std::vector<uint8_t> out;
  ASSERT_EQ(run(syn6("2001:db8:7::1"), 130 * kSec, &out), XDP_TX);
  ASSERT_EQ(out.size(), 14u + 40 + 20);
  const uint32_t cookie = static_cast<uint32_t>(out[62]) << 24 | out[63] << 16 | out[64] << 8 | out[65];
  const auto rst6 = Packet().ipv6("2001:db8:7::1", "2001:db8::2").tcp().flags(kRst).ports(40000, 80).seq(cookie).build();
  ASSERT_EQ(run(rst6, 130 * kSec), XDP_DROP);
  EXPECT_EQ(run(syn6("2001:db8:7::2"), 130 * kSec), XDP_TX) << "another address of the proven one's /64: a proof";
  EXPECT_EQ(run(syn6("2001:db8:7::1"), 130 * kSec), XDP_PASS) << "the proven address";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
}

// A proof never pushes out a source that behaved while another proof is in
// its set: a spoofer can have live hosts make proofs, and these must not
// flush the clients the table remembers.
TEST_F(Proof, ProofsMakeRoomAmongProofsFirst) {
  limit([](RuleSpec& s) { s.new_rate = *parse_rate("3/day"); });
  const std::vector<std::string> same = sources_of_one_known_set(5);
  ASSERT_EQ(same.size(), 5u);
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  // Three behave (the budget's three admissions), at 0, 1 and 2 s.
  for (int i = 0; i < 3; i++) ASSERT_EQ(passed(from(same[i]), 2, i * kSec), 2);
  // The budget is spent; two more prove themselves, one after the other.
  for (int i = 3; i < 5; i++) {
    const uint64_t at = (3 + i) * kSec;
    const uint32_t cookie = cookie_for(same[i], at);
    ASSERT_EQ(run(rst(same[i], cookie), at), XDP_DROP);
  }
  EXPECT_EQ(counter(XT_PROOFS_PASSED), 2u);
  // The second proof took the first's way, not the oldest behaved source's:
  // all three are still let in, past their buckets' idle window.
  const uint64_t later = (XT_DEFAULT_IDLE_SECONDS + 10) * kSec;
  for (int i = 0; i < 3; i++) EXPECT_EQ(passed(from(same[i]), 1, later), 1) << same[i];
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 3u);
}

// A source that behaved more than 18 hours before a proof of it keeps its
// entry, and the proof goes in a way of its own; but where that entry is
// the set's oldest, forgotten by every rule, it is the way to give: the
// first version passed over it and pushed out a client behaving now.
TEST_F(Proof, ALateProofTakesItsOwnStaleWayBeforeALiveClients) {
  limit([](RuleSpec& s) {
    s.new_rate = *parse_rate("4/day");
    s.remember = 3600;
  });
  const std::vector<std::string> same = sources_of_one_known_set(XT_KNOWN_WAYS);
  ASSERT_EQ(same.size(), static_cast<size_t>(XT_KNOWN_WAYS));
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  ASSERT_EQ(passed(from(same[0]), 2, 0), 2) << "X behaves, then is gone for 20 hours";
  const uint64_t t = 72000 * kSec;
  for (size_t i = 1; i < same.size(); i++) ASSERT_EQ(passed(from(same[i]), 2, t), 2) << "the set's others behave";
  ASSERT_EQ(passed(from("198.19.255.1"), 1, t), 1) << "the budget's last admission";
  ASSERT_EQ(run(rst(same[0], cookie_for(same[0], t + kSec)), t + kSec), XDP_DROP) << "X proves itself";
  EXPECT_EQ(run(syn(same[0]), t + kSec + 1), XDP_PASS) << "admitted by its proof";
  const uint64_t later = t + (XT_DEFAULT_IDLE_SECONDS + 10) * kSec;
  for (size_t i = 1; i < same.size(); i++) EXPECT_EQ(passed(from(same[i]), 1, later), 1) << same[i] << " is kept";
}

// A source proven, then behaving under another rule, became known as
// behaved from then on and lost its proof: a rule that trusts proofs only
// (--remember 0) asked for another at its next SYN.
TEST_F(Proof, AProvenSourceThatBehavesKeepsItsProof) {
  udp_and_tcp_rules(600, 0);
  ASSERT_EQ(run(syn("198.19.255.1"), 0), XDP_PASS) << "the TCP rule's one new source an hour";
  const std::string x = "198.18.7.1";
  const uint64_t t = 10 * kSec;
  ASSERT_EQ(run(rst(x, cookie_for(x, t)), t + 1), XDP_DROP) << "proven to the TCP rule";
  EXPECT_EQ(passed(Packet().ipv4(x, "198.18.0.2").build(), 2, t + 2), 2) << "behaves under the UDP rule";
  EXPECT_EQ(run(syn(x), t + 3), XDP_PASS) << "the SYN resent after the proof";
  EXPECT_EQ(counter(XT_ADMITTED_BY_PROOF), 1u);
}

// A rule of /96s: a bucket passes any address of its /96, so it says
// nothing of one address, and recording each address a spoofer sends from
// filled the known table with one bucket's addresses. Such a rule knows
// its /96s.
TEST_F(Proof, ARuleOfIPv6PrefixesLongerThanSlash64KnowsThosePrefixes) {
  rule("::/0", "100/s", std::nullopt, [](RuleSpec& s) {
    s.per = 96;
    s.new_rate = *parse_rate("1/hour");
  });
  const auto from = [](const std::string& src) { return Packet().ipv6(src, "2001:db8::2").build(); };
  EXPECT_EQ(passed(from("2001:db8::1"), 3, 0), 3);
  for (int i = 1; i <= 50; i++) {
    char src[64];
    std::snprintf(src, sizeof(src), "2001:db8::a:%x", i);
    EXPECT_EQ(passed(from(src), 1, kSec), 1) << src << ": the same /96, its bucket";
  }
  EXPECT_EQ(counter(XT_KNOWN_RECORDED), 1u) << "one /96, one entry";
  EXPECT_EQ(passed(from("2001:db8::b:1"), 1, 120 * kSec), 1) << "the /96 is known, back after its bucket went idle";
  EXPECT_EQ(counter(XT_ADMITTED_BY_MEMORY), 1u);
  EXPECT_EQ(passed(from("2001:db8:0:0:1::1"), 1, 120 * kSec), 0) << "another /96 of the /64 is not";
}

// status tells the sources the known table admits now, not every entry it
// still holds: a proof is over after XT_PROOF_SECONDS, good behaviour after
// --remember.
TEST_F(Proof, StatusCountsTheSourcesKnownNow) {
  limit([](RuleSpec& s) { s.remember = 600; });
  const auto from = [](const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); };
  ASSERT_EQ(passed(from("198.18.7.1"), 3, 0), 3) << "behaves, admitted by the budget, which it spends";
  const uint32_t cookie = cookie_for("198.18.7.2");
  ASSERT_EQ(run(rst("198.18.7.2", cookie), 1), XDP_DROP) << "proves its address";
  const auto count = [&](uint32_t secs, KnownWindow window = {.remember = 600, .proofs = true}) {
    Status s;
    EXPECT_TRUE(state_->for_each_known([&](const xt_known& e) { count_known(s, e, secs, window); }).has_value());
    return std::tuple{s.known_sources, s.known_proven, s.known_expired};
  };
  EXPECT_EQ(count(1), std::tuple(2u, 1u, 0u));
  EXPECT_EQ(count(XT_PROOF_SECONDS), std::tuple(1u, 0u, 1u)) << "the proof is over";
  EXPECT_EQ(count(600), std::tuple(0u, 0u, 2u)) << "and the good behaviour";
  EXPECT_EQ(count(1, {}), std::tuple(0u, 0u, 2u)) << "no rule of the family reads the table";
  EXPECT_EQ(count(1, {.remember = 0, .proofs = true}), std::tuple(1u, 1u, 1u)) << "proofs only";
  EXPECT_EQ(counter(XT_KNOWN_RECORDED), 2u);
}

// A source that behaved and proved its address after its --remember ran
// out is admitted for the proof's own time (known.bpf.h, xt_proof_recent):
// status and the metrics counted it expired, and ran low of the sources
// known during a --verify flood.
TEST(KnownCount, ABehavedSourceProvenSinceItsMemoryRanOutIsKnownAndProven) {
  xt_known e{};
  e.key = 1;
  e.family = XT_FAMILY_V4;
  e.how = XT_KNOWN_BEHAVED;
  e.seen = 100;
  e.proven = 50;  // proved at second 149
  const KnownWindow window{.remember = 10, .proofs = true};
  const auto count = [&](uint32_t secs) {
    Status s;
    count_known(s, e, secs, window);
    return std::tuple{s.known_sources, s.known_proven, s.known_expired};
  };
  EXPECT_EQ(count(105), std::tuple(1u, 0u, 0u)) << "remembered";
  EXPECT_EQ(count(155), std::tuple(1u, 1u, 0u)) << "remembered no longer, but proven 6 s ago";
  EXPECT_EQ(count(149 + XT_PROOF_SECONDS - 1), std::tuple(1u, 1u, 0u)) << "as long as the data path admits it";
  EXPECT_EQ(count(149 + XT_PROOF_SECONDS), std::tuple(0u, 0u, 1u)) << "then expired, as a proof of its own";
}

// A snapshot's known source goes in as of when it was seen: it takes a
// free way, or the way of a source seen before it, never one seen since.
// (Given its old time for now, every live entry read as seen "now", and
// the record took way 0 whatever its age: a client that behaved a minute
// ago lost its standing to one a restore brought back from an hour ago.)
TEST_F(Proof, ARestoredKnownSourcePushesOutNoneSeenSinceIt) {
  limit();
  const std::vector<uint32_t> same = addresses_of_one_known_set(5);
  ASSERT_EQ(same.size(), 5u);
  auto record = [](uint32_t v4, uint64_t tick) { return known_record(v4, XT_KNOWN_BEHAVED, tick); };
  const uint64_t now = 3600 * kSec;
  skel_->bss->xt_test_now = now;
  std::vector<xt_slot> fresh;
  for (int i = 0; i < 4; i++) fresh.push_back(record(same[i], now - 60 * kSec));  // behaved a minute ago
  auto put = state_->restore_records(XT_RESTORE_KNOWN, fresh);
  ASSERT_TRUE(put.has_value()) << put.error().message;
  ASSERT_EQ(put->restored, 4u);
  auto old = state_->restore_records(XT_RESTORE_KNOWN, {record(same[4], now - 3000 * kSec)});
  ASSERT_TRUE(old.has_value()) << old.error().message;
  EXPECT_EQ(old->restored, 0u) << "seen before every source of its set";
  std::set<uint64_t> known;
  ASSERT_TRUE(state_->for_each_known([&](const xt_known& e) { if (e.family) known.insert(e.key); }).has_value());
  for (int i = 0; i < 4; i++) EXPECT_TRUE(known.count(same[i])) << "the source seen a minute ago, way " << i;
  EXPECT_FALSE(known.count(same[4]));
  // One seen since them all takes the way of the one seen longest ago.
  auto newer = state_->restore_records(XT_RESTORE_KNOWN, {record(same[4], now - 10 * kSec)});
  ASSERT_TRUE(newer.has_value());
  EXPECT_EQ(newer->restored, 1u);
}

// ... nor a proof made since it: proofs go first where a set is full (a
// spoofer can have live hosts make them), but one made after a record's
// time was taken, whatever its age, for the record's way (a restore into
// a live state undid the proofs of the clients then connecting).
TEST_F(Proof, ARestoredKnownSourcePushesOutNoProofMadeSinceIt) {
  limit();
  const std::vector<uint32_t> same = addresses_of_one_known_set(5);
  ASSERT_EQ(same.size(), 5u);
  const auto record = known_record;
  const uint64_t now = 3600 * kSec;
  skel_->bss->xt_test_now = now;
  std::vector<xt_slot> set;
  for (int i = 0; i < 3; i++) set.push_back(record(same[i], XT_KNOWN_BEHAVED, now - 60 * kSec));
  set.push_back(record(same[3], XT_KNOWN_PROVEN, now));  // proven just now
  auto put = state_->restore_records(XT_RESTORE_KNOWN, set);
  ASSERT_TRUE(put.has_value()) << put.error().message;
  ASSERT_EQ(put->restored, 4u);
  auto older = state_->restore_records(XT_RESTORE_KNOWN, {record(same[4], XT_KNOWN_BEHAVED, now - 30 * kSec)});
  ASSERT_TRUE(older.has_value()) << older.error().message;
  EXPECT_EQ(older->restored, 1u) << "it was seen after the three that behaved";
  std::set<uint64_t> known;
  ASSERT_TRUE(state_->for_each_known([&](const xt_known& e) { if (e.family) known.insert(e.key); }).has_value());
  EXPECT_TRUE(known.count(same[3])) << "the proof made since the record is kept";
  EXPECT_TRUE(known.count(same[4]));
  EXPECT_EQ(known.count(same[0]) + known.count(same[1]) + known.count(same[2]), 2u)
      << "one of the three seen before it gave its way";
}

}  // namespace
}  // namespace xt::test
