// SPDX-License-Identifier: MIT
// Operating it for months, end to end in a namespace lab: config files
// (apply, SIGHUP, bad files), `serve` scraped by a real Prometheus, events,
// upgrading the program under traffic, and refusing pins of another ABI.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <xthrottle/abi.h>

#include "operate_test.h"

namespace xt::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const char* kFileA = R"(# the rules of host A
[[rule]]
cidr = "198.18.0.0/15"
rate = "1000/s"

[[rule]]
cidr = "198.18.200.0/24"
action = "allow"

[[rule]]
cidr = "2001:db8::/32"
rate = "500/s"
new_rate = "100/s"
)";

const char* kFileB = R"([[rule]]
cidr = "198.18.0.0/15"
rate = "2000/s"
burst = 4000

[[rule]]
cidr = "198.18.200.0/24"
action = "allow"

[[rule]]
cidr = "198.18.9.0/24"
action = "deny"
dry_run = true
)";

TEST_F(Operate, ApplyMakesTheLiveRulesEqualTheFile) {
  const std::string a = write("a.toml", kFileA), b = write("b.toml", kFileB);
  ok({"rule", "add", "198.18.7.0/24", "--deny"});  // not in the file: goes
  ok({"apply", a});
  json live = rules();
  ASSERT_EQ(live.size(), 3u);
  EXPECT_EQ(rule("198.18.0.0/15")["rate"], "1000/s");
  EXPECT_EQ(rule("2001:db8::/32")["new_rate"], "100/s");
  EXPECT_TRUE(rule("198.18.7.0/24").is_null());
  const json limit_before = rule("198.18.0.0/15"), allow_before = rule("198.18.200.0/24");

  // Traffic, so the limited rule has a bucket to keep.
  lab_->flood({"--src", "198.18.1.1", "--count", "5000"});

  const json dry = lab_->xthrottle_json({"apply", b, "--dry-run", "--json"});
  EXPECT_EQ(dry["add"].size(), 1u);
  EXPECT_EQ(dry["change"].size(), 1u);
  EXPECT_EQ(dry["remove"].size(), 1u);
  EXPECT_EQ(dry["unchanged"], 1);
  EXPECT_EQ(dry["applied"], false);
  EXPECT_EQ(rules(), live) << "--dry-run changed the rules";

  const json applied = lab_->xthrottle_json({"apply", b, "--json"});
  EXPECT_EQ(applied["applied"], true);
  live = rules();
  ASSERT_EQ(live.size(), 3u);
  EXPECT_EQ(rule("198.18.0.0/15")["rate"], "2000/s");
  EXPECT_EQ(rule("198.18.0.0/15")["burst"], 4000);
  EXPECT_EQ(rule("198.18.9.0/24")["action"], "deny");
  EXPECT_EQ(rule("198.18.9.0/24")["dry_run"], true);
  EXPECT_TRUE(rule("2001:db8::/32").is_null());
  EXPECT_EQ(rule("198.18.200.0/24"), allow_before) << "an unchanged rule is untouched";
  EXPECT_EQ(rule("198.18.0.0/15")["id"], limit_before["id"]) << "a changed rule is replaced in place";
  EXPECT_NE(rule("198.18.0.0/15")["generation"], limit_before["generation"]);
  EXPECT_EQ(lab_->xthrottle_json({"status", "--json"})["tracked_sources"], 1) << "its bucket was kept";

  const json again = lab_->xthrottle_json({"apply", b, "--json"});
  EXPECT_EQ(again["unchanged"], 3) << "applying the same file again changes nothing";
}

TEST_F(Operate, ABadFileChangesNothingAndSaysWhereAndWhy) {
  const std::string a = write("a.toml", kFileA);
  ok({"apply", a});
  const std::string before = lab_->xthrottle({"rule", "list", "--json"}).out;
  struct Case {
    const char* name;
    const char* text;
    const char* says;
  } cases[] = {
      {"syntax.toml", "[[rule]\ncidr = \"198.18.0.0/15\"\n", ":1:"},
      {"unit.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\n\n\nrate = \"10/fortnight\"\n", ":5: bad rate '10/fortnight'"},
      {"key.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\nrat = \"10/s\"\n", ":3: unknown key 'rat'"},
      {"cidr.toml", "[[rule]]\ncidr = \"198.18.0.1/15\"\nrate = \"1/s\"\n", ":2: bad CIDR"},
      {"type.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\nburst = \"many\"\nrate = \"1/s\"\n", ":3: burst must be"},
      {"dup.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"1/s\"\n[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"2/s\"\n",
       ":4: 198.18.0.0/15 already has a rule, at line 4"},
      {"combo.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\naction = \"allow\"\nrate = \"1/s\"\n", ":1: --allow takes no"},
      {"idle.toml", "[sources]\nidle = \"0\"\n", ":2: bad idle '0': between 1s and 3600s"},
      {"size.toml", "[sources]\nmax_sources = 12\n", ":2: bad max_sources 12: between 1024"},
      {"skey.toml", "[sources]\nmax = 4096\n", ":2: unknown key 'max' in [sources]"},
  };
  for (const auto& c : cases) {
    // A good rule first, so a partial application would show.
    const std::string path = write(c.name, std::string("[[rule]]\ncidr = \"198.18.100.0/24\"\nrate = \"5/s\"\n") + c.text);
    Outcome r = lab_->xthrottle({"apply", path});
    EXPECT_EQ(r.rc, 2) << c.name << ": " << r.err;
    // The good rule took three lines: the case's own lines are 3 further.
    std::string says = c.says;
    if (says.size() > 1 && says[0] == ':' && std::isdigit(static_cast<unsigned char>(says[1]))) {
      const int line = std::stoi(says.substr(1)) + 3;
      says = ":" + std::to_string(line) + says.substr(says.find(':', 1));
    }
    EXPECT_NE(r.err.find(path + says), std::string::npos) << c.name << ": expected '" << path + says << "' in\n" << r.err;
    EXPECT_EQ(lab_->xthrottle({"rule", "list", "--json"}).out, before) << c.name << " changed the rules";
  }
  Outcome missing = lab_->xthrottle({"apply", dir_ + "/none.toml"});
  EXPECT_EQ(missing.rc, 2);
  EXPECT_NE(missing.err.find("no such config file"), std::string::npos) << missing.err;
}

TEST_F(Operate, StatusShowsTheLiveConfigAndNoticesItChanged) {
  const std::string a = write("a.toml", kFileA);
  ok({"apply", a});
  json s = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(s["config"]["path"], a);
  EXPECT_EQ(s["config"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(s["config"]["changed_since"], false);
  EXPECT_EQ(s["config"]["rules_differ"], false);
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0);
  // A rule changed by hand: the file is as applied, the rules are not.
  ok({"rule", "add", "198.18.99.0/24", "--deny"});
  s = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(s["config"]["changed_since"], false);
  EXPECT_EQ(s["config"]["rules_differ"], true);
  Outcome drift = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(drift.rc, 4) << "protected, but drifted from the file";
  EXPECT_NE(drift.out.find("the live rules differ from"), std::string::npos) << drift.out;
  ok({"apply", a});
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0) << "applied again: in line";
  write("a.toml", kFileB);
  s = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(s["config"]["changed_since"], true);
  Outcome check = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(check.rc, 4);
  EXPECT_NE(check.out.find("changed since it was applied"), std::string::npos) << check.out;
  EXPECT_EQ(lab_->xthrottle_json({"status", "--json"})["protected"], true) << "drift is not a protection problem";
}

TEST_F(Operate, ServeAppliesItsConfigAtStartAndOnSighup) {
  const std::string path = write("live.toml", kFileA);
  NotifySocket manager(dir_ + "/notify.sock");
  Background serve(notifying(dir_ + "/notify.sock", {"serve", "--metrics", "127.0.0.1:9431", "--config", path}));
  ASSERT_EQ(manager.next(), "READY=1") << "serve never got ready";  // the config is in: the metrics answer before
  EXPECT_EQ(rule("198.18.0.0/15")["rate"], "1000/s");

  write("live.toml", kFileB);
  serve.signal(SIGHUP);
  bool applied = false;
  for (int i = 0; i < 50 && !applied; i++, std::this_thread::sleep_for(100ms))
    applied = rule("198.18.0.0/15")["rate"] == "2000/s";
  EXPECT_TRUE(applied) << "SIGHUP did not apply the changed file";
  EXPECT_TRUE(rule("2001:db8::/32").is_null());

  const std::string before = lab_->xthrottle({"rule", "list", "--json"}).out;
  write("live.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"0/s\"\n");
  serve.signal(SIGHUP);
  std::this_thread::sleep_for(700ms);

  serve.signal(SIGTERM);
  Outcome r = serve.wait();
  // Read once serve has stopped, its log saying it rejected the file (below):
  // the rules as the rejection left them, however late the SIGHUP was read.
  EXPECT_EQ(lab_->xthrottle({"rule", "list", "--json"}).out, before) << "a bad file changed the rules";
  EXPECT_EQ(r.rc, 0) << r.err;
  std::vector<json> log = json_lines(r.out);
  auto has = [&](const std::string& event, const std::string& why) {
    return std::ranges::any_of(log, [&](const json& j) { return j["event"] == event && j.value("why", "") == why; });
  };
  EXPECT_TRUE(has("config_applied", "start"));
  EXPECT_TRUE(has("config_applied", "SIGHUP"));
  EXPECT_TRUE(has("config_rejected", "SIGHUP"));
  const auto rejected = std::ranges::find_if(log, [](const json& j) { return j["event"] == "config_rejected"; });
  ASSERT_NE(rejected, log.end());
  EXPECT_NE(rejected->at("error").get<std::string>().find(path + ":3:"), std::string::npos) << rejected->dump();
  EXPECT_EQ(log.back()["event"], "stopped");
}

// SIGHUP reloads serve's config. It did nothing to the commands that only
// watch (`top --watch`, `stats --watch`, `events`, `capture`), so one left on a
// terminal that went away (an ssh session that dropped) walked the source
// table every interval for good. They stop, as on SIGINT.
TEST_F(Operate, AHangupStopsWhatOnlyWatches) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"top", "--watch", "0.2"}, {"stats", "--watch", "0.2"}, {"events"}, {"capture", "--for", "30s"}}) {
    Background watcher(lab_->xthrottle_argv(argv));
    std::this_thread::sleep_for(500ms);
    watcher.signal(SIGHUP);
    const auto start = std::chrono::steady_clock::now();
    watcher.wait_for_out([](const std::string&) { return false; }, 5);  // false at once once it ended
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(took, 3) << argv[0] << " went on after SIGHUP";
    if (took < 3) {
      EXPECT_EQ(watcher.wait().rc, 0) << argv[0];
    }
  }
  // Under nohup (SIGHUP ignored) it goes on, as nohup means.
  std::vector<std::string> argv = lab_->xthrottle_argv({"events"});
  argv.insert(argv.begin(), "nohup");
  Background kept(argv);
  std::this_thread::sleep_for(500ms);
  kept.signal(SIGHUP);
  const auto start = std::chrono::steady_clock::now();
  kept.wait_for_out([](const std::string&) { return false; }, 1);
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 0.9)
      << "events under nohup stopped on SIGHUP";
  kept.signal(SIGTERM);
  EXPECT_EQ(kept.wait().rc, 0);
}

// A real Prometheus (Debian's) scrapes serve during a flood; a PromQL query
// over its HTTP API gives back the dropped-packet rate the flood caused.
TEST_F(Operate, PrometheusSeesTheDropRateOfAFlood) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/s"});
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
  const std::string config = write("prometheus.yml",
                                   "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                   "scrape_configs:\n  - job_name: xthrottle\n    static_configs:\n"
                                   "      - targets: ['127.0.0.1:9431']\n");
  Background prometheus({"ip", "netns", "exec", lab_->dut_ns(), "prometheus", "--config.file=" + config,
                         "--storage.tsdb.path=" + dir_ + "/tsdb", "--web.listen-address=127.0.0.1:9090"});
  ASSERT_TRUE(http_ready("http://127.0.0.1:9090/-/ready")) << "prometheus did not start";
  // Ready is not scraping: wait until it has scraped serve, then a bit more.
  bool scraping = false;
  for (int i = 0; i < 150 && !scraping; i++, std::this_thread::sleep_for(100ms)) {
    Outcome up = lab_->in_dut({"curl", "-s", "-G", "http://127.0.0.1:9090/api/v1/query", "--data-urlencode",
                               "query=up{job=\"xthrottle\"} == 1"});
    scraping = up.rc == 0 && up.out.find("\"result\":[{") != std::string::npos;
  }
  ASSERT_TRUE(scraping) << "prometheus never scraped serve";
  std::this_thread::sleep_for(2s);

  // 20000/s against 1000/s for 8 s: 19000 drops a second.
  const Flood f = lab_->flood({"--src", "198.18.1.1", "--count", "160000", "--rate", "20000"});
  const auto end = std::chrono::system_clock::now();
  std::this_thread::sleep_for(1500ms);  // the last scrapes
  char when[32];
  std::snprintf(when, sizeof(when), "%.3f",
                std::chrono::duration<double>((end - 1s).time_since_epoch()).count());
  Outcome q = lab_->in_dut({"curl", "-s", "-f", "-G", "http://127.0.0.1:9090/api/v1/query", "--data-urlencode",
                            "query=sum(rate(xthrottle_packets_total{action=\"dropped\"}[5s]))", "--data-urlencode",
                            std::string("time=") + when});
  ASSERT_EQ(q.rc, 0) << q.err;
  const json answer = json::parse(q.out);
  ASSERT_EQ(answer["status"], "success") << q.out;
  ASSERT_EQ(answer["data"]["result"].size(), 1u) << q.out;
  const double rate = std::stod(answer["data"]["result"][0]["value"][1].get<std::string>());
  const double expected = f.arrived() / f.seconds - 1000;
  std::printf("[ measure  ] PromQL dropped rate %.0f/s, expected about %.0f/s\n", rate, expected);
  if (std::abs(rate - expected) > expected * 0.15) {
    Outcome raw = lab_->in_dut({"curl", "-s", "-G", "http://127.0.0.1:9090/api/v1/query", "--data-urlencode",
                                "query=xthrottle_packets_total{action=\"dropped\"}[15s]", "--data-urlencode",
                                std::string("time=") + when});
    std::printf("samples: %s\n", raw.out.c_str());
  }
  EXPECT_NEAR(rate, expected, expected * 0.15);

  // The rest of what it exports about that flood, straight from serve.
  Outcome scrape = lab_->in_dut({"curl", "-s", "-f", "http://127.0.0.1:9431/metrics"});
  ASSERT_EQ(scrape.rc, 0) << scrape.err;
  auto value = [&](const std::string& series) {
    const auto at = scrape.out.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(scrape.out.substr(at + series.size() + 2));
  };
  EXPECT_EQ(value("xthrottle_up"), 1.0);
  EXPECT_EQ(value("xthrottle_tracked_sources"), 1.0) << "the one flooding source";
  EXPECT_EQ(value("xthrottle_sources_admitted_total"), 1.0);
  EXPECT_EQ(value("xthrottle_sources_evicted_total"), 0.0);
  EXPECT_GE(value("xthrottle_events_total"), 1.0) << "the source's throttled event reached serve";
  prometheus.signal(SIGTERM);
  serve.signal(SIGTERM);
  Outcome log = serve.wait();
  const std::vector<json> lines = json_lines(log.out);
  EXPECT_TRUE(has_event(lines, "throttled")) << "serve logs events: " << log.out;
  EXPECT_TRUE(has_event(lines, "stopped")) << log.out;
}

TEST_F(Operate, EventsTellThrottledAndReleasedAndAFloodOfThemIsBounded) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/s", "--burst", "100"});
  ok({"rule", "add", "198.19.0.0/16", "--rate", "1/s", "--burst", "1", "--new-rate", "1000000/s"});
  Background events(lab_->xthrottle_argv({"events", "--json"}));
  std::this_thread::sleep_for(500ms);

  // One source over its limit, then quiet, then conforming again.
  lab_->flood({"--src", "198.18.1.1", "--count", "5000"});
  std::this_thread::sleep_for(1300ms);
  lab_->flood({"--src", "198.18.1.1", "--count", "3", "--rate", "10"});

  // 20000 distinct sources each over its 1-packet burst: as many throttles.
  const Flood f = lab_->flood({"--src", "198.19.0.0", "--sources", "20000", "--count", "40000"});
  std::this_thread::sleep_for(500ms);
  events.signal(SIGINT);
  Outcome r = events.wait();
  EXPECT_EQ(r.rc, 0) << r.err;

  std::vector<json> seen = json_lines(r.out);
  auto of = [&](const std::string& event, const std::string& source) {
    return std::ranges::count_if(seen, [&](const json& j) { return j["event"] == event && j["source"] == source; });
  };
  EXPECT_EQ(of("throttled", "198.18.1.1/32"), 1);
  EXPECT_EQ(of("released", "198.18.1.1/32"), 1);
  const auto released = std::ranges::find_if(seen, [](const json& j) { return j["event"] == "released"; });
  ASSERT_NE(released, seen.end());
  EXPECT_GT(released->at("throttled_seconds").get<double>(), 1.0);

  // The flood's events are capped at XT_EVENTS_PER_SECOND (burst the same).
  const double bound = 100 + 100 * (f.seconds + 2.5);
  EXPECT_LT(static_cast<double>(seen.size()), bound);
  const json s = lab_->xthrottle_json({"stats", "--json"});
  EXPECT_GT(s["events_suppressed"].get<uint64_t>(), 10000u) << "the rest were counted, not written";
}

// `events` whose output is not read (a pager left open, a stalled pipe)
// stopped draining its ring, and once the ring was full the events that
// followed were lost without a word. It drains into a queue of --buffer
// lines, counts what does not fit and says so where the loss began: every
// event is either written or counted.
TEST_F(Operate, EventsNotReadAreCountedAsLostAndSaidSo) {
  ok({"rule", "add", "198.19.0.0/16", "--rate", "1/s", "--burst", "1", "--new-rate", "1000000/s"});
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(fcntl(fds[1], F_SETPIPE_SZ, 4096), 4096) << "a pipe of one page: some 20 lines";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  std::vector<std::string> argv = lab_->xthrottle_argv({"events", "--json", "--buffer", "10"});
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  std::this_thread::sleep_for(500ms);

  // 80 sources each over its burst of 1: 80 throttles, within the events'
  // own burst of 100, none suppressed; nothing reads the pipe meanwhile.
  lab_->flood({"--src", "198.19.0.0", "--sources", "80", "--count", "160"});
  std::this_thread::sleep_for(1s);
  std::string out;
  char buf[4096];
  auto drain = [&](double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    pollfd in{.fd = fds[0], .events = POLLIN, .revents = 0};
    while (std::chrono::steady_clock::now() < until && ::poll(&in, 1, 100) >= 0) {
      if (!(in.revents & (POLLIN | POLLHUP))) continue;
      const ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n <= 0) return;  // it ended
      out.append(buf, static_cast<size_t>(n));
    }
  };
  drain(1.5);
  kill(pid, SIGINT);
  drain(5);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  const std::vector<json> seen = json_lines(out);
  const auto written = std::ranges::count_if(seen, [](const json& j) { return j["event"] == "throttled"; });
  uint64_t lost = 0;
  for (const json& j : seen)
    if (j["event"] == "lost") lost += j["events"].get<uint64_t>();
  EXPECT_GT(lost, 0u) << out;
  EXPECT_LE(written, 10 + 4096 / 100) << "the pipe and the queue's 10 lines at most";
  EXPECT_EQ(static_cast<uint64_t>(written) + lost, 80u) << "every event written or counted: " << out;
  const auto first_lost = std::ranges::find_if(seen, [](const json& j) { return j["event"] == "lost"; });
  ASSERT_NE(first_lost, seen.end());
  EXPECT_NE(first_lost->value("why", "").find("not read"), std::string::npos);

  // Output that fails (a full disk) is not a reader that went away: it
  // ended with exit 0 and not a word, the events neither written nor
  // counted.
  std::string cmd;
  for (const auto& a : lab_->xthrottle_argv({"events", "--json"})) cmd += "'" + a + "' ";
  Background full({"bash", "-c", "timeout 10 " + cmd + ">/dev/full"});
  std::this_thread::sleep_for(500ms);
  lab_->flood({"--src", "198.19.1.0", "--sources", "2", "--count", "4"});
  const Outcome r = full.wait();
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write the events: No space left on device"), std::string::npos) << r.err;
}

// An event names the rule in its slot now: a rule deleted and another
// added takes its slot, and the reader's names are read again. (They were
// read only on an id it did not know: the new rule's throttles were told
// under the deleted rule's name.)
TEST_F(Operate, EventsNameTheRuleThatTookADeletedOnesSlot) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/s", "--burst", "10"});
  Background events(lab_->xthrottle_argv({"events", "--json"}));
  std::this_thread::sleep_for(500ms);
  lab_->flood({"--src", "198.18.1.1", "--count", "100"});
  std::this_thread::sleep_for(300ms);
  ok({"rule", "del", "198.18.0.0/15"});
  ok({"rule", "add", "198.19.0.0/16", "--rate", "1000/s", "--burst", "10"});
  lab_->flood({"--src", "198.19.1.1", "--count", "100"});
  std::this_thread::sleep_for(500ms);
  events.signal(SIGINT);
  const Outcome r = events.wait();
  ASSERT_EQ(r.rc, 0) << r.err;
  std::map<std::string, std::string> rule_of;  // source -> the rule its throttle named
  for (const json& j : json_lines(r.out))
    if (j["event"] == "throttled") rule_of[j["source"]] = j["rule"];
  EXPECT_EQ(rule_of["198.18.1.1/32"], "198.18.0.0/15") << r.out;
  EXPECT_EQ(rule_of["198.19.1.1/32"], "198.19.0.0/16") << r.out;
}

TEST_F(Operate, TopWatchShowsWhoDropsMostNowWithRates) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  lab_->flood({"--src", "198.18.1.1", "--count", "50000"});  // dropped a lot, earlier
  Background top(lab_->xthrottle_argv({"top", "--watch", "0.5", "--json", "--limit", "3"}));
  lab_->flood({"--src", "198.18.2.2", "--count", "20000", "--rate", "10000"});  // dropping now
  top.signal(SIGINT);
  Outcome r = top.wait();
  EXPECT_EQ(r.rc, 0) << r.err;
  std::vector<json> reports = json_lines(r.out);
  ASSERT_GE(reports.size(), 3u);
  const json& mid = reports[reports.size() / 2]["sources"];
  ASSERT_FALSE(mid.empty());
  EXPECT_EQ(mid[0]["source"], "198.18.2.2/32") << "the source dropping now comes first, not the one with most drops";
  EXPECT_NEAR(mid[0]["dropped_pps"].get<double>(), 9900, 2500);
  // Issue 9.16: the rates are over the interval that really passed (they
  // were over the interval asked for, while sampling took ~1.44 s of each
  // 1 s): each report's rate times its interval is what its counter moved.
  // Within what the hot cache may hold pending on the lab's two CPUs (read
  // apart from the walk, so counted in one report or the next). The
  // interval itself is time, printed, not asserted.
  int compared = 0;
  for (size_t i = 1; i < reports.size(); i++) {
    const double seconds = reports[i]["interval_seconds"].get<double>();
    std::printf("[ measure  ] report %zu: %.3f s\n", i, seconds);
    for (const json& now : reports[i]["sources"])
      for (const json& was : reports[i - 1]["sources"])
        if (now["source"] == was["source"]) {
          const double moved = now["dropped_packets"].get<double>() - was["dropped_packets"].get<double>();
          EXPECT_NEAR(now["dropped_pps"].get<double>() * seconds, moved, 2 * 255 + 1) << "report " << i << " " << now.dump();
          compared++;
        }
  }
  EXPECT_GT(compared, 0) << r.out;
}

// A state made anew under a running watch (detach, the pins removed,
// attach with another --max-sources, as the error of a resize says to): the
// watches went on reading the old maps, 0 pkt/s for good, while the new
// state dropped the flood. They follow it, and say so.
TEST_F(Operate, WatchesFollowAStateMadeAnew) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  Background stats(lab_->xthrottle_argv({"stats", "--watch", "0.3", "--json"}));
  Background top(lab_->xthrottle_argv({"top", "--watch", "0.3", "--json", "--limit", "3"}));
  std::this_thread::sleep_for(700ms);
  ok({"detach", "dut0"});
  for (const auto& e : std::filesystem::directory_iterator(lab_->pin_dir())) std::filesystem::remove_all(e.path());
  ok({"attach", "dut0", "--max-sources", "8192"});
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  std::this_thread::sleep_for(700ms);
  lab_->flood({"--src", "198.18.2.2", "--count", "20000", "--rate", "10000"});
  stats.signal(SIGINT);
  top.signal(SIGINT);
  Outcome s = stats.wait(), t = top.wait();
  ASSERT_EQ(s.rc, 0) << s.err;
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_NE(s.err.find("was made anew"), std::string::npos) << s.err;
  double most = 0;
  for (const json& line : json_lines(s.out)) most = std::max(most, line["dropped_pps"].get<double>());
  EXPECT_GT(most, 5000) << "the new state's drops, at 10,000/s less 100/s: " << s.out;
  double top_most = 0;
  for (const json& report : json_lines(t.out))
    for (const json& row : report["sources"])
      if (row["source"] == "198.18.2.2/32") top_most = std::max(top_most, row["dropped_pps"].get<double>());
  EXPECT_GT(top_most, 5000) << t.out;
}

// The program is swapped for a fresh one in one step while a source floods:
// no packet goes through unmetered, and its bucket carries on (a reset bucket
// would let a second burst of 2000 through).
TEST_F(Operate, UpgradeUnderTrafficKeepsEveryBucket) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "500/s", "--burst", "2000"});
  const json before = lab_->xthrottle_json({"status", "--json"});
  const auto start = std::chrono::steady_clock::now();
  Background flood(lab_->flood_argv({"--src", "198.18.1.1", "--count", "30000", "--rate", "10000"}));
  std::this_thread::sleep_for(1500ms);
  Outcome up = lab_->xthrottle({"attach", "dut0", "--replace"});
  const double swapped_at = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(up.rc, 0) << up.err;
  EXPECT_NE(up.out.find("replaced by"), std::string::npos) << up.out;
  Outcome r = flood.wait();
  ASSERT_EQ(r.rc, 0) << r.err;
  const double seconds = json::parse(r.out)["seconds"].get<double>();
  // Under traffic: the flood went on after the swap (else this is an
  // upgrade between two floods, which keeps buckets more easily).
  EXPECT_GT(seconds, swapped_at + 0.2) << "the flood ended before the program was swapped";

  const json after = lab_->xthrottle_json({"status", "--json"});
  ASSERT_EQ(after["interfaces"].size(), 1u);
  EXPECT_NE(after["interfaces"][0]["prog_id"], before["interfaces"][0]["prog_id"]) << "the program was replaced";
  const uint64_t passed = lab_->received_v4();
  const double expected = 2000 + 500 * seconds;
  std::printf("[ measure  ] across the upgrade: passed %llu, burst + rate x elapsed %.1f\n",
              (unsigned long long)passed, expected);
  EXPECT_NEAR(static_cast<double>(passed), expected, expected * 0.03);
  EXPECT_EQ(lab_->xthrottle_json({"stats", "--json"})["rules"]["198.18.0.0/15"]["passed_packets"].get<uint64_t>(),
            passed)
      << "the rule's counters carried on across the upgrade";
}

TEST_F(Operate, PinsOfAnotherAbiAreRefused) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  const std::string pin = lab_->pin_dir() + "/" + XT_MAP_CONFIG;
  Outcome value = run({"bpftool", "-j", "map", "lookup", "pinned", pin, "key", "hex", "00", "00", "00", "00"});
  ASSERT_EQ(value.rc, 0) << value.err;
  std::vector<std::string> bytes;
  const json doc = json::parse(value.out);
  for (const auto& b : doc["value"]) bytes.push_back(b.get<std::string>().substr(2));
  ASSERT_GT(bytes.size(), 24u);
  bytes[20] = "63";  // xt_config.abi_version (offset 20) := 99
  std::vector<std::string> update = {"bpftool", "map", "update", "pinned", pin, "key", "hex", "00", "00", "00", "00",
                                     "value", "hex"};
  update.insert(update.end(), bytes.begin(), bytes.end());
  ASSERT_EQ(run(update).rc, 0);
  // An older build's pins lack maps this one has: the version is still what
  // the message names, not a missing map.
  ASSERT_EQ(std::remove((lab_->pin_dir() + "/" + XT_MAP_EVENTS_CLI).c_str()), 0);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"rule", "list"},
                                              std::vector<std::string>{"rule", "add", "198.18.0.0/15", "--rate", "20/s"},
                                              std::vector<std::string>{"attach", "dut0"}}) {
    Outcome r = lab_->xthrottle(args);
    EXPECT_EQ(r.rc, 1) << args[0];
    EXPECT_NE(r.err.find("ABI version 99"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace xt::test
