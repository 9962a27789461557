// SPDX-License-Identifier: MIT
// Running xthrottle for months: `apply` a config file, follow `events`, and
// `serve` (Prometheus metrics, events to the log, config at start and on
// SIGHUP).
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <mutex>
#include <thread>

#include "common.h"
#include "config.h"
#include "events.h"
#include "metrics.h"
#include "object.h"

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

// host:port, the host optional ("9431" listens on 127.0.0.1).
Result<std::pair<std::string, int>> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : text.substr(0, colon);
  const std::string port = colon == std::string::npos ? text : text.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto n = parse_positive("--metrics", port);
  if (!n || *n > 65535) return usage_error("bad --metrics '" + text + "': expected ADDR:PORT, e.g. 127.0.0.1:9431");
  return std::pair<std::string, int>{host, static_cast<int>(*n)};
}

}  // namespace

int cmd_apply(const std::string& pin_dir, const std::string& path, bool dry_run, bool json) {
  auto diff = apply_file(pin_dir, path, dry_run);
  if (!diff) return fail(diff.error());
  nlohmann::json j = diff_json(*diff);
  j["applied"] = !dry_run;
  emit(json, j, (dry_run ? "would apply " + path + ":\n" : "applied " + path + ":\n") + diff_text(*diff));
  return 0;
}

int cmd_events(const std::string& pin_dir, bool json) {
  auto state = State::open(pin_dir);
  if (!state) return fail(state.error());
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
  auto listen = parse_listen(metrics);
  if (!listen) return fail(listen.error());
  install_stop_signals();
  auto now_iso = [] { return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()); };

  auto apply_logged = [&](const char* why) -> bool {
    std::string sha256;
    auto diff = apply_file(pin_dir, config, false, &sha256);
    if (!diff) {
      std::cerr << "xthrottle: " << diff.error().message << "\n";
      log_line({{"event", "config_rejected"}, {"why", why}, {"path", config}, {"error", diff.error().message},
                {"unix_time", now_iso()}});
      return false;
    }
    log_line({{"event", "config_applied"}, {"why", why}, {"path", config}, {"sha256", sha256},
              {"added", diff->add.size()}, {"changed", diff->change.size()}, {"removed", diff->remove.size()},
              {"unchanged", diff->unchanged}, {"unix_time", now_iso()}});
    return true;
  };
  // A config that does not apply at start is an error: the operator is
  // there to see it. Later (SIGHUP) a bad file is reported and the running
  // rules stay as they are.
  if (!config.empty() && !apply_logged("start")) return 2;

  auto state = State::open(pin_dir);
  if (!state) return fail(state.error());
  auto reader = EventReader::open(*state, state->events_fd(),
                                  [](const nlohmann::json& e, const std::string&) { log_line(e); });
  if (!reader) return fail(reader.error());

  httplib::Server server;
  server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    auto text = render_metrics(pin_dir);
    if (!text) {
      res.status = 500;
      res.set_content(text.error().message + "\n", "text/plain");
      return;
    }
    res.set_content(*text, "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("xthrottle: metrics at /metrics\n", "text/plain");
  });
  if (!server.bind_to_port(listen->first, listen->second))
    return fail({ErrorKind::System, "cannot listen on " + metrics + " (in use, or not an address of this host)"});
  std::thread http([&] { server.listen_after_bind(); });

  log_line({{"event", "started"}, {"pin_dir", pin_dir}, {"metrics", metrics}, {"config", config},
            {"abi", XT_ABI_VERSION}, {"unix_time", now_iso()}});
  int rc = 0;
  while (!g_stop) {
    if (g_reload) {
      g_reload = 0;
      if (config.empty())
        log_line({{"event", "config_rejected"}, {"why", "SIGHUP"}, {"error", "serve runs without --config"}});
      else
        apply_logged("SIGHUP");
    }
    if (auto n = reader->poll(250); !n) {
      std::cerr << "xthrottle: " << n.error().message << "\n";
      rc = 1;
      break;
    }
  }
  server.stop();
  http.join();
  log_line({{"event", "stopped"}, {"unix_time", now_iso()}});
  return rc;
}

}  // namespace xt::cli
