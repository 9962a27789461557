// SPDX-License-Identifier: MIT
// Snapshots (issue 15) through the CLI in the lab: a reboot simulated by
// taking the program off and removing every pin, then attaching afresh. A
// quota part used stays part used (`save`, `restore`); `serve --snapshot`
// restores at start into a state made afresh (not over one that outlived
// it) and saves on stop; a damaged snapshot changes nothing.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <xthrottle/abi.h>

#include "operate_test.h"

namespace xt::test {
namespace {

class Snapshots : public Operate {
 protected:
  // Everything the kernel held is gone, as after a reboot.
  void wipe() {
    ok({"detach", "dut0"});
    for (const auto& pin : std::filesystem::directory_iterator(lab_->pin_dir())) std::filesystem::remove_all(pin);
  }
  // The same, then attached anew.
  void reboot() {
    wipe();
    ok({"attach", "dut0"});
    ASSERT_EQ(rules().size(), 0u) << "a fresh state";
  }
  // A rule of 1000 a day, 900 of it used by one source, saved to `file`.
  // The stats read just before the save: at most what the snapshot
  // holds (a stray packet of the lab's, an IPv6 router solicitation, may
  // come between the two).
  json save_with_900_used(const std::string& file) {
    ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/day", "--burst", "1000"});
    lab_->reset_received();
    flood_from("198.18.0.9", 900);
    json before = stats();
    Outcome saved = lab_->xthrottle({"save", file});
    EXPECT_EQ(saved.rc, 0) << saved.err;
    return before;
  }
};

TEST_F(Snapshots, AQuotaPartUsedIsPartUsedAfterAReboot) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/day", "--burst", "1000"});
  ok({"ban", "add", "198.18.9.0/24", "--for", "1h"});
  lab_->reset_received();
  const Flood used = flood_from("198.18.0.9", 900);
  ASSERT_EQ(lab_->received_v4(), used.sent);
  const std::string file = dir_ + "/state.snap";
  const json saved = lab_->xthrottle_json({"save", file, "--json"});
  EXPECT_EQ(saved["rules"], 1);
  EXPECT_EQ(saved["buckets"], 1);
  EXPECT_EQ(saved["bans"], 1);

  reboot();
  const json restored = lab_->xthrottle_json({"restore", file, "--json"});
  EXPECT_EQ(restored["buckets_restored"], 1) << restored.dump();
  lab_->reset_received();
  flood_from("198.18.0.9", 200);
  EXPECT_EQ(lab_->received_v4(), 100u) << "900 of 1000 a day used before the reboot: 100 left";
  const json bans = lab_->xthrottle_json({"bans", "--json"});
  ASSERT_EQ(bans.size(), 1u);
  EXPECT_GT(bans[0]["seconds_left"].get<double>(), 3500.0);
  EXPECT_EQ(lab_->xthrottle_json({"stats", "--json"})["rules"]["198.18.0.0/15"]["passed_packets"], 1000)
      << "the rule's counters carried on";

  // Damaged: refused, exit 2, nothing changed.
  std::string bytes = file_bytes(file);
  bytes[bytes.size() / 2] ^= 1;
  const std::string bad = write("bad.snap", bytes);
  ok({"rule", "add", "198.19.0.0/16", "--rate", "5/min"});  // a rule of this boot's, and the next bucket
  const json rules_before = rules();
  const json bans_before = lab_->xthrottle_json({"bans", "--json"});
  const json stats_before = lab_->xthrottle_json({"stats", "--json"})["rules"];
  const Outcome r = lab_->xthrottle({"restore", bad});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find(bad + ": corrupt"), std::string::npos) << r.err;
  EXPECT_EQ(rules(), rules_before) << "nothing changed";
  const json bans_after = lab_->xthrottle_json({"bans", "--json"});
  ASSERT_EQ(bans_after.size(), bans_before.size());
  EXPECT_EQ(bans_after[0]["cidr"], bans_before[0]["cidr"]);
  EXPECT_EQ(lab_->xthrottle_json({"stats", "--json"})["rules"], stats_before);
  lab_->reset_received();
  flood_from("198.18.0.9", 50);
  EXPECT_EQ(lab_->received_v4(), 0u) << "the day's quota stays spent: the bucket was not restored again";
}

TEST_F(Snapshots, ServeRestoresAtStartAndSavesOnStop) {
  const std::string file = dir_ + "/serve.snap";
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/day", "--burst", "1000"});
  lab_->reset_received();
  flood_from("198.18.0.9", 600);
  {
    Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
    ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
    serve.signal(SIGTERM);
    const auto lines = json_lines(serve.wait().out);
    EXPECT_TRUE(has_event(lines, "snapshot_none"));
    EXPECT_TRUE(has_event(lines, "snapshot_saved")) << "saved on stop";
  }
  ASSERT_TRUE(std::filesystem::exists(file));

  reboot();
  {
    // Ready (READY=1) once the snapshot is in; the metrics answer before.
    NotifySocket manager(dir_ + "/notify.sock");
    Background serve(notifying(dir_ + "/notify.sock", {"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file,
                                                       "--snapshot-every", "1s"}));
    ASSERT_EQ(manager.next(), "READY=1");
    lab_->reset_received();
    flood_from("198.18.0.9", 600);
    EXPECT_EQ(lab_->received_v4(), 400u) << "600 of 1000 used before the reboot";
    std::this_thread::sleep_for(1500ms);
    serve.signal(SIGTERM);
    const auto lines = json_lines(serve.wait().out);
    EXPECT_TRUE(has_event(lines, "snapshot_restored"));
    EXPECT_GE(std::ranges::count_if(lines, [](const json& j) { return j.value("event", "") == "snapshot_saved"; }), 2)
        << "every second, and on stop";
  }

  // serve restarted on a live state (its pins outlived it): they are newer
  // than any snapshot, which is left alone.
  {
    Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
    ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
    ok({"ban", "add", "198.18.9.0/24", "--for", "1h"});
    serve.signal(SIGTERM);
    const auto lines = json_lines(serve.wait().out);
    EXPECT_TRUE(has_event(lines, "snapshot_skipped")) << "not restored over the live state";
    EXPECT_FALSE(has_event(lines, "snapshot_restored"));
  }

  // A damaged snapshot: moved aside, and serve goes on.
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('!');
  }
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics")) << "serve goes on";
  serve.signal(SIGTERM);
  const auto lines = json_lines(serve.wait().out);
  ASSERT_TRUE(has_event(lines, "snapshot_rejected"));
  bool aside = false;
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    aside |= e.path().filename().string().starts_with("serve.snap.rejected-");
  EXPECT_TRUE(aside) << "the damaged snapshot kept for a look";
}

// serve restarted on the state it saved (the pins outlived it) restores
// nothing, whatever the state holds: one with no rule, ban or list looked
// made afresh, and got the snapshot again, its counters by reason added a
// second time on every restart, and a rule deleted since back.
TEST_F(Snapshots, AServeRestartedOnTheStateItSavedRestoresNothing) {
  const std::string file = dir_ + "/serve.snap";
  lab_->reset_received();
  flood_from("198.18.0.9", 100);  // no rule covers it: counted as unmatched
  const uint64_t unmatched = reason_packets("unmatched");
  ASSERT_GE(unmatched, 100u);
  auto serve_once = [&] {
    Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
    EXPECT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
    serve.signal(SIGTERM);
    return json_lines(serve.wait().out);
  };
  EXPECT_TRUE(has_event(serve_once(), "snapshot_saved"));
  for (int restart = 0; restart < 2; restart++) {
    const auto lines = serve_once();
    EXPECT_TRUE(has_event(lines, "snapshot_skipped")) << "restart " << restart;
    EXPECT_FALSE(has_event(lines, "snapshot_restored")) << "restart " << restart;
  }
  // (A neighbour solicitation or two of the lab's own may come meanwhile.)
  EXPECT_LT(reason_packets("unmatched"), unmatched + 50) << "counted once, not once more for every restart";

  // A rule deleted while serve was stopped stays deleted.
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  EXPECT_TRUE(has_event(serve_once(), "snapshot_saved"));
  ok({"rule", "del", "198.18.0.0/15"});
  EXPECT_TRUE(has_event(serve_once(), "snapshot_skipped"));
  EXPECT_EQ(rules().size(), 0u) << "the deleted rule is not brought back";
}

// After a reboot, something filled the new state before serve came (a ban
// added at boot by another tool; a rule added by hand while serve was
// down): serve skipped the snapshot as "newer than any snapshot", though
// the state was another one, and its first save wrote over it: the quota
// spent before the reboot, and everything else, gone for good. The
// snapshot is kept aside, and restores by hand.
TEST_F(Snapshots, ASnapshotServeSkipsForAnotherStateIsKeptAside) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/day", "--burst", "1000"});
  lab_->reset_received();
  flood_from("198.18.0.9", 900);
  const std::string file = dir_ + "/serve.snap";
  ok({"save", file});
  reboot();
  ok({"ban", "add", "198.18.9.0/24", "--for", "1h"});  // before serve
  {
    Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
    ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
    serve.signal(SIGTERM);
    const auto lines = json_lines(serve.wait().out);
    EXPECT_TRUE(has_event(lines, "snapshot_skipped"));
    EXPECT_FALSE(has_event(lines, "snapshot_restored"));
  }
  std::string aside;
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    if (e.path().filename().string().starts_with("serve.snap.skipped-")) aside = e.path();
  ASSERT_FALSE(aside.empty()) << "the snapshot kept aside";
  reboot();
  ok({"restore", aside});
  lab_->reset_received();
  flood_from("198.18.0.9", 200);
  EXPECT_EQ(lab_->received_v4(), 100u) << "the quota spent before the first reboot, still spent";
}

// A restore that a kill cut short (between the rules and the buckets) left
// a state that was not empty: the next serve skipped the snapshot as older
// than the state, and its first save wrote the part over the whole (the
// quota spent before the reboot, gone). A marker beside the snapshot says a
// restore is under way; a serve that finds it restores into the part, each
// counter topped up to the snapshot's, not added twice.
TEST_F(Snapshots, ARestoreCutShortIsResumedByTheNextServe) {
  const std::string file = dir_ + "/serve.snap";
  save_with_900_used(file);
  std::filesystem::copy_file(file, file + ".whole");
  reboot();
  // What the cut restore had put in: the rule, without its counters (the
  // kill came before them) or any bucket; and its marker.
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/day", "--burst", "1000"});
  const std::string state = lab_->xthrottle_json({"status", "--json"})["state_id"];
  ASSERT_EQ(state.size(), 32u);
  // A marker of another state (before the reboot) says nothing: the part
  // is taken for a state that outlived serve, and the snapshot skipped.
  std::ofstream(file + ".restoring") << "state 0123456789abcdef0123456789abcdef\n";
  {
    Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
    ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
    serve.signal(SIGTERM);
    const auto lines = json_lines(serve.wait().out);
    EXPECT_TRUE(has_event(lines, "snapshot_skipped"));
    EXPECT_FALSE(std::filesystem::exists(file + ".restoring")) << "a marker that said nothing is removed";
    bool aside = false;  // the state may hold part of it: the snapshot is kept
    for (const auto& e : std::filesystem::directory_iterator(dir_))
      aside |= e.path().filename().string().starts_with("serve.snap.unresumed-");
    EXPECT_TRUE(aside) << "the snapshot kept aside, not written over by the part";
  }
  // That serve saved the part on stop, as it would: the whole back.
  std::filesystem::copy_file(file + ".whole", file, std::filesystem::copy_options::overwrite_existing);
  std::ofstream(file + ".restoring") << "state " << state << "\n";
  {
    NotifySocket manager(dir_ + "/notify.sock");
    Background serve(notifying(dir_ + "/notify.sock", {"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
    ASSERT_EQ(manager.next(), "READY=1");
    EXPECT_FALSE(std::filesystem::exists(file + ".restoring")) << "the marker goes once the restore is done";
    lab_->reset_received();
    flood_from("198.18.0.9", 200);
    EXPECT_EQ(lab_->received_v4(), 100u) << "900 of the day's 1000 used before the reboot: 100 left";
    serve.signal(SIGTERM);
    const auto lines = json_lines(serve.wait().out);
    const auto restored = std::ranges::find_if(lines, [](const json& j) { return j["event"] == "snapshot_restored"; });
    ASSERT_NE(restored, lines.end()) << "resumed, not skipped";
    EXPECT_EQ(restored->value("resumed", false), true) << restored->dump();
  }
  EXPECT_EQ(lab_->xthrottle_json({"stats", "--json"})["rules"]["198.18.0.0/15"]["passed_packets"], 1000)
      << "the 900 before, topped up once, and the 100 after";
}

// The source table's settings are fixed when the state is made, and after
// a reboot whatever runs first makes it (the units start serve, which
// restores, and attach, with no options). So the snapshot carries them, and
// a rules file may state them; a file that asks another table than the
// state's is refused with nothing changed.
TEST_F(Snapshots, TheSourceTableComesBackAsItWasMade) {
  wipe();
  ok({"attach", "dut0", "--max-sources", "4096", "--idle", "5s"});
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/day", "--burst", "1000"});
  flood_from("198.18.0.9", 10);
  const std::string file = dir_ + "/table.snap";
  ok({"save", file});
  const std::string saved = dir_ + "/table-4096.snap";  // serve saves over `file` on stop
  std::filesystem::copy_file(file, saved);

  wipe();
  ok({"restore", file});
  json s = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(s["max_sources"], 4096);
  EXPECT_EQ(s["idle_seconds"], 5);
  ok({"attach", "dut0"});
  EXPECT_EQ(rules().size(), 1u);

  const std::string rule = "\n[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"5/s\"\n";
  const std::string bigger = write("bigger.toml", "[sources]\nmax_sources = 8192\n" + rule);
  const Outcome refused = lab_->xthrottle({"apply", bigger});
  EXPECT_EQ(refused.rc, 1);
  EXPECT_NE(refused.err.find("already holds 4096 sources"), std::string::npos) << refused.err;
  EXPECT_EQ(rules()[0]["rate"], "1000/day") << "nothing changed";
  const Outcome shorter = lab_->xthrottle({"apply", write("shorter.toml", "[sources]\nidle = \"3s\"\n" + rule)});
  EXPECT_EQ(shorter.rc, 1);
  EXPECT_NE(shorter.err.find("untracks a source after 5s"), std::string::npos) << shorter.err;
  ok({"apply", write("same.toml", "[sources]\nmax_sources = 4096\nidle = \"5s\"\n" + rule)});
  EXPECT_EQ(rules()[0]["rate"], "5/s");
  // serve refuses such a file at start, before it restores anything.
  ok({"rule", "del", "198.18.0.0/15"});
  const Outcome serve_refused =
      lab_->xthrottle({"serve", "--config", bigger, "--metrics", "127.0.0.1:9431", "--snapshot", file});
  EXPECT_EQ(serve_refused.rc, 1);
  EXPECT_NE(serve_refused.err.find("already holds 4096 sources"), std::string::npos) << serve_refused.err;
  EXPECT_EQ(rules().size(), 0u) << "nothing restored";

  // serve after a reboot: the table its config asks, the rest as the
  // snapshot's state had it (the idle window), the snapshot's rules and
  // buckets in it, then the config's rules.
  // It tells systemd when it is ready (Type=notify), and the units that
  // attach start then: the state is made by then, as the snapshot and the
  // config say.
  wipe();
  NotifySocket manager(dir_ + "/notify.sock");
  Background serve(
      notifying(dir_ + "/notify.sock", {"serve", "--config", bigger, "--metrics", "127.0.0.1:9431", "--snapshot", file}));
  ASSERT_EQ(manager.next(), "READY=1");
  s = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(s["max_sources"], 8192);
  EXPECT_EQ(s["idle_seconds"], 5);
  ok({"attach", "dut0"});
  serve.signal(SIGTERM);
  EXPECT_EQ(manager.next(), "STOPPING=1");
  const auto lines = json_lines(serve.wait().out);
  EXPECT_TRUE(has_event(lines, "snapshot_restored"));
  EXPECT_TRUE(has_event(lines, "config_applied"));
  EXPECT_EQ(rules()[0]["rate"], "5/s");

  // The 4096-source snapshot restored by hand into that state (8192
  // sources): it keeps its table, and says so.
  const Outcome into = lab_->xthrottle({"restore", saved});
  EXPECT_EQ(into.rc, 0) << into.err;
  EXPECT_NE(into.err.find("another source table"), std::string::npos) << into.err;
  EXPECT_EQ(lab_->xthrottle_json({"status", "--json"})["max_sources"], 8192);
}

// A snapshot serve cannot read at start (copied in by another user, mode
// 0600, and the unit's serve has no CAP_DAC_OVERRIDE) is moved aside, as a
// damaged one is: left in place, the first save wrote over it, and the
// bans and quotas it held were gone.
TEST_F(Snapshots, ASnapshotServeCannotReadIsKeptAside) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/day", "--burst", "1000"});
  const std::string file = dir_ + "/theirs.snap";
  ok({"save", file});
  const std::string saved = file_bytes(file);
  ASSERT_EQ(chown(file.c_str(), 65534, 65534), 0);
  ASSERT_EQ(chmod(file.c_str(), 0600), 0);
  reboot();
  std::vector<std::string> argv = {"ip", "netns", "exec", lab_->dut_ns(), "capsh",
                                   "--drop=cap_dac_override,cap_dac_read_search", "--", "-c",
                                   std::string("exec ") + XT_BIN + " --pin-dir " + lab_->pin_dir() +
                                       " serve --metrics 127.0.0.1:9431 --snapshot " + file + " --snapshot-every 1s"};
  {
    Background serve(argv);
    ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
    std::this_thread::sleep_for(1500ms);  // a save
    serve.signal(SIGTERM);
    const auto lines = json_lines(serve.wait().out);
    EXPECT_TRUE(has_event(lines, "snapshot_failed"));
  }
  std::string aside;
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    if (e.path().filename().string().starts_with("theirs.snap.unread-")) aside = e.path();
  ASSERT_FALSE(aside.empty()) << "the unreadable snapshot kept aside";
  EXPECT_EQ(file_bytes(aside), saved)
      << "what it held, untouched";
}

// Input a command refuses makes no state either, when there is none yet
// (after a reboot, nothing loaded): tens of MiB of kernel memory pinned,
// and `rule list` saying "no rules" where it said "no state". Each of
// these checked what it refuses only after making the state.
// While serve restores a snapshot at start, no scrape reads a rule's
// counters before they are back: the rules go in first, each counting from
// 0, and their saved counts are added once they are all in. (A scrape there
// read 0, and Prometheus took the next, the saved count again, for a reset
// followed by all of it: a rule's whole past as a spike.) Scrapes fail
// instead until the restore is done.
TEST_F(Snapshots, NoScrapeReadsACounterBeforeItIsRestored) {
  // 400 rules, every 50th with traffic: whatever order they are restored
  // in, some go in long before the counters are added.
  std::string text;
  for (int i = 0; i < 400; i++)
    text += "[[rule]]\ncidr = \"10." + std::to_string(i / 256) + "." + std::to_string(i % 256) +
            ".0/24\"\nrate = \"1000/s\"\n";
  ok({"apply", write("many.toml", text)});
  std::vector<std::string> busy;
  for (int i = 0; i < 400; i += 50) {
    const std::string net = "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".";
    flood_from(net + "9", 30);
    busy.push_back("xthrottle_packets_total{action=\"passed\",rule=\"" + net + "0/24\"} ");
  }
  const std::string file = dir_ + "/many.snap";
  ok({"save", file});
  reboot();

  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
  std::vector<std::string> wrong;  // a busy rule's series with another value than its 30
  size_t scrapes = 0, complete = 0;
  for (int i = 0; i < 600 && !complete; i++) {
    const Outcome r = lab_->in_dut({"curl", "-s", "-f", "--max-time", "3", "http://127.0.0.1:9431/metrics"});
    if (r.rc != 0) continue;
    scrapes++;
    size_t right = 0;
    for (const std::string& series : busy)
      if (const size_t at = r.out.find(series); at != std::string::npos) {
        const std::string v = r.out.substr(at + series.size(), r.out.find('\n', at) - at - series.size());
        if (v == "30")
          right++;
        else
          wrong.push_back(series + v);
      }
    complete = right == busy.size();
  }
  serve.signal(SIGTERM);
  const auto lines = json_lines(serve.wait().out);
  ASSERT_TRUE(has_event(lines, "snapshot_restored"));
  EXPECT_TRUE(complete) << "the counters never came back";
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " series read before their counters were back, the first: "
                             << wrong.front();
  std::printf("[ measure  ] %zu scrapes answered, the last with every counter back\n", scrapes);
}

// The same by hand: a `restore` cut short (Ctrl-C while its rules go in)
// and run again found rules in the state, so it added none of the
// counters, nor topped them up (the state is not the one saved): `stats`
// lost the rule's and every reason's history. It marks its restore as
// serve does, and the next run resumes into the part.
TEST_F(Snapshots, AHandRestoreCutShortIsResumedByTheNext) {
  const std::string file = dir_ + "/hand.snap";
  // Read before the save: a stray packet read after it, and so not in the
  // snapshot, failed the comparison below once in a CI run.
  const json saved = save_with_900_used(file);
  reboot();
  // What the cut restore had put in: the rule, without its counters, and
  // its marker (written before its first change).
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/day", "--burst", "1000"});
  const std::string state = lab_->xthrottle_json({"status", "--json"})["state_id"];
  std::ofstream(file + ".restoring") << "state " << state << "\n";
  const json restored = lab_->xthrottle_json({"restore", file, "--json"});
  EXPECT_EQ(restored.value("resumed", false), true) << restored.dump();
  EXPECT_FALSE(std::filesystem::exists(file + ".restoring")) << "the marker goes once the restore is done";
  const json now = lab_->xthrottle_json({"stats", "--json"});
  EXPECT_EQ(now["rules"]["198.18.0.0/15"]["passed_packets"], 900) << "the rule's count, topped up once";
  EXPECT_EQ(now["reasons"]["within_limit"], saved["reasons"]["within_limit"]) << "topped up once";
  for (const auto& [reason, count] : saved["reasons"].items())  // and what came since (a stray packet of the lab's)
    EXPECT_GE(now["reasons"][reason]["packets"].get<uint64_t>(), count["packets"].get<uint64_t>()) << reason;
  lab_->reset_received();
  flood_from("198.18.0.9", 200);
  EXPECT_EQ(lab_->received_v4(), 100u) << "900 of the day's 1000 used before the reboot: 100 left";
}

// A rule that sends its drops out an interface serve's restore comes
// before (a reboot, the unit ordered after network.target only, the
// interface made later). The restore refused the whole snapshot for it, and
// serve put it aside: every ban and quota gone. The rule goes in and drops
// those packets meanwhile, status says so, and adding it again once the
// interface is there sends them out.
TEST_F(Snapshots, ARuleWhoseInterfaceIsNotMadeYetCostsNothingElseOfTheSnapshot) {
  lab_->add_scrubber();
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--over", "redirect:scrub0"});
  ok({"ban", "add", "198.19.9.0/24", "--for", "1h"});
  const std::string file = dir_ + "/redirect.snap";
  ok({"save", file});
  // Not made yet: under another name until it is.
  const auto made = [&](bool yes) {
    const std::string from = yes ? "scrub0-later" : "scrub0", to = yes ? "scrub0" : "scrub0-later";
    ASSERT_EQ(lab_->in_dut({"ip", "link", "set", from, "down"}).rc, 0);
    ASSERT_EQ(lab_->in_dut({"ip", "link", "set", from, "name", to}).rc, 0);
    ASSERT_EQ(lab_->in_dut({"ip", "link", "set", to, "up"}).rc, 0);
  };
  reboot();
  made(false);
  {
    NotifySocket manager(dir_ + "/notify.sock");
    Background serve(notifying(dir_ + "/notify.sock", {"serve", "--metrics", "127.0.0.1:9431", "--snapshot", file}));
    ASSERT_EQ(manager.next(), "READY=1");
    serve.signal(SIGTERM);
    const auto lines = json_lines(serve.wait().out);
    ASSERT_TRUE(has_event(lines, "snapshot_restored"));
    const auto restored = std::ranges::find_if(lines, [](const json& j) { return j.value("event", "") == "snapshot_restored"; });
    ASSERT_TRUE(restored->contains("redirects_waiting")) << restored->dump();
    EXPECT_EQ((*restored)["redirects_waiting"][0]["interface"], "scrub0");
  }
  for (const auto& f : std::filesystem::directory_iterator(dir_))
    EXPECT_EQ(f.path().filename().string().find("redirect.snap."), std::string::npos) << f.path() << ": put aside";
  const json bans = lab_->xthrottle_json({"bans", "--json"});
  ASSERT_EQ(bans.size(), 1u) << "the ban came back";
  EXPECT_EQ(bans[0]["cidr"], "198.19.9.0/24");
  ASSERT_EQ(rules().size(), 1u);
  const Outcome status = lab_->xthrottle({"status"});
  EXPECT_NE(status.out.find("sends its drops out scrub0"), std::string::npos) << status.out;

  made(true);
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--over", "redirect:scrub0"});
  const Outcome later = lab_->xthrottle({"status"});
  EXPECT_EQ(later.out.find("sends its drops out scrub0"), std::string::npos) << later.out;

  // By hand, the same: restored, with the rule named.
  reboot();
  made(false);
  const Outcome hand = lab_->xthrottle({"restore", file});
  EXPECT_EQ(hand.rc, 0) << hand.err;
  EXPECT_NE(hand.out.find("drops what it would send out scrub0"), std::string::npos) << hand.out;
  EXPECT_EQ(lab_->xthrottle_json({"bans", "--json"}).size(), 1u);

  // But not over a live rule whose drops go out an interface that is
  // there: the restore would give that redirect up for drops. Refused,
  // exit 1, nothing changed.
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--over", "redirect:scrub0-later"});
  const json before = rules();
  const Outcome over = lab_->xthrottle({"restore", file});
  EXPECT_EQ(over.rc, 1) << over.err;
  EXPECT_NE(over.err.find("send its drops out scrub0, which this network namespace does not have"), std::string::npos)
      << over.err;
  EXPECT_EQ(rules(), before) << "the live redirect kept";
  EXPECT_FALSE(std::filesystem::exists(file + ".restoring")) << "a refused restore is nothing to resume";
  // Over a live rule that only drops, nothing is given up: it goes in.
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  const json plain = lab_->xthrottle_json({"restore", file, "--json"});
  ASSERT_TRUE(plain.contains("redirects_waiting")) << plain.dump();
  EXPECT_EQ(plain["redirects_waiting"][0]["interface"], "scrub0");
  EXPECT_FALSE(plain.value("resumed", false)) << "the refusal before left no marker";
}

// A blocklist the data path has no room for beside the live lists (as a
// snapshot of a build that took more has: ABI 22 held 4M addresses of /24s
// listed in part, 23 holds 1M) is left out and said, and the rest of the
// snapshot comes back. The restore stopped at it, the rules in and the
// bans, buckets and known sources not, exit 2. (Lists of 10.0.0.0/8: no
// traffic goes to them.)
TEST_F(Snapshots, ABlocklistThatNoLongerFitsCostsNothingElseOfTheSnapshot) {
  const auto slash25s = [&](const std::string& name, uint32_t first, uint32_t count) {
    std::string text;
    for (uint32_t i = first; i < first + count; i++)
      text += "10." + std::to_string(i >> 9 & 255) + "." + std::to_string(i >> 1 & 255) + "." +
              std::to_string((i & 1) * 128) + "/25\n";
    return write(name + ".txt", text);
  };
  const uint32_t half = XT_MAX_BLOCK_HOSTS / 128 / 2;  // /25s: half the room
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  ok({"ban", "add", "198.19.9.0/24", "--for", "1h"});
  ok({"blocklist", "load", "a", slash25s("a", 0, half + 1)});
  const std::string file = dir_ + "/lists.snap";
  ok({"save", file});

  reboot();
  ok({"blocklist", "load", "b", slash25s("b", half + 1, half)});  // a alone fits; not beside b
  const Outcome r = lab_->xthrottle({"restore", file});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("blocklist a left out"), std::string::npos) << r.out;
  EXPECT_EQ(rules().size(), 1u);
  EXPECT_EQ(lab_->xthrottle_json({"bans", "--json"}).size(), 1u) << "the restore went on past the list";
  const json lists = lab_->xthrottle_json({"blocklist", "list", "--json"});
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0]["name"], "b");
  EXPECT_FALSE(std::filesystem::exists(file + ".restoring"));
}

TEST_F(Snapshots, WhatIsRefusedMakesNoState) {
  lab_->add_scrubber();
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--over", "redirect:scrub0"});
  const std::string file = dir_ + "/redirect.snap";
  ok({"save", file});
  wipe();
  ASSERT_EQ(lab_->in_dut({"ip", "link", "del", "scrub0"}).rc, 0);
  auto no_state = [&](const std::string& what) {
    EXPECT_EQ(lab_->xthrottle({"rule", "list"}).rc, 1) << what << " made the state";
  };
  no_state("wipe");

  const std::string bad = write("combo.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\naction = \"allow\"\nrate = \"1/s\"\n");
  const Outcome serve = lab_->xthrottle({"serve", "--config", bad, "--metrics", "127.0.0.1:9431", "--snapshot", file});
  EXPECT_EQ(serve.rc, 2) << serve.err;
  EXPECT_NE(serve.err.find(bad + ":1: --allow takes no"), std::string::npos) << serve.err;
  no_state("serve with a rules file that does not compile");
  EXPECT_TRUE(std::filesystem::exists(file)) << "the snapshot left where it was";

  const std::string gone = write("gone.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"1/s\"\nover = \"redirect:scrub0\"\n");
  const Outcome apply = lab_->xthrottle({"apply", gone});
  EXPECT_EQ(apply.rc, 1) << apply.err;
  EXPECT_NE(apply.err.find(gone + ":1: cannot send the drops"), std::string::npos) << apply.err;
  no_state("apply of a rule whose interface is missing");

  const Outcome add = lab_->xthrottle({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--over", "redirect:scrub0"});
  EXPECT_EQ(add.rc, 1) << add.err;
  no_state("rule add of a rule whose interface is missing");

  const std::string list = write("list.txt", "198.18.1.0/24\n"), all = write("all.txt", "0.0.0.0/0\n");
  EXPECT_EQ(lab_->xthrottle({"blocklist", "load", "bad name", list}).rc, 2);
  no_state("a blocklist of a bad name");
  const Outcome every = lab_->xthrottle({"blocklist", "load", "all", all});
  EXPECT_EQ(every.rc, 2);
  EXPECT_NE(every.err.find("every source of its family"), std::string::npos) << every.err;
  no_state("a blocklist of every address");
  const std::string lists = write("lists.toml", "[[blocklist]]\nname = \"all\"\nfile = \"" + all + "\"\n");
  const Outcome applied = lab_->xthrottle({"apply", lists});
  EXPECT_EQ(applied.rc, 2) << applied.err;
  EXPECT_NE(applied.err.find(lists + ":1: blocklist all lists 0.0.0.0/0"), std::string::npos) << applied.err;
  no_state("apply of a rules file whose blocklist is every address");

  // Two lists that fit on their own and not together (4700 /25s each,
  // 601,600 addresses): refused only as they loaded, the state made.
  auto halves = [](int first_octet) {
    std::string text;
    for (int i = 0; i < 4700; i++)
      text += std::to_string(first_octet) + "." + std::to_string(i >> 9) + "." + std::to_string((i >> 1) & 255) + "." +
              std::to_string((i & 1) * 128) + "/25\n";
    return text;
  };
  const std::string a = write("half-a.txt", halves(10)), b = write("half-b.txt", halves(11));
  const std::string both = write("both.toml", "[[blocklist]]\nname = \"a\"\nfile = \"" + a +
                                                  "\"\n\n[[blocklist]]\nname = \"b\"\nfile = \"" + b + "\"\n");
  const Outcome together = lab_->xthrottle({"apply", both});
  EXPECT_EQ(together.rc, 2) << together.err;
  EXPECT_NE(together.err.find(both + ":5: the union of the file's blocklists holds 1203200 IPv4 addresses"),
            std::string::npos)
      << together.err;
  no_state("apply of two blocklists that fit only apart");
}

}  // namespace
}  // namespace xt::test
