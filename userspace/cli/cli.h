// SPDX-License-Identifier: MIT
// What the commands share: the global options, failing with the right exit
// code, printing text or JSON, stopping on a signal, and the pin directory's
// lock. Each command lives in a file of its own (attach.cpp, rule.cpp, ...)
// with its options next to its handler; main.cpp only wires them up.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <optional>
#include <string>

#include "apply.h"
#include "error.h"
#include "pins.h"
#include "snapshot.h"
#include "state.h"

namespace xt::cli {

// Exit codes: 0 done; 1 the system refused; 2 bad usage or input;
// 3 `status --check` found xthrottle not fully protecting; 4 it found it
// protecting, but the live rules are not what the applied rules file says.
inline constexpr int kExitNotProtected = 3;
inline constexpr int kExitConfigDrift = 4;

// The options every command takes (before or after its name).
struct Globals {
  std::string pin_dir;
  bool verbose = false;
};

// Each command adds itself to the command line; when it is the one given,
// its handler's exit code lands in *rc.
void add_attach_commands(CLI::App& app, const Globals& g, int& rc);  // attach, detach
void add_status_command(CLI::App& app, const Globals& g, int& rc);
void add_rule_commands(CLI::App& app, const Globals& g, int& rc);  // rule add, del, list
void add_stats_commands(CLI::App& app, const Globals& g, int& rc);  // stats, top
void add_apply_command(CLI::App& app, const Globals& g, int& rc);
void add_events_command(CLI::App& app, const Globals& g, int& rc);
void add_capture_command(CLI::App& app, const Globals& g, int& rc);
void add_ban_commands(CLI::App& app, const Globals& g, int& rc);  // ban add, ban del, bans
void add_blocklist_commands(CLI::App& app, const Globals& g, int& rc);  // blocklist load, del, list, test
void add_serve_command(CLI::App& app, const Globals& g, int& rc);
void add_snapshot_commands(CLI::App& app, const Globals& g, int& rc);  // save, restore
void add_replay_command(CLI::App& app, const Globals& g, int& rc);
void add_recommend_command(CLI::App& app, const Globals& g, int& rc);

// Set by SIGINT/SIGTERM once install_stop_signals() ran. SIGHUP sets
// g_reload where hup_reloads (serve, a daemon), else g_stop: the terminal
// of a `top --watch` or `events` went away.
extern volatile std::sig_atomic_t g_stop;
extern volatile std::sig_atomic_t g_reload;
void install_stop_signals(bool hup_reloads = false);

// Whether standard output still takes what is written to it (a terminal
// that hung up fails with EIO).
bool output_ok();

int fail(const Error& e);
// Prints a JSON document or text, whichever the command was asked for.
void emit(bool json, const nlohmann::json& j, const std::string& text);
// Sleeps up to `seconds`, returning early (false) when asked to stop.
bool sleep_unless_stopped(double seconds);

// Checks for numeric options. CLI11 alone reads an integer as C does
// ("010" is 8, "0x10" 16) and takes one past its type as the largest there
// is, and lets "nan" through a range.
// A whole number in decimal digits, from `min` to `max`.
CLI::Validator whole_number(uint64_t min, uint64_t max);
// Seconds: a finite number above 0, at most `max`.
CLI::Validator seconds_up_to(double max);

// The pin directory (a BPF file system, made if need be) locked against
// other commands that change it, and its state if there is one.
struct Locked {
  DirLock lock;
  std::optional<State> state;
};
Result<Locked> lock_pins(const std::string& pin_dir);
// The same, the state required.
Result<Locked> open_locked(const std::string& pin_dir);
// The tick rate limits are compiled for: the state's, or, when there is none
// yet, the kernel's (for the state about to be made): `measured` if the
// caller has it already (tick_rate_to_check), else measured here.
Result<uint32_t> tick_rate_of(const Locked& locked, std::optional<uint32_t> measured = std::nullopt);
// The tick rate input is checked against before anything is locked or made
// (bad input exits 2 and changes nothing, even where the pins could not be
// locked): the state's, or the kernel's where there is none or it cannot
// be read here. Checked again under the lock, for tick_rate_of's.
Result<uint32_t> tick_rate_to_check(const std::string& pin_dir);
// attach's and replay's --max-sources and --idle, as given ("" for unset).
Result<TableSettings> table_options(const std::string& max_sources, const std::string& idle);
// Makes the state, if there is none yet, for the tick rate hz, with the
// source table `table` asks (each setting unset: the default).
Result<void> create_if_missing(Locked& locked, const std::string& pin_dir, uint32_t hz,
                               const TableSettings& table = {});

// Reads a rules file and, unless dry_run, makes the live rules equal to it
// (the state is made if there is none, with the file's [sources]; an
// existing state without them is refused, nothing changed): `apply`.
Result<RulesDiff> apply_file(const std::string& pin_dir, const std::string& path, bool dry_run);
// The same, of a file already read, its rules compiled in place: `serve
// --config` at start (the file whose [sources] it checked before restoring)
// and on SIGHUP.
Result<RulesDiff> apply_loaded(const std::string& pin_dir, RulesFile& file, bool dry_run);
// What apply refuses of a file before it changes anything: every rule
// compiled for a kernel of hz ticks a second, and every interface a rule
// sends its drops out present (FILE:LINE on the first that is not). serve
// --config checks it at start, before a snapshot makes the state.
Result<void> check_rules_file(RulesFile& file, uint32_t hz);

// `save` and `restore` (snapshot.h), under the lock; restore makes the state
// if there is none (after a reboot), with the source table the snapshot's
// state had (each setting `prefer` gives instead: serve's config), and with
// only_into_empty restores nothing (nullopt) into a state that has rules,
// bans or lists: `serve --snapshot`, whose pins may have outlived it. serve
// calls them too. marker: a file that marks a restore under way (serve's
// FILE.restoring): one this state's own restore left (a kill cut it short)
// has it restore into what that one put in, whatever only_into_empty says
// (restore_snapshot's resume); the caller removes it after.
// With only, saves nothing unless the state in pin_dir is that one (serve's
// own, not one made anew since).
Result<SnapshotSummary> save_state(const std::string& pin_dir, const std::string& path,
                                   const State* only = nullptr);
// Whether restore_state with only_into_empty may restore into pin_dir's
// state: there is none, it is empty, or it cannot be read (serve holds its
// scrapes back until the restore is done).
bool restore_may_follow(const std::string& pin_dir);
Result<std::optional<SnapshotSummary>> restore_state(const std::string& pin_dir, const SnapshotFile& file,
                                                     const std::string& path, bool only_into_empty,
                                                     const TableSettings& prefer = {}, const std::string& marker = {});

}  // namespace xt::cli
