// SPDX-License-Identifier: MIT
#include "common.h"

#include "report.h"

#include <chrono>
#include <iostream>
#include <thread>

namespace xt::cli {

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_reload = 0;

void install_stop_signals() {
  // No SA_RESTART: a signal interrupts a poll or a sleep at once.
  struct sigaction sa {};
  sa.sa_handler = [](int sig) {
    if (sig == SIGHUP)
      g_reload = 1;
    else
      g_stop = 1;
  };
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

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

// With `create`, the state is made if missing (with those settings).
Result<Locked> open_locked(const std::string& pin_dir, std::optional<State::Create> create) {
  if (create) {
    if (auto ok = ensure_bpffs(pin_dir); !ok) return std::unexpected(ok.error());
  } else if (!State::exists(pin_dir)) {
    return std::unexpected(State::open(pin_dir).error());  // says there is no state
  }
  auto lock = DirLock::acquire(pin_dir);
  if (!lock) return std::unexpected(lock.error());
  auto state = create ? State::open_or_create(pin_dir, *create) : State::open(pin_dir);
  if (!state) return std::unexpected(state.error());
  return Locked{std::move(*lock), std::move(*state)};
}


}  // namespace xt::cli
