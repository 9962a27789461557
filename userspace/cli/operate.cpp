// SPDX-License-Identifier: MIT
// Running xthrottle for months: `apply` a config file, follow `events`, and
// `serve` (Prometheus metrics, events to the log, config at start and on
// SIGHUP).
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <mutex>

#include "common.h"
#include "config.h"
#include "events.h"
#include "metrics.h"
#include "object.h"
#include "report.h"

namespace xt::cli {
namespace {

// Reads FILE, and, unless dry_run, makes the live rules equal to it. The
// state is created if there is none. Returns the diff; *sha256, if given,
// receives the hash of the bytes read.
Result<ConfigDiff> apply_file(const std::string& pin_dir, const std::string& path, bool dry_run,
                              std::string* sha256 = nullptr) {
  auto hz = tick_rate(pin_dir);
  if (!hz) return std::unexpected(hz.error());
  auto file = load_config(path, *hz);  // every error: exit 2, FILE:LINE
  if (!file) return std::unexpected(file.error());
  if (sha256) *sha256 = file->sha256;
  if (dry_run && !State::exists(pin_dir)) {
    ConfigDiff all;
    for (const auto& r : file->rules) all.add.push_back({r.spec.cidr, *compile_rule(r.spec, *hz), std::nullopt});
    return all;
  }
  auto locked = open_locked(pin_dir, dry_run ? std::nullopt : std::optional<State::Create>(State::Create{.max_sources = std::nullopt, .hz = *hz}));
  if (!locked) return std::unexpected(locked.error());
  auto diff = diff_config(locked->state, *file);
  if (!diff || dry_run) return diff;
  if (auto ok = apply_config(locked->state, *file, *diff); !ok) return std::unexpected(ok.error());
  return diff;
}

void log_line(const nlohmann::json& j) {
  static std::mutex mu;
  std::lock_guard<std::mutex> hold(mu);
  std::cout << json_text(j) << std::endl;
}

}  // namespace

int cmd_apply(const std::string& pin_dir, const std::string& path, bool dry_run, bool json) {
  auto diff = apply_file(pin_dir, path, dry_run);
  if (!diff) return fail(diff.error());
  if (auto hz = tick_rate(pin_dir))
    for (const auto* list : {&diff->add, &diff->change})
      for (const auto& c : *list)
        for (const auto& w : rule_warnings(c.rule, *hz))
          std::cerr << "xthrottle: warning: " << format_cidr(c.cidr) << ": " << w << "\n";
  nlohmann::json j = diff_json(*diff);
  j["applied"] = !dry_run;
  emit(json, j, (dry_run ? "would apply " + path + ":\n" : "applied " + path + ":\n") + diff_text(*diff));
  return 0;
}

int cmd_events(const std::string& pin_dir, bool json) {
  auto state = State::open(pin_dir);
  if (!state) return fail(state.error());
  auto lock = ReaderLock::acquire(pin_dir, XT_MAP_EVENTS_CLI, "`xthrottle events`");
  if (!lock) return fail(lock.error());
  auto reader = EventReader::open(*state, state->events_cli_fd(), [&](const nlohmann::json& e, const std::string& line) {
    if (json)
      std::cout << json_text(e) << std::endl;
    else
      std::cout << line << std::endl;
  });
  if (!reader) return fail(reader.error());
  reader->discard();  // what piled up before we looked is old news
  install_stop_signals();
  while (!g_stop)
    if (auto n = reader->poll(250); !n) return fail(n.error());
  return 0;
}

int cmd_serve(const std::string& pin_dir, const std::string& metrics, const std::string& config) {
  install_stop_signals();
  auto unix_time = [] { return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()); };
  // Without a config to make the state, it must be there already (a
  // mistyped --pin-dir creates nothing).
  if (config.empty() && !State::exists(pin_dir)) return fail(State::open(pin_dir).error());
  // One serve per state: a second would split the events, and apply its
  // config over the first one's.
  if (auto ok = ensure_bpffs(pin_dir); !ok) return fail(ok.error());
  auto lock = ReaderLock::acquire(pin_dir, XT_MAP_EVENTS, "`xthrottle serve`");
  if (!lock) return fail(lock.error());
  auto server = MetricsServer::start(metrics, [&pin_dir] { return render_metrics(pin_dir); });
  if (!server) return fail(server.error());
  log_line({{"event", "started"}, {"pin_dir", pin_dir}, {"metrics", metrics}, {"config", config},
            {"abi", XT_ABI_VERSION}, {"unix_time", unix_time()}});
  auto stopped = [&](int rc) {
    log_line({{"event", "stopped"}, {"unix_time", unix_time()}});
    return rc;
  };

  auto apply_logged = [&](const char* why) -> Result<void> {
    std::string sha256;
    auto diff = apply_file(pin_dir, config, false, &sha256);
    if (!diff) {
      std::cerr << "xthrottle: " << diff.error().message << "\n";
      log_line({{"event", "config_rejected"}, {"why", why}, {"path", config}, {"error", diff.error().message},
                {"unix_time", unix_time()}});
      return std::unexpected(diff.error());
    }
    log_line({{"event", "config_applied"}, {"why", why}, {"path", config}, {"sha256", sha256},
              {"added", diff->add.size()}, {"changed", diff->change.size()}, {"removed", diff->remove.size()},
              {"unchanged", diff->unchanged}, {"unix_time", unix_time()}});
    return {};
  };
  // A config that does not apply at start is an error, with the exit code
  // of its kind: the operator is there to see it. Later (SIGHUP) a bad file
  // is reported and the running rules stay as they are.
  if (!config.empty())
    if (auto ok = apply_logged("start"); !ok) return stopped(ok.error().exit_code());

  auto state = State::open(pin_dir);
  if (!state) return stopped(fail(state.error()));
  auto reader = EventReader::open(*state, state->events_fd(),
                                  [](const nlohmann::json& e, const std::string&) { log_line(e); });
  if (!reader) return stopped(fail(reader.error()));
  // Events that piled up while no serve ran are delivered, marked as such.
  auto started_at = state->now();
  if (!started_at) return stopped(fail(started_at.error()));
  reader->mark_backlog_before(*started_at);

  int rc = 0;
  while (!g_stop) {
    if (g_reload) {
      g_reload = 0;
      if (config.empty())
        log_line({{"event", "config_rejected"}, {"why", "SIGHUP"}, {"error", "serve runs without --config"}});
      else
        (void)apply_logged("SIGHUP");
    }
    if (auto n = reader->poll(250); !n) {
      std::cerr << "xthrottle: " << n.error().message << "\n";
      rc = 1;
      break;
    }
  }
  return stopped(rc);
}

}  // namespace xt::cli
