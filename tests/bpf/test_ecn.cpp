// SPDX-License-Identifier: MIT
// --over ecn (issue 14): an ECN-capable packet that passes with less than
// half of its limit's burst left may be marked Congestion Experienced (at a
// rate this low: always), its IPv4 checksum still right; it may go on into
// an overdraft of half a burst, every packet marked; any other packet meets
// the burst as under any rule, and beyond the overdraft all are dropped.
// Through the real object with the settable clock.
#include <gtest/gtest.h>

#include "packet.h"
#include "program.h"
#include "rules.h"

namespace xt {
namespace {

using test::kSec;
using test::Packet;
using test::Program;

class Ecn : public Program {
 protected:
  void SetUp() override {
    Program::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    load();
  }
  // --rate 10/s --burst 100 --over ecn over 198.18.0.0/15.
  void ecn_rule(bool dry_run = false) {
    rule("198.18.0.0/15", "10/s", 100, [&](RuleSpec& s) {
      s.ecn = true;
      s.dry_run = dry_run;
    });
  }
  // Sends n copies of frame at tick now; counts what passed unmarked, what
  // passed marked, and what was dropped, and checks every passed IPv4
  // header's checksum.
  struct Tally {
    int plain = 0, marked = 0, dropped = 0;
  };
  Tally send(const std::vector<uint8_t>& frame, int n, uint64_t now = 0) {
    Tally t;
    std::vector<uint8_t> out;
    const bool v4 = frame[12] == 0x08;
    for (int i = 0; i < n; i++) {
      if (run(frame, now, &out) != XDP_PASS) {
        t.dropped++;
        continue;
      }
      const uint8_t ecn = v4 ? out[15] & 3 : (out[15] >> 4) & 3;
      const uint8_t was = v4 ? frame[15] & 3 : (frame[15] >> 4) & 3;
      if (ecn != was) {
        EXPECT_EQ(ecn, 3) << "marked means CE";
        t.marked++;
      } else {
        t.plain++;
      }
      if (v4) {
        EXPECT_EQ(Packet::ipv4_checksum(out.data() + 14, 20), 0) << "the IPv4 checksum is still right";
      }
      out[15] = frame[15];
      if (v4) {
        out[24] = frame[24];
        out[25] = frame[25];
      }
      EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + static_cast<long>(frame.size())), frame)
          << "nothing but the ECN bits and the checksum changed";
    }
    return t;
  }
};

TEST_F(Ecn, CapablePacketsAreMarkedPastHalfTheBurstAndThroughTheOverdraft) {
  ecn_rule();
  for (uint8_t ect : {2, 1}) {  // ECT(0), ECT(1)
    const std::string src = ect == 2 ? "198.18.0.9" : "198.18.0.10";
    const auto t = send(Packet().ipv4(src).ecn(ect).build(), 200);
    EXPECT_EQ(t.plain, 50) << "the first half of the burst passes as it came";
    EXPECT_EQ(t.marked, 100) << "the second half, and the overdraft of half a burst, pass marked";
    EXPECT_EQ(t.dropped, 50) << "beyond the overdraft: dropped";
  }
  EXPECT_EQ(counter(XT_MARKED), 200u);
  EXPECT_EQ(counter(XT_PASS_LIMIT), 300u) << "a marked packet passed, and is counted so";
  EXPECT_EQ(counter(XT_DROP_LIMIT), 100u);
  const xt_rule_stats s = rule_stats("198.18.0.0/15");
  EXPECT_EQ(s.marked_packets, 200u);
  EXPECT_EQ(s.marked_bytes, 200 * Packet().ipv4("198.18.0.9").ecn(2).build().size());
}

TEST_F(Ecn, TheMarksFollowTheRefill) {
  ecn_rule();
  const auto frame = Packet().ipv4("198.18.0.9").ecn(2).build();
  EXPECT_EQ(send(frame, 100).marked, 50);
  // A second at 10/s: 10 tokens back; 60 to the end of the overdraft.
  const auto t = send(frame, 70, kSec);
  EXPECT_EQ(t.plain, 0);
  EXPECT_EQ(t.marked, 60);
  EXPECT_EQ(t.dropped, 10);
  // Fifteen seconds idle: full again, and the first half passes unmarked.
  EXPECT_EQ(send(frame, 50, 16 * kSec).plain, 50);
}

TEST_F(Ecn, OtherPacketsMeetTheBurstAndLeaveTheOverdraft) {
  ecn_rule();
  const auto ect = Packet().ipv4("198.18.0.9").ecn(2).build(), plain = Packet().ipv4("198.18.0.9").ecn(0).build();
  EXPECT_EQ(send(plain, 150).plain, 100) << "not ECN-capable: the burst, as under any rule";
  const auto t = send(ect, 100);
  EXPECT_EQ(t.marked, 50) << "the overdraft is still there for ECN-capable packets";
  EXPECT_EQ(t.dropped, 50);
}

// Replacing a rule that drops with one that marks, and back: the overdraft
// is no token on either side.
TEST_F(Ecn, ARuleReplacedToMarkOrToDropKeepsItsTokens) {
  auto limit = [&](bool ecn) { rule("198.18.0.0/15", "100/s", 100, [&](RuleSpec& s) { s.ecn = ecn; }); };
  limit(false);
  const auto plain = Packet().ipv4("198.18.0.9").ecn(0).build(), ect = Packet().ipv4("198.18.0.9").ecn(2).build();
  EXPECT_EQ(send(plain, 40).plain, 40);
  limit(true);  // the same limit, now marking: 60 tokens left, and the overdraft
  EXPECT_EQ(send(plain, 100).plain, 60) << "a bucket keeps its tokens when the rule starts marking";
  const auto t = send(ect, 100);
  EXPECT_EQ(t.marked, 50) << "and gains the overdraft only for ECN-capable packets";
  EXPECT_EQ(t.dropped, 50);
  limit(false);  // dropping again, its overdraft spent
  EXPECT_EQ(send(plain, 100).plain, 0) << "an empty bucket stays empty when the rule stops marking";
  limit(true);
  const auto again = Packet().ipv4("198.18.0.10").ecn(0).build();
  EXPECT_EQ(send(again, 100).plain, 100) << "a fresh source: the burst";
  limit(false);
  EXPECT_EQ(send(again, 100).plain, 0) << "not half a burst more for a source that had spent its burst";
}

// The same at 10/s, where half a burst takes longer than XT_SKEW_TICKS to
// refill: the controller gave the old cap with the overdraft taken off only
// where it refilled sooner (a debt read past a cap by more than that reads
// as a word past the horizon: full), and kept the whole old cap, plus the
// new overdraft, otherwise. Every source then gained half a burst of plain
// packets at each replacement, an unrelated change included (50 here); the
// overdrafts now go to the data path beside the caps.
TEST_F(Ecn, ASlowRuleReplacedGivesNoSourceItsOverdraftAsTokens) {
  auto limit = [&](bool ecn, bool bans = false) {
    rule("198.18.0.0/15", "10/s", 100, [&](RuleSpec& s) {
      s.ecn = ecn;
      if (bans) s.ban_after = s.ban_for = 60;
    });
  };
  limit(true);
  const auto plain = Packet().ipv4("198.18.0.9").ecn(0).build(), ect = Packet().ipv4("198.18.0.9").ecn(2).build();
  EXPECT_EQ(send(plain, 150).plain, 100);
  limit(true, true);  // another option changed: the same limit
  EXPECT_EQ(send(plain, 100).plain, 0) << "a spent burst stays spent when another option changes";
  const auto t = send(ect, 100);
  EXPECT_EQ(t.marked, 50) << "its overdraft as it was";
  limit(false);  // deep in the overdraft, the rule stops marking
  EXPECT_EQ(send(plain, 100).plain, 0) << "a bucket in the old overdraft is empty, not full";
  const auto other = Packet().ipv4("198.18.0.10").ecn(0).build(), third = Packet().ipv4("198.18.0.11").ecn(0).build();
  limit(true);
  EXPECT_EQ(send(other, 100).plain, 100) << "a fresh source: the burst";
  EXPECT_EQ(send(third, 40).plain, 40);
  limit(false);
  EXPECT_EQ(send(other, 100).plain, 0) << "not half a burst more for a source that had spent its burst";
  EXPECT_EQ(send(third, 100).plain, 60) << "and what a source had left, kept";
  limit(true);
  EXPECT_EQ(send(third, 100).plain, 0) << "starting to mark gives no plain packet either";
  EXPECT_EQ(send(Packet().ipv4("198.18.0.11").ecn(2).build(), 100).marked, 50) << "the new overdraft, marked";
}

// A marking rule whose window changes: what is left of the overdraft goes
// with the tokens. The conversion gave every source a whole overdraft
// again, so one that had spent it had half a burst more, marked.
TEST_F(Ecn, AMarkingRuleWhoseWindowChangesKeepsWhatIsLeftOfTheOverdraft) {
  auto limit = [&](const char* rate) { rule("198.18.0.0/15", rate, 100, [&](RuleSpec& s) { s.ecn = true; }); };
  limit("100/s");
  const auto ect = Packet().ipv4("198.18.0.9").ecn(2).build(), plain = Packet().ipv4("198.18.0.10").ecn(0).build();
  EXPECT_EQ(send(ect, 200).dropped, 50) << "the burst and the overdraft";
  EXPECT_EQ(send(plain, 40).plain, 40);
  limit("200/s");
  EXPECT_EQ(send(ect, 100).dropped, 100) << "a spent overdraft stays spent";
  const auto t = send(Packet().ipv4("198.18.0.10").ecn(2).build(), 200);
  EXPECT_EQ(t.plain + t.marked, 110) << "60 tokens left and the whole overdraft, as before the change";
}

// ... and one whose burst grows: the new overdraft is whole, not the old
// one's size with the difference taken from the tokens (found by review:
// 10 plain packets of 60).
TEST_F(Ecn, AMarkingRuleWhoseBurstGrowsKeepsItsTokens) {
  auto limit = [&](uint64_t burst) { rule("198.18.0.0/15", "10/s", burst, [&](RuleSpec& s) { s.ecn = true; }); };
  limit(100);
  const auto plain = Packet().ipv4("198.18.0.9").ecn(0).build();
  EXPECT_EQ(send(plain, 40).plain, 40);
  limit(200);
  EXPECT_EQ(send(plain, 200).plain, 60) << "60 tokens left, as a rule that does not mark keeps them";
  EXPECT_EQ(send(Packet().ipv4("198.18.0.9").ecn(2).build(), 200).marked, 100) << "and the new overdraft whole";
}

TEST_F(Ecn, PacketsThatAreNotCapableOrAlreadyMarkedAreLeftAlone) {
  ecn_rule();
  const auto plain = send(Packet().ipv4("198.18.0.9").ecn(0).build(), 150);
  EXPECT_EQ(plain.plain, 100) << "not ECN-capable: within the limit it passes as it came";
  EXPECT_EQ(plain.dropped, 50) << "and beyond it, it is dropped";
  const auto ce = send(Packet().ipv4("198.18.0.10").ecn(3).build(), 200);
  EXPECT_EQ(ce.plain, 150) << "already CE (ECN-capable): passes through the overdraft, not counted as marked by us";
  EXPECT_EQ(ce.dropped, 50);
  EXPECT_EQ(counter(XT_MARKED), 0u);
}

TEST_F(Ecn, Ipv6TrafficClassIsMarked) {
  rule("2001:db8::/32", "10/s", 100, [](RuleSpec& s) { s.ecn = true; });
  const auto t = send(Packet().ipv6("2001:db8::9").ecn(2).build(), 200);
  EXPECT_EQ(t.plain, 50);
  EXPECT_EQ(t.marked, 100);
  EXPECT_EQ(t.dropped, 50);
  EXPECT_EQ(counter(XT_MARKED), 100u);
}

TEST_F(Ecn, ADryRunRuleMarksNothing) {
  ecn_rule(/*dry_run=*/true);
  const auto t = send(Packet().ipv4("198.18.0.9").ecn(2).build(), 200);
  EXPECT_EQ(t.plain, 200);
  EXPECT_EQ(counter(XT_MARKED), 0u);
}

TEST_F(Ecn, ARuleWithoutEcnMarksNothing) {
  rule("198.18.0.0/15", "10/s", 100);
  const auto t = send(Packet().ipv4("198.18.0.9").ecn(2).build(), 150);
  EXPECT_EQ(t.plain, 100);
  EXPECT_EQ(t.dropped, 50);
  EXPECT_EQ(counter(XT_MARKED), 0u);
}

}  // namespace
}  // namespace xt
