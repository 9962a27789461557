// SPDX-License-Identifier: MIT
// xthrottle stats [--json] [--watch SECONDS]
// xthrottle top [--limit N] [--json] [--watch SECONDS]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "cli.h"
#include "format.h"
#include "stats.h"

namespace xt::cli {
namespace {

struct WatchOptions {
  bool json = false;
  double watch = 0;
  size_t limit = 10;  // top
};

// The state a watch reads: its pin directory's, followed when it is made
// anew (detach, the pins removed, attach with another --max-sources; an
// ABI upgrade), where a watch kept reading the old maps, 0 for good, while
// the new state dropped the flood. Says on stderr when the state changes.
class Watched {
 public:
  explicit Watched(State state) : pin_dir_(state.pin_dir()), state_(std::move(state)) {}
  // The state now, or none while the pin directory has none; *anew when it
  // is another than at the last call (rates do not span two states).
  const State* now(bool* anew) {
    *anew = false;
    if (state_ && state_->still_pinned()) return &*state_;
    auto opened = State::open(pin_dir_);
    if (!opened) {
      if (state_) std::cerr << "xthrottle: the state in " << pin_dir_ << " is gone (" << opened.error().message
                            << "): waiting for one\n";
      state_.reset();
      return nullptr;
    }
    state_ = std::move(*opened);
    *anew = true;
    std::cerr << "xthrottle: the state in " << pin_dir_ << " was made anew: its counts start over\n";
    return &*state_;
  }

 private:
  std::string pin_dir_;
  std::optional<State> state_;
};

int run_stats(const Globals& g, bool json, double watch) {
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  auto stats = read_stats(*state);
  if (!stats) return fail(stats.error());
  if (watch <= 0) {
    emit(json, stats_json(*stats), stats_text(*stats));
    return 0;
  }
  // One line per interval until interrupted; rates are over that interval.
  install_stop_signals();
  auto before = std::move(*stats);
  auto t0 = std::chrono::steady_clock::now();
  Watched watched(std::move(*state));
  while (output_ok() && sleep_unless_stopped(watch)) {
    bool anew = false;
    const State* now = watched.now(&anew);
    if (!now) continue;
    auto after = read_stats(*now);
    if (!after) return fail(after.error());
    auto t1 = std::chrono::steady_clock::now();
    if (anew) {  // the rates start from the new state's counts
      before = std::move(*after);
      t0 = t1;
      continue;
    }
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    if (json)
      std::cout << json_text(stats_rate_json(before, *after, seconds)) << std::endl;
    else
      std::cout << stats_rate_text(before, *after, seconds) << std::flush;
    before = std::move(*after);
    t0 = t1;
  }
  return 0;
}

int run_top(const Globals& g, bool json, size_t limit, double watch) {
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  if (watch <= 0) {
    auto rows = read_top(*state, limit);
    if (!rows) return fail(rows.error());
    emit(json, top_json(*rows), top_text(*rows));
    return 0;
  }
  // Live: every interval, the sources dropping most in that interval, with
  // their rates. A terminal is redrawn; otherwise (or with --json) one
  // report per interval is appended. Samples are taken on a fixed schedule
  // (reading takes time, which must not stretch the interval), and the
  // rates are over the interval that really passed.
  install_stop_signals();
  const bool tty = isatty(STDOUT_FILENO);
  TopSnapshot seen;  // 12 bytes a slot of the table: what the rates are over
  const auto start = std::chrono::steady_clock::now();
  auto t0 = start;
  Watched watched(std::move(*state));
  for (uint64_t n = 0; !g_stop && output_ok(); n++) {
    if (n > 0) {
      const auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(watch * static_cast<double>(n)));
      const double wait = std::chrono::duration<double>(due - std::chrono::steady_clock::now()).count();
      if (wait > 0 && !sleep_unless_stopped(wait)) break;
    }
    bool anew = false;
    const State* now = watched.now(&anew);
    if (!now) {
      seen.clear();
      continue;
    }
    if (anew) seen.clear();  // another table: its slots are other sources
    const bool first = seen.empty();
    const auto t1 = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    auto shown = read_top(*now, limit, &seen, seconds);
    if (!shown) return fail(shown.error());
    if (json) {
      std::cout << json_text(nlohmann::json{{"interval_seconds", first ? 0.0 : seconds}, {"sources", top_json(*shown)}})
                << std::endl;
    } else {
      if (tty) std::cout << "\033[H\033[2J";
      char head[160];
      if (first)
        std::snprintf(head, sizeof(head), "xthrottle top: every %g s (Ctrl-C to stop); rates from the next one on\n\n",
                      watch);
      else
        std::snprintf(head, sizeof(head), "xthrottle top: rates over the last %.2f s, every %g s (Ctrl-C to stop)\n\n",
                      seconds, watch);
      std::cout << head << top_text(*shown) << std::flush;
    }
    t0 = t1;
  }
  return 0;
}

}  // namespace

// A day: longer between two prints is no watch, and a number of seconds
// past what a clock's nanoseconds hold would wrap the wait.
constexpr double kMaxWatch = 86400;

void add_stats_commands(CLI::App& app, const Globals& g, int& rc) {
  auto s = std::make_shared<WatchOptions>();
  auto* stats = app.add_subcommand("stats", "Packet and byte counters, overall and per rule");
  stats->add_flag("--json", s->json, "JSON output");
  stats->add_option("--watch", s->watch, "Print rates every SECONDS until interrupted")->check(seconds_up_to(kMaxWatch));
  stats->callback([&g, &rc, s] { rc = run_stats(g, s->json, s->watch); });

  auto t = std::make_shared<WatchOptions>();
  auto* top = app.add_subcommand("top", "Tracked sources, most drops first");
  top->add_option("--limit", t->limit, "How many")->check(whole_number(1, UINT32_MAX))->capture_default_str();
  top->add_option("--watch", t->watch, "Redraw every SECONDS, by drops in that interval, with rates")
      ->check(seconds_up_to(kMaxWatch));
  top->add_flag("--json", t->json, "JSON output");
  top->callback([&g, &rc, t] { rc = run_top(g, t->json, t->limit, t->watch); });
}

}  // namespace xt::cli
