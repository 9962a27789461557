// SPDX-License-Identifier: MIT
// The daemon and its readers under conditions the review (issue 9) found
// them failing in: slow HTTP clients, a real Prometheus parser, a second
// reader of an event ring, events that piled up before serve started, a
// config path that is not UTF-8, missing privileges, and config drift.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <xthrottle/abi.h>

#include "operate_test.h"

namespace xt::test {
namespace {

const char* kRules = R"([[rule]]
cidr = "198.18.0.0/15"
rate = "1000/s"
)";

class Serve : public Operate {
 protected:
  // Until a reader holds the lock of `ring` (a probe that gets it lets it
  // go at once), for up to 10 s.
  bool reader_holds(const std::string& ring) {
    const std::string path = lab_->pin_dir() + "/" + ring + "_lock";
    for (int i = 0; i < 500; i++) {
      const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd >= 0) {
        const bool held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        close(fd);  // a lock the probe took goes with its fd
        if (held) return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  std::string script(const std::string& name) { return std::string(XT_E2E_SCRIPTS) + "/" + name; }
  Outcome scrape(const std::string& port = "9431", const std::string& max_time = "3") {
    return lab_->in_dut({"curl", "-s", "-f", "--max-time", max_time, "http://127.0.0.1:" + port + "/metrics"});
  }
  double value(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + series.size() + 2));
  }
};

// 9.9: forty connections trickling a request a byte at a time held every
// worker of the old endpoint, and every scrape timed out. A byte every half
// second keeps a connection under any idle timeout, and 300 of them are more
// than the endpoint serves at once.
TEST_F(Serve, SlowClientsDoNotStallTheMetrics) {
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  Background trickle({"ip", "netns", "exec", lab_->dut_ns(), "/usr/bin/python3", script("slow_clients.py"),
                      "127.0.0.1", "9431", "127.0.0.2", "300", "0.5", "8"});
  Background slower({"ip", "netns", "exec", lab_->dut_ns(), "/usr/bin/python3", script("slow_clients.py"),
                     "127.0.0.1", "9431", "127.0.0.3", "20", "3", "8"});
  std::this_thread::sleep_for(1s);
  for (int i = 0; i < 5; i++) {
    const auto t0 = std::chrono::steady_clock::now();
    Outcome r = scrape();
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Answered at all: curl gives up after 3 s (a stalled endpoint never
    // answered); how long it took is printed, not asserted.
    EXPECT_EQ(r.rc, 0) << "scrape " << i << " failed while 320 slow clients were connected";
    std::printf("[ measure  ] scrape %d answered in %.3f s\n", i, took);
    std::this_thread::sleep_for(1s);
  }
  Outcome one = trickle.wait(), three = slower.wait();
  std::printf("[ measure  ] still connected at the end: %s of 300 trickling a byte every 0.5 s, %s of 20 every 3 s\n",
              one.out.substr(0, one.out.find('\n')).c_str(), three.out.substr(0, three.out.find('\n')).c_str());
  EXPECT_EQ(std::stoi(one.out), 0) << "a request still trickling in 3 s after connecting is cut off";
  EXPECT_EQ(std::stoi(three.out), 0) << "a connection idle for 2 s is closed";
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait().rc, 0);
}

// 9.10: two families' samples were interleaved; promtool accepted it, the
// Python client split it into extra families. Every family must come out of
// a real parser once, with all its samples.
TEST_F(Serve, TheMetricsParseWithTheReferenceParser) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/s"});
  ok({"rule", "add", "2001:db8::/32", "--rate", "1000/s", "--dry-run"});
  ok({"rule", "add", "198.18.7.0/24", "--deny"});
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  Outcome text = scrape();
  ASSERT_EQ(text.rc, 0);
  const std::string file = dir_ + "/metrics.txt";
  std::ofstream(file) << text.out;
  Outcome parsed = run({"sh", "-c", "/usr/bin/python3 " + script("parse_metrics.py") + " < " + file});
  ASSERT_EQ(parsed.rc, 0) << parsed.err;
  const json families = json::parse(parsed.out);
  std::map<std::string, int> seen;
  std::map<std::string, size_t> samples;
  for (const auto& f : families) {
    seen[f["name"]]++;
    samples[f["name"]] = f["samples"];
  }
  for (const auto& [name, times] : seen) EXPECT_EQ(times, 1) << name << " came out as " << times << " families";
  for (const char* name : {"xthrottle_up", "xthrottle_protected", "xthrottle_config_drift", "xthrottle_packets",
                           "xthrottle_bytes", "xthrottle_reason_packets", "xthrottle_new_source_saturated",
                           "xthrottle_sources_evicted", "xthrottle_sources_evicted_active", "xthrottle_info"})
    EXPECT_EQ(seen[name], 1) << name << " is missing";
  EXPECT_EQ(samples["xthrottle_dry_run_packets"], 3u) << "one per rule (the client drops _total)";
  EXPECT_EQ(samples["xthrottle_new_source_dropped_packets"], 3u);
  // Which rules are in dry-run, so that an alert on saturation or drops can
  // leave them out (their counts are what they would do).
  EXPECT_EQ(samples["xthrottle_rule_dry_run"], 3u);
  EXPECT_NE(text.out.find("xthrottle_rule_dry_run{rule=\"2001:db8::/32\"} 1\n"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("xthrottle_rule_dry_run{rule=\"198.18.0.0/15\"} 0\n"), std::string::npos) << text.out;
  EXPECT_EQ(samples["xthrottle_packets"], 8u) << "passed and dropped, three rules and none";
  EXPECT_EQ(samples["xthrottle_config_drift"], 2u);
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait().rc, 0);
}

// A state made anew under a running serve (detach, its pins removed,
// attach again: how a table is resized): serve kept the old maps, read the
// old event ring and cleared the old table's ended bans, while its scrapes
// and saves, which open the pins each time, looked healthy. It now stops
// (exit 1, which systemd restarts) without saving the new state over its
// snapshot, and the fresh serve restores the snapshot into the new table.
TEST_F(Serve, StopsForAFreshServeWhenItsStateIsMadeAnew) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  ok({"rule", "add", "198.18.7.0/24", "--deny"});
  const std::string snap = dir_ + "/state.snap";
  ok({"save", snap});
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", snap}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  ok({"detach", "dut0"});
  for (const auto& e : std::filesystem::directory_iterator(lab_->pin_dir())) std::filesystem::remove_all(e.path());
  ok({"attach", "dut0", "--max-sources", "8192"});
  std::this_thread::sleep_for(7s);  // serve looks every 5 s
  serve.signal(SIGTERM);            // a serve still running (before) stops here, and saves
  Outcome out = serve.wait();
  EXPECT_EQ(out.rc, 1) << out.out << out.err;
  bool made_anew = false, saved = false;
  for (const json& line : json_lines(out.out)) {
    made_anew |= line["event"] == "state_made_anew";
    saved |= line["event"] == "snapshot_saved";
  }
  EXPECT_TRUE(made_anew) << out.out;
  EXPECT_FALSE(saved) << "the new, empty state is not saved over the snapshot: " << out.out;
  // What systemd does next: a fresh serve, which restores into the new table.
  Background fresh(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", snap}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  size_t restored = 0;  // the restore runs beside the first scrapes, which fail until it is done
  for (int i = 0; i < 100 && (restored = rules().size()) < 2; i++) std::this_thread::sleep_for(100ms);
  const json status = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(restored, 2u) << "the snapshot's rules, in the resized table";
  EXPECT_EQ(status["max_sources"], 8192);
  // Made anew again, and serve stopped at once, before it looked: its stop
  // saved the new, empty state over the snapshot, and the next serve took
  // the snapshot for that state's own and restored nothing.
  ok({"detach", "dut0"});
  for (const auto& e : std::filesystem::directory_iterator(lab_->pin_dir())) std::filesystem::remove_all(e.path());
  ok({"attach", "dut0", "--max-sources", "4096"});
  const std::string before = file_bytes(snap);
  fresh.signal(SIGTERM);
  Outcome second = fresh.wait();
  EXPECT_EQ(second.rc, 1) << second.out << second.err;
  made_anew = saved = false;
  for (const json& line : json_lines(second.out)) {
    made_anew |= line["event"] == "state_made_anew";
    saved |= line["event"] == "snapshot_saved";
  }
  EXPECT_TRUE(made_anew) << second.out;
  EXPECT_FALSE(saved) << "the new, empty state is not saved over the snapshot at a stop: " << second.out;
  EXPECT_TRUE(file_bytes(snap) == before) << "the snapshot is as it was";
}

// A state made anew (or by an attach after a reboot) counts its traffic
// from 0 until serve has read its snapshot and restored the counters. Only
// a restore cut short held the scrapes back during the read: a scrape then
// reported the new state's counts, and the restore added the snapshot's to
// them, which Prometheus took for a reset and counted twice. The snapshot
// here is a FIFO, so that serve waits in its read for as long as the test
// wants (a snapshot of tens of millions of sources takes a minute).
TEST_F(Serve, NoScrapeAnswersWhileTheSnapshotIsReadForAnEmptyState) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  ASSERT_EQ(flood_from("198.18.9.9", 50).sent, 50u);
  const std::string saved = dir_ + "/saved.snap", fifo = dir_ + "/state.snap";
  ok({"save", saved});
  ok({"detach", "dut0"});
  for (const auto& e : std::filesystem::directory_iterator(lab_->pin_dir())) std::filesystem::remove_all(e.path());
  ok({"attach", "dut0"});
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", fifo}));
  ASSERT_TRUE(serve.wait_for_out([](const std::string& out) { return out.find("\"started\"") != std::string::npos; }));
  auto code = [&] {
    return lab_->in_dut({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                         "http://127.0.0.1:9431/metrics"}).out;
  };
  EXPECT_EQ(code(), "500") << "a scrape while the snapshot is read into an empty state";
  {
    std::ofstream(fifo) << file_bytes(saved);  // the restore goes on
  }
  size_t restored = 0;
  for (int i = 0; i < 100 && (restored = rules().size()) < 1; i++) std::this_thread::sleep_for(100ms);
  ASSERT_EQ(restored, 1u);
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  EXPECT_GE(value(scrape().out, "xthrottle_packets_total{action=\"passed\",rule=\"198.18.0.0/15\"}"), 50.0)
      << "the snapshot's counters, once the scrapes answer";
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait().rc, 0);
}

// A scrape is GET or HEAD; anything else is a 405, which must name the
// methods that are (RFC 9110 15.5.6: "MUST generate an Allow header").
// It came without one. HEAD gets GET's headers and no body.
TEST_F(Serve, AnotherMethodIsToldWhichAreAllowed) {
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  const std::string url = "http://127.0.0.1:9431/metrics";
  Outcome post = lab_->in_dut({"curl", "-s", "-i", "--max-time", "3", "-X", "POST", url});
  ASSERT_EQ(post.rc, 0) << post.err;
  EXPECT_EQ(post.out.rfind("HTTP/1.1 405", 0), 0u) << post.out;
  EXPECT_NE(post.out.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << post.out;
  Outcome head = lab_->in_dut({"curl", "-s", "-I", "--max-time", "3", url});
  ASSERT_EQ(head.rc, 0) << head.err;
  EXPECT_EQ(head.out.rfind("HTTP/1.1 200", 0), 0u) << head.out;
  EXPECT_NE(head.out.find("text/plain; version=0.0.4"), std::string::npos) << head.out;
  EXPECT_EQ(head.out.find("xthrottle_up"), std::string::npos) << "HEAD has no body";
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait().rc, 0);
}

// 9.11: a second reader of an event ring split the events with the first.
TEST_F(Serve, EachEventRingHasOneReader) {
  Background first(lab_->xthrottle_argv({"events", "--json"}));
  ASSERT_TRUE(reader_holds(XT_MAP_EVENTS_CLI)) << "the first reader never took the ring";
  std::vector<std::string> argv = {"timeout", "5"};  // a second reader that is let in would run on
  for (const auto& word : lab_->xthrottle_argv({"events", "--json"})) argv.push_back(word);
  Outcome second = run(argv);
  EXPECT_EQ(second.rc, 1) << "a second reader was let in";
  EXPECT_NE(second.err.find("already reads the events"), std::string::npos) << second.err;
  first.signal(SIGINT);
  EXPECT_EQ(first.wait().rc, 0);
  Background again(lab_->xthrottle_argv({"events", "--json"}));
  EXPECT_TRUE(reader_holds(XT_MAP_EVENTS_CLI)) << "the ring is free again once its reader has gone";
  again.signal(SIGINT);
  EXPECT_EQ(again.wait().rc, 0) << "the ring is free again once its reader has gone";

  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  argv = {"timeout", "5"};
  for (const auto& word : lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9432"})) argv.push_back(word);
  Outcome other = run(argv);
  EXPECT_EQ(other.rc, 1);
  EXPECT_NE(other.err.find("`xthrottle serve` already reads the events"), std::string::npos) << other.err;
  // A SIGHUP without --config is refused, and said so with the time, as
  // every line of serve's log is (it had none).
  std::this_thread::sleep_for(300ms);
  serve.signal(SIGHUP);
  std::this_thread::sleep_for(1500ms);
  serve.signal(SIGTERM);
  const Outcome done = serve.wait();
  EXPECT_EQ(done.rc, 0);
  const auto lines = json_lines(done.out);
  EXPECT_TRUE(has_event(lines, "config_rejected")) << done.out;
  for (const json& j : lines) EXPECT_TRUE(j.contains("unix_time")) << j.dump();
}

// serve's log read by a process that went away (a pipe whose reader
// exited, a journal restarted) does not kill it: SIGPIPE used to, before
// its stop-time snapshot, unless it ran with --cluster.
TEST_F(Serve, ALogReaderThatGoesAwayDoesNotKillIt) {
  const std::string snap = dir_ + "/pipe.snap";
  std::string command;
  for (const auto& word :
       lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--snapshot", snap, "--snapshot-every", "1s"}))
    command += "'" + word + "' ";
  // The reader takes one line and exits; serve logs a save every second.
  // Four seconds of saves, then up to four more for a scrape to answer
  // (it runs beside other tests): a serve the SIGPIPE killed answers none.
  const std::string script = command + "> >(head -n 1 > /dev/null) & serve=$!; sleep 4; "
                             "for i in $(seq 20); do ip netns exec " + lab_->dut_ns() +
                             " curl -s -f -o /dev/null http://127.0.0.1:9431/metrics; up=$?; "
                             "[ $up = 0 ] && break; sleep 0.2; done; "
                             "kill -TERM $serve; wait $serve; echo \"up=$up rc=$?\"";
  const Outcome r = run({"timeout", "20", "bash", "-c", script});
  EXPECT_NE(r.out.find("up=0 rc=0"), std::string::npos) << "serve died with its log's reader: " << r.out << r.err;
}

// 9.13: serve printed events that piled up long before it started as if
// they were new, and config_applied before started.
TEST_F(Serve, StartsFirstAndMarksEventsFromBeforeIt) {
  ok({"rule", "add", "198.19.0.0/16", "--rate", "1/s", "--burst", "1", "--new-rate", "1000000/s"});
  lab_->flood({"--src", "198.19.0.0", "--sources", "20", "--count", "40"});  // 20 throttled sources, no serve
  std::this_thread::sleep_for(1s);
  const std::string path = write("rules.toml", std::string(kRules) +
                                                   "\n[[rule]]\ncidr = \"198.19.0.0/16\"\nrate = \"1/s\"\nburst = 1\n"
                                                   "new_rate = \"1000000/s\"\n");
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--config", path}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  std::this_thread::sleep_for(500ms);
  lab_->flood({"--src", "198.19.1.0", "--sources", "5", "--count", "10"});  // 5 more, with serve running
  // Until serve has logged the 25 (or 10 s: the count below tells).
  serve.wait_for_out([](const std::string& out) {
    size_t throttled = 0;  // of the whole lines written so far
    for (size_t at = 0, end; (end = out.find('\n', at)) != std::string::npos; at = end + 1) {
      const json j = json::parse(out.substr(at, end - at), nullptr, false);
      throttled += !j.is_discarded() && j.value("event", "") == "throttled";
    }
    return throttled >= 25;
  });
  serve.signal(SIGTERM);
  Outcome r = serve.wait();
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::vector<json> log = json_lines(r.out);
  ASSERT_GE(log.size(), 3u);
  EXPECT_EQ(log[0]["event"], "started");
  EXPECT_EQ(log[1]["event"], "config_applied");
  size_t old = 0, fresh = 0;
  for (const auto& j : log) {
    if (j["event"] != "throttled") continue;
    const bool backlog = j.value("backlog", false);
    (backlog ? old : fresh)++;
    const std::string source = j["source"];
    EXPECT_EQ(backlog, source.starts_with("198.19.0.")) << source << ": marked wrong";
  }
  EXPECT_EQ(old, 20u) << "the events from before serve started, marked as such";
  EXPECT_EQ(fresh, 5u);
}

// 9.7: a config path that is not UTF-8 made JSON output abort (status exit
// 134; serve applied its config, then aborted, again and again under
// systemd), and a long path was cut at 223 bytes.
TEST_F(Serve, AConfigPathThatIsNotUtf8OrShortIsFine) {
  const std::string odd = dir_ + "/caf\xe9-" + std::string(230, 'x');  // Latin-1 e-acute, and long
  std::filesystem::create_directories(odd);
  const std::string path = odd + "/rules.toml";
  std::ofstream(path) << kRules;
  ok({"apply", path});
  Outcome status = lab_->xthrottle({"status", "--json"});
  ASSERT_EQ(status.rc, 0) << status.err;
  const json s = json::parse(status.out);  // valid JSON
  const std::string shown = s["config"]["path"];
  EXPECT_GT(shown.size(), 250u) << "the whole path, not its first 223 bytes";
  EXPECT_NE(shown.find("caf\xef\xbf\xbd-"), std::string::npos) << "the bad byte shown as U+FFFD";
  EXPECT_EQ(s["config"]["changed_since"], false) << "the path read back is the path applied";

  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--config", path}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics")) << "serve died";
  serve.signal(SIGTERM);
  Outcome r = serve.wait();
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has_event(json_lines(r.out), "config_applied")) << r.out;

  Outcome too_long = lab_->xthrottle({"apply", "/" + std::string(4100, 'y') + "/rules.toml"});
  EXPECT_EQ(too_long.rc, 2);
}

// A --record-max below the least was refused when the record opened, after
// the config was applied (and the state made for it): exit 2 with the
// rules live.
TEST_F(Serve, ARefusedRecordSizeChangesNothing) {
  const std::string path = write("rules.toml", kRules);
  const json before = rules();
  std::vector<std::string> argv = {"timeout", "20"};
  for (const auto& a : lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9434", "--config", path, "--record",
                                             dir_ + "/record", "--record-max", "4096"}))
    argv.push_back(a);
  const Outcome r = run(argv);
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("--record-max"), std::string::npos) << r.err;
  EXPECT_EQ(rules(), before) << "the config was applied before the refusal";
}

// A record serve cannot write (here a directory; a read-only path, another
// serve's record) was refused when the record opened, after the snapshot
// was restored and the config applied: exit 1 with the rules live, and a
// restart (Restart=on-failure) then found the state not made anew and put
// the snapshot aside. It is opened first now: exit 1, nothing changed.
TEST_F(Serve, ARecordItCannotWriteChangesNothing) {
  const std::string path = write("rules.toml", kRules);
  const json before = rules();
  const std::string snapshot = dir_ + "/state.snap", record = dir_ + "/record-dir";
  ok({"save", snapshot});
  std::filesystem::create_directory(record);
  std::vector<std::string> argv = {"timeout", "20"};
  for (const auto& a : lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9434", "--config", path, "--snapshot",
                                             snapshot, "--record", record}))
    argv.push_back(a);
  const Outcome r = run(argv);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("a directory"), std::string::npos) << r.err;
  EXPECT_EQ(rules(), before) << "the config was applied before the refusal";
  EXPECT_TRUE(std::filesystem::exists(snapshot)) << "the snapshot left where it was";
}

// 9.8: serve said "needs root" with exit 2, where every command exits 1.
TEST_F(Serve, WithoutPrivilegeItExitsOneLikeEveryCommand) {
  const std::string path = write("rules.toml", kRules);
  for (const auto& args : {std::vector<std::string>{"serve", "--metrics", "127.0.0.1:9433", "--config", path},
                           std::vector<std::string>{"serve", "--metrics", "127.0.0.1:9433"}}) {
    std::vector<std::string> argv = {XT_BIN, "--pin-dir", lab_->pin_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    Outcome r = as_nobody(argv);
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_NE(r.err.find("root"), std::string::npos) << r.err;
  }
}

// 9.14: editing the config on disk made xthrottle_protected 0 while every
// rule was live. Drift has its own metric and warning; protection stays.
TEST_F(Serve, ConfigDriftIsNotAProtectionProblem) {
  const std::string path = write("rules.toml", kRules);
  ok({"apply", path});
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  Outcome before = scrape();
  EXPECT_EQ(value(before.out, "xthrottle_protected"), 1.0);
  EXPECT_EQ(value(before.out, "xthrottle_config_drift{kind=\"file_changed\"}"), 0.0);
  write("rules.toml", std::string(kRules) + "# edited\n");
  Outcome after = scrape();
  EXPECT_EQ(value(after.out, "xthrottle_protected"), 1.0) << "every rule is live";
  EXPECT_EQ(value(after.out, "xthrottle_config_drift{kind=\"file_changed\"}"), 1.0);
  EXPECT_EQ(value(after.out, "xthrottle_warnings"), 0.0);
  Outcome check = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(check.rc, 4);
  EXPECT_NE(check.out.find("WARNING (config)"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("\nprotected\n"), std::string::npos) << check.out;
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait().rc, 0);
}

}  // namespace
}  // namespace xt::test
