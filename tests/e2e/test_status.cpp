// SPDX-License-Identifier: MIT
// What status (and stats, events, metrics) tell in the two situations the
// review (issue 9) found them silent in: xthrottle attached from another pin
// directory, and a flood saturating a rule's new-source budget.
#include <signal.h>

#include <xthrottle/abi.h>

#include "operate_test.h"

namespace xt::test {
namespace {

class Status : public Operate {};

// 9.12: inside a namespace, status without --pin-dir said "nothing attached"
// while xthrottle was attached there. It finds the program and its pins.
TEST_F(Status, FindsXthrottleAttachedFromAnotherPinDirectory) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  Outcome r = lab_->in_dut({XT_BIN, "status", "--check"});  // the default pin directory
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.out.find("dut0 runs xthrottle"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--pin-dir " + lab_->pin_dir()), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("nothing attached"), std::string::npos) << r.out;
  const json j = json::parse(lab_->in_dut({XT_BIN, "status", "--json"}).out);
  ASSERT_EQ(j["elsewhere"].size(), 1u);
  EXPECT_EQ(j["elsewhere"][0]["pin_dir"], lab_->pin_dir());
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0) << "from the right directory, all is well";

  // A second xthrottle, on other pins, on this namespace's lo: from either
  // pin directory, a note (each state is attached and protecting), not a
  // reason to call the host unprotected.
  const std::string other = lab_->pin_dir() + "2";
  ASSERT_EQ(lab_->in_dut({XT_BIN, "--pin-dir", other, "attach", "lo"}).rc, 0);
  ASSERT_EQ(lab_->in_dut({XT_BIN, "--pin-dir", other, "rule", "add", "198.18.0.0/15", "--rate", "10/s"}).rc, 0);
  Outcome both = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(both.rc, 0) << both.out;
  EXPECT_NE(both.out.find("note: lo runs xthrottle"), std::string::npos) << both.out;
  EXPECT_NE(both.out.find("--pin-dir " + other), std::string::npos) << both.out;
  EXPECT_EQ(lab_->in_dut({XT_BIN, "--pin-dir", other, "detach", "lo"}).rc, 0);
}

// 9.15: a flood on a rule's new-source budget made no event, and status
// said "protected" without a word about new clients being turned away.
TEST_F(Status, ASaturatedNewSourceBudgetIsToldEverywhere) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s", "--new-rate", "100/s"});
  Background events(lab_->xthrottle_argv({"events", "--json"}));
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  std::this_thread::sleep_for(300ms);
  // 20,000 spoofed sources a second for 3 s: the budget admits 100 a second.
  Background flood(lab_->flood_argv({"--src", "198.18.0.0", "--sources", "60000", "--count", "60000", "--rate",
                                     "20000"}));
  std::this_thread::sleep_for(1500ms);
  Outcome status = lab_->xthrottle({"status", "--check"});
  const json st = lab_->xthrottle_json({"status", "--json"});
  const json stats = lab_->xthrottle_json({"stats", "--json"});
  Outcome metrics = lab_->in_dut({"curl", "-s", "-f", "http://127.0.0.1:9431/metrics"});
  ASSERT_EQ(flood.wait().rc, 0);
  EXPECT_EQ(status.rc, 0) << "still protected: the flood is being shed";
  EXPECT_NE(status.out.find("UNDER A FLOOD"), std::string::npos) << status.out;
  ASSERT_EQ(st["new_source_saturated"].size(), 1u) << st.dump();
  EXPECT_EQ(st["new_source_saturated"][0]["rule"], "198.18.0.0/15");
  EXPECT_GT(st["new_source_saturated"][0]["dropped_pps"].get<double>(), 5000);
  EXPECT_EQ(stats["rules"]["198.18.0.0/15"]["new_source_saturated"], true);
  EXPECT_NE(metrics.out.find("xthrottle_new_source_saturated{rule=\"198.18.0.0/15\"} 1\n"), std::string::npos)
      << metrics.out;

  // Quiet for over a second, then one new client: it is admitted, and the
  // saturation is over.
  std::this_thread::sleep_for(1500ms);
  lab_->flood({"--src", "198.18.200.1", "--count", "1"});
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(lab_->xthrottle_json({"status", "--json"})["new_source_saturated"].size(), 0u);
  events.signal(SIGINT);
  serve.signal(SIGTERM);
  for (Outcome r : {events.wait(), serve.wait()}) {
    const std::vector<json> lines = json_lines(r.out);
    EXPECT_TRUE(has_event(lines, "new_source_saturated")) << r.out;
    const auto end = std::ranges::find_if(lines, [](const json& j) { return j["event"] == "new_source_recovered"; });
    ASSERT_NE(end, lines.end()) << r.out;
    EXPECT_EQ((*end)["rule"], "198.18.0.0/15");
    EXPECT_GT((*end)["dropped_packets"].get<uint64_t>(), 30000u);
    EXPECT_GT((*end)["saturated_seconds"].get<double>(), 2.0);
  }
}

// A packet dropped as table_full is a race of two CPUs for one way of the
// source table. status warned of it, and so called the host unprotected
// (`--check` 3, xthrottle_protected 0) for as long as the state lived,
// after a single one: it is a note.
TEST_F(Status, ARaceForASlotIsANoteNotAnAlarmForGood) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  ASSERT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0);
  const std::string pin = lab_->pin_dir() + "/" + XT_MAP_COUNTERS;
  const std::string key = std::to_string(XT_DROP_NO_STATE);
  Outcome put = run({"bpftool", "map", "update", "pinned", pin, "key", key, "0", "0", "0", "value", "1", "0", "0",
                     "0", "0", "0", "0", "0", "64", "0", "0", "0", "0", "0", "0", "0"});
  ASSERT_EQ(put.rc, 0) << put.err;
  ASSERT_GT(lab_->xthrottle_json({"stats", "--json"})["reasons"]["table_full"]["packets"].get<uint64_t>(), 0u);
  Outcome status = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(status.rc, 0) << status.out;
  const json st = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(st["protected"], true) << st.dump();
  EXPECT_NE(st["notes"].dump().find("table_full"), std::string::npos) << st.dump();
}

// Newcomers that took the slots of sources still sending: the table was
// too small for the sources sending, and their limits started over. status
// says how many, in its text and JSON, and in a note (a count since the
// state was made, not a state of the host now: --check stays 0).
TEST_F(Status, SourcesEvictedWhileSendingAreSaid) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  const json before = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(before["sources_evicted_active"], 0u) << before.dump();
  EXPECT_EQ(before["notes"].dump().find("still sending"), std::string::npos) << before.dump();
  const std::string pin = lab_->pin_dir() + "/" + XT_MAP_COUNTERS;
  for (uint32_t counter : {uint32_t{XT_SOURCES_EVICTED}, uint32_t{XT_SOURCES_EVICTED_ACTIVE}}) {
    Outcome put = run({"bpftool", "map", "update", "pinned", pin, "key", std::to_string(counter), "0", "0", "0",
                       "value", "3", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0"});
    ASSERT_EQ(put.rc, 0) << put.err;
  }
  const json st = lab_->xthrottle_json({"status", "--json"});
  const uint64_t evicted = st["sources_evicted_active"];
  EXPECT_GT(evicted, 0u) << st.dump();
  EXPECT_EQ(st["sources_evicted"], evicted) << st.dump();
  EXPECT_EQ(lab_->xthrottle_json({"stats", "--json"})["sources_evicted_active"], evicted);
  EXPECT_EQ(st["protected"], true) << st.dump();
  EXPECT_NE(st["notes"].dump().find(std::to_string(evicted) + " times since the state was made, a newcomer took the slot "
                                                                 "of a source still sending"),
            std::string::npos)
      << st.dump();
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0);
  const Outcome text = lab_->xthrottle({"status"});
  EXPECT_NE(text.out.find("evicted for newcomers (" + std::to_string(evicted) + " of them while still sending)"),
            std::string::npos)
      << text.out;
}

}  // namespace
}  // namespace xt::test
