// SPDX-License-Identifier: MIT
// What the CLI's commands share: failing with the right exit code, printing
// text or JSON, stopping on a signal, and opening the state under its lock.
#pragma once

#include <csignal>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "error.h"
#include "state.h"

namespace xt::cli {

// Exit codes: 0 done; 1 the system refused; 2 bad usage or input;
// 3 `status --check` found xthrottle not fully protecting; 4 it found it
// protecting, but the live rules are not what the applied config file says.
inline constexpr int kExitNotProtected = 3;
inline constexpr int kExitConfigDrift = 4;

// Set by SIGINT/SIGTERM once install_stop_signals() ran; SIGHUP sets g_reload.
extern volatile std::sig_atomic_t g_stop;
extern volatile std::sig_atomic_t g_reload;
void install_stop_signals();

int fail(const Error& e);
// Prints a JSON document or text, whichever the command was asked for.
void emit(bool json, const nlohmann::json& j, const std::string& text);
// Sleeps up to `seconds`, returning early (false) when asked to stop.
bool sleep_unless_stopped(double seconds);

// The state of a command that changes it, with the pin dir's lock held.
struct Locked {
  DirLock lock;
  State state;
};
// With `create`, the state is made if missing (with those settings).
Result<Locked> open_locked(const std::string& pin_dir, std::optional<State::Create> create);

struct RuleAddArgs {
  std::string cidr, per, rate, burst, burst_bytes, new_rate;
  std::vector<std::string> bandwidth;
  bool allow = false, deny = false, dry_run = false;
};

int cmd_attach(const std::string& pin_dir, const std::string& ifname, const std::string& mode_text,
               const std::string& max_sources_text, bool replace);
int cmd_detach(const std::string& pin_dir, const std::string& ifname);
int cmd_status(const std::string& pin_dir, bool json, bool check);
int cmd_rule_add(const std::string& pin_dir, const RuleAddArgs& args);
int cmd_rule_del(const std::string& pin_dir, const std::string& cidr_text);
int cmd_rule_list(const std::string& pin_dir, bool json);
int cmd_stats(const std::string& pin_dir, bool json, double watch);
int cmd_top(const std::string& pin_dir, bool json, size_t limit, double watch);
int cmd_apply(const std::string& pin_dir, const std::string& file, bool dry_run, bool json);
int cmd_events(const std::string& pin_dir, bool json);
int cmd_serve(const std::string& pin_dir, const std::string& metrics, const std::string& config);

}  // namespace xt::cli
