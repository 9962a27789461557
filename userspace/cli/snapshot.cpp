// SPDX-License-Identifier: MIT
// xthrottle save FILE [--json]
// xthrottle restore FILE [--json]
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli.h"
#include "files.h"
#include "format.h"
#include "map_util.h"
#include "snapshot.h"

namespace xt::cli {

Result<SnapshotSummary> save_state(const std::string& pin_dir, const std::string& path, const State* only) {
  // Under the lock: no rule changes between the rules read and their buckets.
  auto locked = open_locked(pin_dir);
  if (!locked) return std::unexpected(locked.error());
  if (only && !locked->state->same_state(*only))
    return system_error("the state in " + pin_dir + " was made anew: not saved over " + path);
  return save_snapshot(*locked->state, path);
}

bool restore_may_follow(const std::string& pin_dir) {
  if (!State::exists(pin_dir)) return true;
  auto state = State::open(pin_dir);
  if (!state) return true;  // the restore says why
  auto empty = state_is_empty(*state);
  return !empty || *empty;
}

namespace {

// The plan a marker's lines after its identity give. A marker without one
// (left by a build before the plan was kept) resumes as that build did:
// every counter topped up.
RestorePlan read_plan(const std::string& lines, const SnapshotFile& file) {
  RestorePlan plan;
  if (!lines.starts_with("plan\n")) {
    plan.counters = true;
    for (const auto& r : file.rules) plan.rules.insert(rule_name(r.cidr, r.spec.match));
    return plan;
  }
  std::istringstream in(lines.substr(5));
  for (std::string line; std::getline(in, line);) {
    if (line == "counters") plan.counters = true;
    if (line.starts_with("rule ")) plan.rules.insert(line.substr(5));
  }
  return plan;
}

}  // namespace

Result<std::optional<SnapshotSummary>> restore_state(const std::string& pin_dir, const SnapshotFile& file,
                                                     const std::string& path, bool only_into_empty,
                                                     const TableSettings& prefer, const std::string& marker) {
  // A file the state would refuse makes no state, and changes nothing
  // (locking the pins may mount a BPF file system and make the directory).
  auto checked_hz = tick_rate_to_check(pin_dir);
  if (!checked_hz) return std::unexpected(checked_hz.error());
  if (auto ok = check_snapshot_rules(file, path, *checked_hz, online_cpus()); !ok) return std::unexpected(ok.error());
  auto locked = lock_pins(pin_dir);
  if (!locked) return std::unexpected(locked.error());
  auto hz = tick_rate_of(*locked, *checked_hz);
  if (!hz) return std::unexpected(hz.error());
  if (*hz != *checked_hz)
    if (auto ok = check_snapshot_rules(file, path, *hz, online_cpus()); !ok) return std::unexpected(ok.error());
  if (auto ok = create_if_missing(*locked, pin_dir, *hz, prefer.or_else(file.table)); !ok)
    return std::unexpected(ok.error());
  // A marker this state's own restore left says the state holds part of
  // the snapshot (that restore was cut short): restored into again. One of
  // another state (a reboot since, another pin directory) says nothing.
  // And only within the hour: a state that served that long since has
  // taken its own course (bans lifted, lists loaded), which an old snapshot
  // must not undo.
  auto id = state_identity(*locked->state);
  if (!id) return std::unexpected(id.error());
  std::string identity;
  // The marker: the state's identity, then the first run's plan for the
  // counters (RestorePlan), a line each: "counters", "rule NAME".
  std::optional<RestorePlan> resume;
  if (!marker.empty()) {
    identity = "state " + *id + "\n";
    const std::optional<std::string> was = read_file(marker);
    std::error_code ec;
    const auto written = std::filesystem::last_write_time(marker, ec);
    if (was && was->starts_with(identity) && !ec &&
        std::filesystem::file_time_type::clock::now() - written < std::chrono::hours(1))
      resume = read_plan(was->substr(identity.size()), file);
  }
  if (only_into_empty && !resume) {
    // The very state the snapshot was saved from (its pins outlived
    // serve): it holds all of that and what came since, whatever it holds
    // (an empty one would otherwise get the counters once more, and rules
    // deleted since back).
    if (file.saved_from(*id)) return std::nullopt;
    auto empty = state_is_empty(*locked->state);
    if (!empty) return std::unexpected(empty.error());
    if (!*empty) return std::nullopt;
  }
  // Marked before the first change, once the restore's checks have passed,
  // under the lock: a kill from then on leaves a state the next start
  // resumes into; a refusal leaves no marker to mislead the next run.
  const auto mark = [&](const RestorePlan& plan) {
    if (marker.empty()) return;
    std::ofstream out(marker, std::ios::trunc);
    out << identity << "plan\n";
    if (plan.counters) out << "counters\n";
    for (const std::string& rule : plan.rules) out << "rule " << rule << "\n";
    if (!out.flush())
      std::cerr << "xthrottle: warning: cannot write " << marker << ": a restore cut short would not be resumed\n";
  };
  // Into a state made otherwise: its own table stays, and the operator is
  // told (a smaller one may not hold every source the snapshot has).
  auto cfg = locked->state->config();
  if (!cfg) return std::unexpected(cfg.error());
  if (auto same = check_same_table(*cfg, file.table, pin_dir); !same)
    std::cerr << "xthrottle: warning: " << path
              << " was saved from a state with another source table; its sources go into this one as it is: "
              << same.error().message << "\n";
  auto sum = restore_snapshot(*locked->state, file, path, online_cpus(), resume, mark);
  if (!sum) return std::unexpected(sum.error());
  sum->resumed = resume.has_value();
  return std::optional(*sum);
}

namespace {

int run_save(const Globals& g, const std::string& path, bool json) {
  const auto start = std::chrono::steady_clock::now();
  auto sum = save_state(g.pin_dir, path);
  if (!sum) return fail(sum.error());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json j = sum->json();
  j["path"] = path;
  j["seconds"] = seconds;
  emit(json, j, "saved " + path + ": " + sum->text() + fmt(" in %.2f s\n", seconds));
  return 0;
}

int run_restore(const Globals& g, const std::string& path, bool json) {
  // The file first: a bad one changes nothing, not even a state made.
  auto file = read_snapshot(path);
  if (!file) return fail(file.error());
  // Marked as serve's restore is: one cut short (Ctrl-C while its rules go
  // in) and run again resumes into the part, topping every counter up to
  // the snapshot's. Unmarked, the second run found rules in the state and
  // added none of the counters: stats lost their history. The marker stays
  // where the restore failed, for the next run to resume.
  const std::string marker = path + ".restoring";
  auto restored = restore_state(g.pin_dir, *file, path, false, {}, marker);
  if (!restored) return fail(restored.error());
  std::error_code ec;
  std::filesystem::remove(marker, ec);
  const auto& sum = *restored;
  nlohmann::json j = sum->json();
  j["path"] = path;
  emit(json, j, "restored " + path + fmt(" (saved %.0f s ago): ", sum->age_seconds) + sum->text() + "\n");
  return 0;
}

}  // namespace

void add_snapshot_commands(CLI::App& app, const Globals& g, int& rc) {
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* save = app.add_subcommand("save", "Write the state (rules, buckets, bans, lists, counters) to a snapshot file");
  save->add_option("FILE", *path, "Snapshot file (written beside, then renamed over)")->required();
  save->add_flag("--json", *json, "JSON output");
  save->callback([&g, &rc, path, json] { rc = run_save(g, *path, *json); });
  auto restore_path = std::make_shared<std::string>();
  auto restore_json = std::make_shared<bool>(false);
  auto* restore = app.add_subcommand("restore", "Put a snapshot's state back (after a reboot, or on another build)");
  restore->add_option("FILE", *restore_path, "Snapshot file written by xthrottle save")->required();
  restore->add_flag("--json", *restore_json, "JSON output");
  restore->callback([&g, &rc, restore_path, restore_json] { rc = run_restore(g, *restore_path, *restore_json); });
}

}  // namespace xt::cli
