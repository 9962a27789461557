// SPDX-License-Identifier: MIT
// Bans (issue 14), through the CLI in the lab: a banned source's packets
// are all dropped and counted as banned while its neighbours pass; `bans`
// lists it with the time left; it ends on time; lifting it lets the source
// through at once; an --allow rule beats it.
#include <signal.h>

#include <thread>

#include "operate_test.h"

namespace xt::test {
namespace {

class Bans : public Operate {
 protected:
  uint64_t banned() { return reason_packets("banned"); }
};

TEST_F(Bans, ABannedSourceIsDroppedListedAndReleasedOnTime) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100000/s"});
  ok({"ban", "add", "198.18.0.9", "--for", "3s"});
  const json listed = lab_->xthrottle_json({"bans", "--json"});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["cidr"], "198.18.0.9/32");
  EXPECT_GT(listed[0]["seconds_left"].get<double>(), 1.0);
  EXPECT_LE(listed[0]["seconds_left"].get<double>(), 3.0);
  lab_->reset_received();
  const Flood b = flood_from("198.18.0.9", 1000);
  EXPECT_EQ(lab_->received_v4(), 0u) << "every packet of the banned source dropped";
  EXPECT_EQ(banned(), b.sent);
  const Flood n = flood_from("198.18.0.10", 1000);
  EXPECT_EQ(lab_->received_v4(), n.sent) << "its neighbour passes";
  std::this_thread::sleep_for(3s);
  const Flood later = flood_from("198.18.0.9", 1000);
  EXPECT_EQ(lab_->received_v4(), n.sent + later.sent) << "the ban ended on time";
  EXPECT_EQ(lab_->xthrottle_json({"bans", "--json"}).size(), 0u);
}

TEST_F(Bans, LiftingABanLetsTheSourceThroughAndAllowBeatsABan) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100000/s"});
  ok({"rule", "add", "198.18.0.7", "--allow"});
  ok({"ban", "add", "198.18.0.0/24", "--for", "1h"});
  lab_->reset_received();
  const Flood allowed = flood_from("198.18.0.7", 500);
  EXPECT_EQ(lab_->received_v4(), allowed.sent) << "an --allow rule beats a ban";
  flood_from("198.18.0.9", 500);
  EXPECT_EQ(lab_->received_v4(), allowed.sent) << "the rest of the /24 is banned";
  ok({"ban", "del", "198.18.0.0/24"});
  const Flood lifted = flood_from("198.18.0.9", 500);
  EXPECT_EQ(lab_->received_v4(), allowed.sent + lifted.sent) << "lifted: through at once";
  const Outcome again = lab_->xthrottle({"ban", "del", "198.18.0.0/24"});
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.err.find("no ban for 198.18.0.0/24"), std::string::npos) << again.err;
  const Outcome bad = lab_->xthrottle({"ban", "add", "198.18.0.0/24", "--for", "soon"});
  EXPECT_EQ(bad.rc, 2) << bad.err;
  EXPECT_EQ(lab_->xthrottle_json({"bans", "--json"}).size(), 0u) << "nothing changed";
}

// --ban-after 1s --ban-for 1min: a source over its limit for 3 s on end is
// banned, listed, and told as an event; the rule's other sources are not.
TEST_F(Bans, ARuleBansASourceOverItsLimitForLong) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--ban-after", "1s", "--ban-for", "1min"});
  Background events(lab_->xthrottle_argv({"events", "--json"}));
  std::this_thread::sleep_for(500ms);
  lab_->flood({"--src", "198.18.0.9", "--count", "6000", "--rate", "2000"});
  lab_->reset_received();
  const Flood light = flood_from("198.18.0.10", 5);
  const uint64_t light_passed = lab_->received_v4();
  events.signal(SIGTERM);
  const Outcome told = events.wait();
  EXPECT_GT(banned(), 0u) << "its packets after the ban counted as banned";
  const json listed = lab_->xthrottle_json({"bans", "--json"});
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["cidr"], "198.18.0.9/32");
  EXPECT_GT(listed[0]["seconds_left"].get<double>(), 50.0);
  EXPECT_TRUE(has_event(json_lines(told.out), "banned")) << told.out;
  EXPECT_EQ(light_passed, light.sent) << "the rule's other sources pass";
}

}  // namespace
}  // namespace xt::test
