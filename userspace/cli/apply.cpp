// SPDX-License-Identifier: MIT
// xthrottle apply FILE [--dry-run] [--json]
#include <iostream>
#include <memory>

#include "apply.h"
#include "map_util.h"
#include "cli.h"
#include "object.h"

namespace xt::cli {

Result<RulesDiff> apply_file(const std::string& pin_dir, const std::string& path, bool dry_run) {
  // The file first: a bad one (syntax, keys, values) changes nothing.
  auto file = load_rules_file(path);
  if (!file) return std::unexpected(file.error());
  return apply_loaded(pin_dir, *file, dry_run);
}

Result<void> check_rules_file(RulesFile& file, uint32_t hz) {
  if (auto ok = compile_rules(file, hz, online_cpus()); !ok) return ok;
  for (const FileRule& r : file.rules)
    if (auto ok = redirect_ifindex(r.spec); !ok) {
      Error e = ok.error();
      e.message = file.path + ":" + std::to_string(r.line) + ": " + e.message;
      return std::unexpected(e);
    }
  return {};
}

Result<RulesDiff> apply_loaded(const std::string& pin_dir, RulesFile& file, bool dry_run) {
  // Checked whole before the pins are locked (which may mount a BPF file
  // system and make the directory): a file with a rule that cannot be
  // metered changes nothing.
  auto checked_hz = tick_rate_to_check(pin_dir);
  if (!checked_hz) return std::unexpected(checked_hz.error());
  if (auto ok = check_rules_file(file, *checked_hz); !ok) return std::unexpected(ok.error());
  if (dry_run && !State::exists(pin_dir)) return diff_from_nothing(file);
  // Then, under the lock, the state opened once: the rules compiled for its
  // tick rate.
  auto locked = lock_pins(pin_dir);
  if (!locked) return std::unexpected(locked.error());
  auto hz = tick_rate_of(*locked, *checked_hz);
  if (!hz) return std::unexpected(hz.error());
  if (*hz != *checked_hz)
    if (auto ok = check_rules_file(file, *hz); !ok) return std::unexpected(ok.error());
  if (!dry_run)
    if (auto ok = create_if_missing(*locked, pin_dir, *hz, file.table); !ok) return std::unexpected(ok.error());
  // A state made otherwise keeps its table: a file asking another is refused.
  auto cfg = locked->state->config();
  if (!cfg) return std::unexpected(cfg.error());
  if (auto ok = check_same_table(*cfg, file.table, pin_dir); !ok) return std::unexpected(ok.error());
  auto diff = diff_rules(*locked->state, file);
  if (!diff || dry_run) return diff;
  if (auto ok = apply_rules(*locked->state, file, *diff); !ok) return std::unexpected(ok.error());
  for (const auto* list : {&diff->add, &diff->change})
    for (const auto& c : *list)
      for (const auto& w : rule_warnings(c.spec, *hz))
        std::cerr << "xthrottle: warning: " << rule_name(c.spec.cidr, c.spec.match) << ": " << w << "\n";
  return diff;
}

namespace {

struct ApplyOptions {
  std::string file;
  bool dry_run = false, json = false;
};

int run_apply(const Globals& g, const ApplyOptions& o) {
  auto diff = apply_file(g.pin_dir, o.file, o.dry_run);
  if (!diff) return fail(diff.error());
  nlohmann::json j = diff_json(*diff);
  j["applied"] = !o.dry_run;
  emit(o.json, j, (o.dry_run ? "would apply " + o.file + ":\n" : "applied " + o.file + ":\n") + diff_text(*diff));
  return 0;
}

}  // namespace

void add_apply_command(CLI::App& app, const Globals& g, int& rc) {
  auto o = std::make_shared<ApplyOptions>();
  auto* apply = app.add_subcommand("apply", "Make the live rules equal to a TOML rules file");
  apply->add_option("FILE", o->file, "Rules file ([[rule]] tables)")->required();
  apply->add_flag("--dry-run", o->dry_run, "Print what would change; change nothing");
  apply->add_flag("--json", o->json, "JSON output");
  apply->callback([&g, &rc, o] { rc = run_apply(g, *o); });
}

}  // namespace xt::cli
