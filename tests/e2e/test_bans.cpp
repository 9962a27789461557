// SPDX-License-Identifier: MIT
// Bans (issue 14), through the CLI in the lab: a banned source's packets
// are all dropped and counted as banned while its neighbours pass; `bans`
// lists it with the time left; it ends on time; lifting it lets the source
// through at once; an --allow rule beats it; `events` tells each ban made
// and gone, and why.
#include <signal.h>
#include <xthrottle/abi.h>

#include <thread>

#include "operate_test.h"

namespace xt::test {
namespace {

class Bans : public Operate {
 protected:
  uint64_t banned() { return reason_packets("banned"); }
  // The first event of this kind for this source, or null.
  static json event_of(const std::vector<json>& lines, const std::string& kind, const std::string& source) {
    for (const json& j : lines)
      if (j.value("event", "") == kind && j.value("source", "") == source) return j;
    return nullptr;
  }
};

TEST_F(Bans, ABannedSourceIsDroppedListedAndReleasedOnTime) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100000/s"});
  Background events(lab_->xthrottle_argv({"events", "--json"}));
  std::this_thread::sleep_for(500ms);
  ok({"ban", "add", "198.18.0.9", "--for", "3s"});
  const json listed = lab_->xthrottle_json({"bans", "--json"});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["cidr"], "198.18.0.9/32");
  EXPECT_GT(listed[0]["seconds_left"].get<double>(), 1.0);
  EXPECT_LE(listed[0]["seconds_left"].get<double>(), 3.0);
  EXPECT_NE(lab_->xthrottle({"bans"}).out.find("  (ban add)\n"), std::string::npos) << "made by hand";
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
  std::this_thread::sleep_for(1500ms);  // the ban table is read once a second
  events.signal(SIGTERM);
  const auto told = json_lines(events.wait().out);
  const json made = event_of(told, "banned", "198.18.0.9/32"), gone = event_of(told, "unbanned", "198.18.0.9/32");
  ASSERT_FALSE(made.is_null()) << "ban add is told";
  EXPECT_EQ(made["why"], "ban_add");
  EXPECT_TRUE(made["rule"].is_null());
  EXPECT_DOUBLE_EQ(made["ban_seconds"].get<double>(), 3.0);
  ASSERT_FALSE(gone.is_null()) << "its end is told";
  EXPECT_EQ(gone["why"], "ended");
  EXPECT_NEAR(gone["banned_seconds"].get<double>(), 3.0, 0.01);
}

// What a ban drops of a source no rule covers is no rule's drop: the
// metrics count it under rule="none", so that the drops summed over rules
// are all of them. (It was left out: "none" had the malformed frames only.)
TEST_F(Bans, ABanWithoutARuleIsInTheMetricsUnderNone) {
  ok({"rule", "add", "198.19.0.0/16", "--rate", "100000/s"});  // not 198.18.0.9's
  ok({"ban", "add", "198.18.0.9", "--for", "1h"});
  const Flood b = flood_from("198.18.0.9", 1000);
  ASSERT_EQ(banned(), b.sent);
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  const Outcome m = lab_->in_dut({"curl", "-s", "-f", "http://127.0.0.1:9431/metrics"});
  ASSERT_EQ(m.rc, 0);
  const std::string sample =
      "\nxthrottle_packets_total{action=\"dropped\",rule=\"none\"} " + std::to_string(b.sent) + "\n";
  EXPECT_NE(m.out.find(sample), std::string::npos) << m.out.substr(0, 4000);
  serve.signal(SIGTERM);
  serve.wait();
}

TEST_F(Bans, LiftingABanLetsTheSourceThroughAndAllowBeatsABan) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100000/s"});
  ok({"rule", "add", "198.18.0.7", "--allow"});
  Background events(lab_->xthrottle_argv({"events", "--json"}));
  std::this_thread::sleep_for(500ms);
  ok({"ban", "add", "198.18.0.0/24", "--for", "1h"});
  lab_->reset_received();
  const Flood allowed = flood_from("198.18.0.7", 500);
  EXPECT_EQ(lab_->received_v4(), allowed.sent) << "an --allow rule beats a ban";
  flood_from("198.18.0.9", 500);
  EXPECT_EQ(lab_->received_v4(), allowed.sent) << "the rest of the /24 is banned";
  // A ban made and lifted between two reads of the ban table (a second
  // apart) is told by neither: this one is read in force first.
  std::this_thread::sleep_for(1200ms);
  ok({"ban", "del", "198.18.0.0/24"});
  const Flood lifted = flood_from("198.18.0.9", 500);
  EXPECT_EQ(lab_->received_v4(), allowed.sent + lifted.sent) << "lifted: through at once";
  const Outcome again = lab_->xthrottle({"ban", "del", "198.18.0.0/24"});
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.err.find("no ban for 198.18.0.0/24"), std::string::npos) << again.err;
  const Outcome bad = lab_->xthrottle({"ban", "add", "198.18.0.0/24", "--for", "soon"});
  EXPECT_EQ(bad.rc, 2) << bad.err;
  EXPECT_EQ(lab_->xthrottle_json({"bans", "--json"}).size(), 0u) << "nothing changed";
  std::this_thread::sleep_for(1500ms);
  events.signal(SIGTERM);
  const json gone = event_of(json_lines(events.wait().out), "unbanned", "198.18.0.0/24");
  ASSERT_FALSE(gone.is_null()) << "the lifting is told";
  EXPECT_EQ(gone["why"], "lifted");
  EXPECT_LT(gone["banned_seconds"].get<double>(), 60.0);
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
  EXPECT_EQ(listed[0]["rule"], "198.18.0.0/15") << "the rule that made it";
  const std::string text = lab_->xthrottle({"bans"}).out;
  EXPECT_NE(text.find("  BY\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  198.18.0.0/15\n"), std::string::npos) << "the rule, in the text too:\n" << text;
  const auto lines = json_lines(told.out);
  const json made = event_of(lines, "banned", "198.18.0.9/32");
  ASSERT_FALSE(made.is_null()) << told.out;
  EXPECT_EQ(made["why"], "ban_after");
  EXPECT_EQ(std::ranges::count_if(lines, [](const json& j) { return j.value("event", "") == "banned"; }), 1)
      << "told once, by the data path, not again by the ban table's reader: " << told.out;
  EXPECT_EQ(light_passed, light.sent) << "the rule's other sources pass";
  // Its rule deleted, and its slot taken by another: the ban is not the
  // other's (the next rule added takes the lowest free id).
  ok({"rule", "del", "198.18.0.0/15"});
  ok({"rule", "add", "10.0.0.0/8", "--rate", "1/s"});
  const json after = lab_->xthrottle_json({"bans", "--json"});
  ASSERT_EQ(after.size(), 1u) << after.dump();
  EXPECT_EQ(after[0]["rule"], "(deleted rule)");
  EXPECT_NE(lab_->xthrottle({"bans"}).out.find("  (deleted rule)\n"), std::string::npos);
}

// A rule's bans go in from the data path, which takes an ended one out only
// when its source comes back. A botnet's sources that never do left theirs
// for good: 65,536 of them, and the table was full, so no source could be
// banned again, and nothing said so. serve clears them.
TEST_F(Bans, EndedBansAreClearedThoughTheirSourcesNeverComeBack) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1/s", "--burst", "1", "--ban-after", "0", "--ban-for", "1s"});
  // Four packets from each of 50 sources: the first passes, the second is
  // the first drop, and bans.
  lab_->flood({"--src", "198.18.1.0", "--sources", "50", "--count", "200", "--rate", "2000"});
  EXPECT_EQ(lab_->xthrottle_json({"bans", "--json"}).size(), 50u);
  const std::string pin = lab_->pin_dir() + "/" + XT_MAP_BANS;
  auto in_table = [&]() -> size_t {
    const Outcome dump = run({"bpftool", "-j", "map", "dump", "pinned", pin});
    EXPECT_EQ(dump.rc, 0) << dump.err;
    return dump.rc == 0 ? json::parse(dump.out).size() : 0;
  };
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(lab_->xthrottle_json({"bans", "--json"}).size(), 0u) << "all ended";
  EXPECT_EQ(in_table(), 50u) << "nothing took them out yet";
  // An ended ban is no ban to lift: said so (it said "lifted"), and it goes.
  const Outcome lift = lab_->xthrottle({"ban", "del", "198.18.1.0"});
  EXPECT_EQ(lift.rc, 1) << lift.out;
  EXPECT_NE(lift.err.find("no ban for 198.18.1.0/32"), std::string::npos) << lift.err;
  EXPECT_EQ(in_table(), 49u);
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9433"}));
  size_t left = 49;
  for (int i = 0; i < 100 && left; i++) {
    std::this_thread::sleep_for(100ms);
    left = in_table();
  }
  serve.signal(SIGTERM);
  serve.wait();
  EXPECT_EQ(left, 0u) << "ended bans still in the table after 10 s of serve";
}

}  // namespace
}  // namespace xt::test
