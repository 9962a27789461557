// SPDX-License-Identifier: MIT
#include "cli.h"

#include <charconv>
#include <chrono>
#include <csignal>
#include <cmath>
#include <iostream>
#include <thread>

#include "format.h"
#include "object.h"

namespace xt::cli {

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_reload = 0;
namespace {
volatile std::sig_atomic_t g_hup_reloads = 0;
}  // namespace

void install_stop_signals(bool hup_reloads) {
  g_hup_reloads = hup_reloads;
  // No SA_RESTART: a signal interrupts a poll or a sleep at once.
  struct sigaction sa {};
  sa.sa_handler = [](int sig) {
    if (sig == SIGHUP && g_hup_reloads)
      g_reload = 1;
    else
      g_stop = 1;
  };
  sigemptyset(&sa.sa_mask);
  // A reader that went away (`| head`) fails the next write, which each
  // loop sees (output_ok) and ends on, closing what it writes (a capture's
  // pcap) and stopping what it started: SIGPIPE killed it midway.
  std::signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    // A hangup ignored (nohup) stays ignored where it would stop.
    struct sigaction was {};
    if (sig == SIGHUP && !hup_reloads && sigaction(SIGHUP, nullptr, &was) == 0 && was.sa_handler == SIG_IGN) continue;
    sigaction(sig, &sa, nullptr);
  }
}

bool output_ok() { return static_cast<bool>(std::cout); }

int fail(const Error& e) {
  std::cerr << "xthrottle: " << e.message << "\n";
  return e.exit_code();
}

void emit(bool json, const nlohmann::json& j, const std::string& text) {
  if (json)
    std::cout << json_text(j, 2) << "\n";
  else
    std::cout << text;
}

bool sleep_unless_stopped(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!g_stop && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return !g_stop;
}

CLI::Validator whole_number(uint64_t min, uint64_t max) {
  const std::string what = std::to_string(min) + " to " + std::to_string(max);
  return CLI::Validator(
      [min, max, what](std::string& text) -> std::string {
        uint64_t v = 0;
        const char* end = text.data() + text.size();
        auto [at, ec] = std::from_chars(text.data(), end, v);
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        if (!digits || ec != std::errc{} || at != end || (text.size() > 1 && text[0] == '0') || v < min || v > max)
          return "'" + text + "' is not a whole number from " + what;
        return {};
      },
      "N: " + what);
}

CLI::Validator seconds_up_to(double max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        double v = 0;
        const char* end = text.data() + text.size();
        auto [at, ec] = std::from_chars(text.data(), end, v);
        if (text.empty() || ec != std::errc{} || at != end || !std::isfinite(v) || !(v > 0) || v > max)
          return "'" + text + "' is not a number of seconds above 0 and at most " + fmt("%g", max);
        return {};
      },
      "SECONDS");
}

Result<Locked> lock_pins(const std::string& pin_dir) {
  if (auto ok = ensure_bpffs(pin_dir); !ok) return std::unexpected(ok.error());
  auto lock = DirLock::acquire(pin_dir);
  if (!lock) return std::unexpected(lock.error());
  Locked locked{std::move(*lock), std::nullopt};
  if (State::exists(pin_dir)) {
    auto state = State::open(pin_dir);
    if (!state) return std::unexpected(state.error());
    locked.state.emplace(std::move(*state));
  }
  return locked;
}

Result<Locked> open_locked(const std::string& pin_dir) {
  if (!State::exists(pin_dir)) return std::unexpected(State::open(pin_dir).error());  // says there is no state
  auto locked = lock_pins(pin_dir);
  // Looked for again under the lock: a failed attach that made the state
  // removes it while holding the lock, and a command waiting for it then
  // found none.
  if (locked && !locked->state) return std::unexpected(State::open(pin_dir).error());
  return locked;
}

Result<uint32_t> tick_rate_of(const Locked& locked, std::optional<uint32_t> measured) {
  if (!locked.state) return measured ? Result<uint32_t>(*measured) : measure_hz();
  auto cfg = locked.state->config();
  if (!cfg) return std::unexpected(cfg.error());
  return cfg->hz;
}

Result<uint32_t> tick_rate_to_check(const std::string& pin_dir) {
  if (auto hz = tick_rate(pin_dir)) return hz;
  return measure_hz();
}

Result<TableSettings> table_options(const std::string& max_sources, const std::string& idle) {
  TableSettings table;
  if (!max_sources.empty()) {
    auto n = parse_positive("--max-sources", max_sources);
    if (!n) return std::unexpected(n.error());
    auto size = check_max_sources("--max-sources", *n);
    if (!size) return std::unexpected(size.error());
    table.max_sources = *size;
  }
  if (!idle.empty()) {
    auto secs = parse_idle("--idle", idle);
    if (!secs) return std::unexpected(secs.error());
    table.idle_seconds = *secs;
  }
  return table;
}

Result<void> create_if_missing(Locked& locked, const std::string& pin_dir, uint32_t hz, const TableSettings& table) {
  if (locked.state) return {};
  auto state = State::open_or_create(pin_dir, State::Create{.table = table, .hz = hz});
  if (!state) return std::unexpected(state.error());
  locked.state.emplace(std::move(*state));
  return {};
}

}  // namespace xt::cli
