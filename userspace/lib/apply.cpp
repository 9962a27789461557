// SPDX-License-Identifier: MIT
#include "apply.h"

#include "ports.h"

#include <net/if.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace xt {
namespace {

// A live rule whose redirect is gone (State::redirect_gone) while an
// interface of its name is there again: applying the file points it there.
bool redirect_stale(const State& state, const RuleEntry& e) {
  auto gone = state.redirect_gone(e);
  return !gone || (*gone && if_nametoindex(e.spec.redirect->c_str()) != 0);
}

}  // namespace

Result<RulesDiff> diff_rules(const State& state, const RulesFile& file) {
  auto live = state.rules();
  if (!live) return std::unexpected(live.error());
  RulesDiff diff;
  for (const FileRule& want : file.rules) {
    auto now = std::ranges::find_if(*live, [&](const RuleEntry& e) { return e.cidr == want.spec.cidr && e.spec.match == want.spec.match; });
    if (now == live->end())
      diff.add.push_back({want.spec, want.compiled, std::nullopt});
    else if (!same_rule(now->spec, want.spec) || redirect_stale(state, *now))
      diff.change.push_back({want.spec, want.compiled, *now});
    else
      diff.unchanged++;
  }
  for (const RuleEntry& e : *live) {
    const bool wanted = std::ranges::any_of(file.rules, [&](const FileRule& r) { return r.spec.cidr == e.cidr && r.spec.match == e.spec.match; });
    if (!wanted) diff.remove.push_back({e.spec, e.rule, e});
  }
  return diff;
}

RulesDiff diff_from_nothing(const RulesFile& file) {
  RulesDiff all;
  for (const FileRule& r : file.rules) all.add.push_back({r.spec, r.compiled, std::nullopt});
  return all;
}

std::string diff_text(const RulesDiff& diff) {
  std::string out;
  for (const auto& c : diff.add) out += "+ " + rule_name(c.spec.cidr, c.spec.match) + " " + describe(c.spec) + "\n";
  for (const auto& c : diff.change)
    out += "~ " + rule_name(c.spec.cidr, c.spec.match) + " " + describe(c.live->spec) + "\n    -> " + describe(c.spec) + "\n";
  for (const auto& c : diff.remove) out += "- " + rule_name(c.spec.cidr, c.spec.match) + " " + describe(c.spec) + "\n";
  out += std::to_string(diff.add.size()) + " to add, " + std::to_string(diff.change.size()) + " to change, " +
         std::to_string(diff.remove.size()) + " to remove, " + std::to_string(diff.unchanged) + " unchanged\n";
  return out;
}

nlohmann::json diff_json(const RulesDiff& diff) {
  auto list = [](const std::vector<RulesDiff::Change>& changes) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : changes) {
      // A rule not live yet has no slot: its id and generation are the
      // compiled form's zeros until it is applied.
      nlohmann::json j = rule_json({c.spec.cidr, c.compiled, c.spec});
      if (c.live && !same_rule(c.live->spec, c.spec)) j["was"] = rule_json(*c.live);
      out.push_back(j);
    }
    return out;
  };
  return {{"add", list(diff.add)},
          {"change", list(diff.change)},
          {"remove", list(diff.remove)},
          {"unchanged", diff.unchanged}};
}

Result<void> apply_rules(State& state, const RulesFile& file, const RulesDiff& diff) {
  std::vector<const RulesDiff::Change*> done;
  auto undo = [&](const Error& why) -> Result<void> {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      const auto* c = *it;
      // Best effort: an undo the kernel also refuses is reported below.
      if (c->live)
        (void)state.put_rule(c->live->spec, c->live->rule);
      else
        (void)state.del_rule(c->spec.cidr, c->spec.match);
    }
    return std::unexpected(Error{why.kind, why.message + " (the rules changed before it were restored)"});
  };
  // New rules go in before old ones go out, so no source is unlimited
  // meanwhile; but a rule going whose port range overlaps a new rule's
  // without nesting (a range being moved) goes first, or the new one could
  // not go in.
  auto in_the_way = [&](const RulesDiff::Change& gone) {
    const Match& g = gone.spec.match;
    return g.ports && std::ranges::any_of(diff.add, [&](const RulesDiff::Change& c) {
             const Match& m = c.spec.match;
             return m.ports && m.proto == g.proto && port_ranges_cross(*m.ports, *g.ports);
           });
  };
  auto remove = [&](const RulesDiff::Change& c) -> Result<void> {
    if (auto ok = state.del_rule(c.spec.cidr, c.spec.match); !ok) return undo(ok.error());
    done.push_back(&c);  // undone by adding it back (its buckets are gone)
    return {};
  };
  for (const auto& c : diff.remove)
    if (in_the_way(c))
      if (auto ok = remove(c); !ok) return ok;
  for (const auto* list : {&diff.add, &diff.change}) {
    for (const auto& c : *list) {
      if (auto ok = state.put_rule(c.spec, c.compiled); !ok) return undo(ok.error());
      done.push_back(&c);
    }
  }
  for (const auto& c : diff.remove)
    if (!in_the_way(c))
      if (auto ok = remove(c); !ok) return ok;

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
