// SPDX-License-Identifier: MIT
#include "config.h"

#include <algorithm>
#include <ctime>
#include <set>
#include <sstream>

#include "report.h"

namespace xt {
namespace {

// A rule's settings as the operator wrote them: equal means "unchanged".
bool same_settings(const xt_rule& a, const xt_rule& b) {
  return a.action == b.action && a.flags == b.flags && a.per_len == b.per_len && a.rate_count == b.rate_count &&
         a.rate_period_ns == b.rate_period_ns && a.burst == b.burst && a.bw_bits == b.bw_bits &&
         a.burst_bytes == b.burst_bytes && a.new_count == b.new_count && a.new_period_ns == b.new_period_ns &&
         a.new_burst == b.new_burst;
}

}  // namespace

Result<ConfigDiff> diff_config(const State& state, const ConfigFile& file) {
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  auto live = state.rules();
  if (!live) return std::unexpected(live.error());
  ConfigDiff diff;
  for (const ConfigRule& want : file.rules) {
    auto rule = compile_rule(want.spec, cfg->hz);
    if (!rule) return config_error(file.path, want.line, rule.error().message);
    auto now = std::ranges::find_if(*live, [&](const RuleEntry& e) { return e.cidr == want.spec.cidr; });
    if (now == live->end())
      diff.add.push_back({want.spec.cidr, *rule, std::nullopt});
    else if (!same_settings(now->rule, *rule))
      diff.change.push_back({want.spec.cidr, *rule, now->rule});
    else
      diff.unchanged++;
  }
  for (const RuleEntry& e : *live) {
    const bool wanted = std::ranges::any_of(file.rules, [&](const ConfigRule& r) { return r.spec.cidr == e.cidr; });
    if (!wanted) diff.remove.push_back({e.cidr, e.rule, e.rule});
  }
  return diff;
}

namespace {

std::string describe(const xt_rule& r) {
  std::string out = action_name(r.action);
  if (r.action == XT_ACT_LIMIT) out += " " + describe_limits(r) + ", per /" + std::to_string(r.per_len);
  if (r.flags & XT_RULE_DRY_RUN) out += " (dry-run)";
  return out;
}

}  // namespace

std::string diff_text(const ConfigDiff& diff) {
  std::string out;
  for (const auto& c : diff.add) out += "+ " + format_cidr(c.cidr) + " " + describe(c.rule) + "\n";
  for (const auto& c : diff.change)
    out += "~ " + format_cidr(c.cidr) + " " + describe(*c.old) + "\n    -> " + describe(c.rule) + "\n";
  for (const auto& c : diff.remove) out += "- " + format_cidr(c.cidr) + " " + describe(*c.old) + "\n";
  out += std::to_string(diff.add.size()) + " to add, " + std::to_string(diff.change.size()) + " to change, " +
         std::to_string(diff.remove.size()) + " to remove, " + std::to_string(diff.unchanged) + " unchanged\n";
  return out;
}

nlohmann::json diff_json(const ConfigDiff& diff) {
  auto list = [](const std::vector<ConfigDiff::Change>& changes, bool use_old) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : changes) {
      nlohmann::json j = rule_json(c.cidr, use_old ? *c.old : c.rule);
      if (!use_old && c.old) j["was"] = rule_json(c.cidr, *c.old);
      out.push_back(j);
    }
    return out;
  };
  return {{"add", list(diff.add, false)},
          {"change", list(diff.change, false)},
          {"remove", list(diff.remove, true)},
          {"unchanged", diff.unchanged}};
}

Result<void> apply_config(State& state, const ConfigFile& file, const ConfigDiff& diff) {
  std::vector<const ConfigDiff::Change*> done;
  auto undo = [&](const Error& why) -> Result<void> {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      const auto* c = *it;
      // Best effort: an undo the kernel also refuses is reported below.
      if (c->old)
        (void)state.put_rule(c->cidr, *c->old);
      else
        (void)state.del_rule(c->cidr);
    }
    return std::unexpected(Error{why.kind, why.message + " (the rules changed before it were restored)"});
  };
  for (const auto* list : {&diff.add, &diff.change}) {
    for (const auto& c : *list) {
      if (auto ok = state.put_rule(c.cidr, c.rule); !ok) return undo(ok.error());
      done.push_back(&c);
    }
  }
  for (const auto& c : diff.remove) {
    if (auto ok = state.del_rule(c.cidr); !ok) return undo(ok.error());
    done.push_back(&c);  // undone by adding it back (its buckets are gone)
  }

  auto current = state.meta();
  if (!current) return std::unexpected(current.error());
  xt_meta meta = *current;
  std::snprintf(meta.config_path, sizeof(meta.config_path), "%s", file.path.c_str());
  for (size_t i = 0; i < sizeof(meta.config_sha256) && 2 * i + 1 < file.sha256.size(); i++)
    meta.config_sha256[i] = static_cast<uint8_t>(std::stoi(file.sha256.substr(2 * i, 2), nullptr, 16));
  meta.applied_at = static_cast<uint64_t>(time(nullptr));
  return state.set_meta(meta);
}

}  // namespace xt
