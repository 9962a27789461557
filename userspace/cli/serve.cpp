// SPDX-License-Identifier: MIT
// xthrottle serve [--config FILE] [--metrics ADDR:PORT] [--snapshot FILE [--snapshot-every DURATION]]
// The daemon: Prometheus metrics, the data path's events to the log, the
// rules file applied at start and on SIGHUP, the state restored from a
// snapshot at start and saved to it periodically and on stop.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>

#include "cli.h"
#include "events.h"
#include "format.h"
#include "metrics.h"

namespace xt::cli {
namespace {

struct ServeOptions {
  std::string metrics = "127.0.0.1:9431";
  std::string config;
  std::string snapshot;
  std::string snapshot_every = "5min";
};

void log_line(const nlohmann::json& j) {
  static std::mutex mu;
  std::lock_guard<std::mutex> hold(mu);
  std::cout << json_text(j) << std::endl;
}

int run_serve(const Globals& g, const ServeOptions& o) {
  const std::string& pin_dir = g.pin_dir;
  const std::string& metrics = o.metrics;
  const std::string& config = o.config;
  const std::string& snapshot = o.snapshot;
  auto every = parse_duration("--snapshot-every", o.snapshot_every);
  if (!every) return fail(every.error());
  if (*every == 0) return fail(usage_error("bad --snapshot-every '" + o.snapshot_every + "': at least 1s").error());
  install_stop_signals();
  auto unix_time = [] { return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()); };
  // Without a config to make the state, it must be there already (a
  // mistyped --pin-dir creates nothing).
  if (config.empty() && snapshot.empty() && !State::exists(pin_dir)) return fail(State::open(pin_dir).error());
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
  // The snapshot before the config: the config then has the last word on
  // the rules, and the sources keep what they had used. Only into a state
  // made afresh (after a reboot): pins that outlived serve are newer than
  // any snapshot. A file that is not a good snapshot, or one the state
  // cannot take, is moved aside (kept for a look, and from the next save);
  // serve goes on either way: the host must stay protected.
  auto save_logged = [&](const char* why) {
    const auto start = std::chrono::steady_clock::now();
    auto sum = save_state(pin_dir, snapshot);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!sum) {
      std::cerr << "xthrottle: " << sum.error().message << "\n";
      log_line({{"event", "snapshot_failed"}, {"why", why}, {"path", snapshot}, {"error", sum.error().message},
                {"unix_time", unix_time()}});
      return;
    }
    nlohmann::json j = {{"event", "snapshot_saved"}, {"why", why}, {"path", snapshot}, {"seconds", seconds},
                        {"unix_time", unix_time()}};
    j.update(sum->json());
    log_line(j);
  };
  if (!snapshot.empty()) {
    std::error_code ec;
    const bool there = std::filesystem::exists(snapshot, ec);
    auto file = there ? read_snapshot(snapshot) : Result<SnapshotFile>();
    if (!there) {
      log_line({{"event", "snapshot_none"}, {"path", snapshot}, {"unix_time", unix_time()}});
    } else if (!file && file.error().kind == ErrorKind::System) {
      std::cerr << "xthrottle: " << file.error().message << "\n";
      log_line({{"event", "snapshot_failed"}, {"why", "start"}, {"path", snapshot}, {"error", file.error().message},
                {"unix_time", unix_time()}});
    } else if (!file) {
      const std::string aside = snapshot + ".rejected-" + std::to_string(unix_time());
      std::filesystem::rename(snapshot, aside, ec);
      std::cerr << "xthrottle: " << file.error().message << "\n";
      log_line({{"event", "snapshot_rejected"}, {"path", snapshot}, {"moved_to", ec ? "" : aside},
                {"error", file.error().message}, {"unix_time", unix_time()}});
    } else if (auto sum = restore_state(pin_dir, *file, snapshot, true); !sum) {
      // A good file the state could not take: kept aside too, or the
      // first periodic save would write over it.
      const std::string aside = snapshot + ".unrestored-" + std::to_string(unix_time());
      std::filesystem::rename(snapshot, aside, ec);
      std::cerr << "xthrottle: " << sum.error().message << "\n";
      log_line({{"event", "snapshot_failed"}, {"why", "start"}, {"path", snapshot}, {"moved_to", ec ? "" : aside},
                {"error", sum.error().message}, {"unix_time", unix_time()}});
    } else if (!*sum) {
      log_line({{"event", "snapshot_skipped"}, {"path", snapshot},
                {"why", "the state outlived serve (it has rules, bans or lists): newer than any snapshot"},
                {"unix_time", unix_time()}});
    } else {
      nlohmann::json j = {{"event", "snapshot_restored"}, {"path", snapshot}, {"unix_time", unix_time()}};
      j.update((*sum)->json());
      log_line(j);
    }
  }

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
  auto next_save = std::chrono::steady_clock::now() + std::chrono::seconds(*every);
  while (!g_stop) {
    if (!snapshot.empty() && std::chrono::steady_clock::now() >= next_save) {
      save_logged("periodic");
      next_save = std::chrono::steady_clock::now() + std::chrono::seconds(*every);
    }
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
  if (!snapshot.empty()) save_logged("stop");
  return stopped(rc);
}

}  // namespace

void add_serve_command(CLI::App& app, const Globals& g, int& rc) {
  auto o = std::make_shared<ServeOptions>();
  auto* serve = app.add_subcommand("serve", "Run as a daemon: Prometheus metrics, events, rules file");
  serve->add_option("--metrics", o->metrics, "Address for the Prometheus endpoint (/metrics)")->capture_default_str();
  serve->add_option("--config", o->config, "Apply this rules file at start and on SIGHUP");
  serve->add_option("--snapshot", o->snapshot,
                    "Restore the state from this snapshot at start (before --config), save it there periodically and "
                    "on stop");
  serve->add_option("--snapshot-every", o->snapshot_every, "How often to save the snapshot")->capture_default_str();
  serve->callback([&g, &rc, o] { rc = run_serve(g, *o); });
}

}  // namespace xt::cli
