// SPDX-License-Identifier: MIT
#include "apply.h"

#include "gcra.h"
#include "ports.h"

#include <net/if.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <set>

namespace xt {
namespace {

// A live rule whose redirect is gone (State::redirect_gone) while an
// interface of its name is there again: applying the file points it there.
bool redirect_stale(const State& state, const RuleEntry& e) {
  auto gone = state.redirect_gone(e);
  return !gone || (*gone && if_nametoindex(e.spec.redirect->c_str()) != 0);
}

// Which of the rules going (diff.remove, by index) must go before the new
// ones come in, because a new one would not fit beside them: a range being
// moved (the new range crosses the old one without nesting), ranges nested
// more than four deep for a moment (the rules going with a range of that
// protocol), or more than the table's 4096 rules (as many rules going as
// it takes). The file was checked whole: once they are out, what it holds
// fits.
std::vector<bool> rules_in_the_way(const RulesDiff& diff, const std::vector<RuleEntry>& live) {
  auto crosses = [&](const RulesDiff::Change& gone) {
    const Match& g = gone.spec.match;
    return g.ports && std::ranges::any_of(diff.add, [&](const RulesDiff::Change& c) {
             const Match& m = c.spec.match;
             return m.ports && m.proto == g.proto && port_ranges_cross(*m.ports, *g.ports);
           });
  };
  std::vector<bool> first(diff.remove.size());
  std::set<std::string> crossing;
  for (size_t i = 0; i < diff.remove.size(); i++)
    if (crosses(diff.remove[i])) {
      first[i] = true;
      crossing.insert(rule_name(diff.remove[i].spec.cidr, diff.remove[i].spec.match));
    }
  // The new ranges beside the live ones but those crossing them.
  PortRangeTable ranges = empty_port_ranges();
  auto put_range = [&](const Match& m) { return add_match_range(ranges, m).has_value(); };
  for (const RuleEntry& e : live)
    if (!crossing.contains(rule_name(e.cidr, e.spec.match))) (void)put_range(e.spec.match);
  std::set<uint8_t> too_deep;  // port slots (ports.h) a new range does not fit in
  for (const auto& c : diff.add)
    if (!put_range(c.spec.match)) too_deep.insert(port_slot(*c.spec.match.proto));
  for (size_t i = 0; i < diff.remove.size(); i++) {
    const Match& g = diff.remove[i].spec.match;
    if (g.ports && too_deep.contains(port_slot(*g.proto))) first[i] = true;
  }
  const size_t want = live.size() + diff.add.size();
  const size_t over = want > XT_MAX_RULES ? want - XT_MAX_RULES : 0;
  for (size_t i = 0, freed = static_cast<size_t>(std::ranges::count(first, true)); i < first.size() && freed < over; i++)
    if (!first[i]) {
      first[i] = true;
      freed++;
    }
  return first;
}

// Whether the kernel's rule is the one want compiles to, but for what a
// replacement sets (the id, the generations, the previous limits and when),
// for where each window sits (a replacement keeps a window where it was:
// State::place_limits), and for the proofs' budget, a share a CPU, which
// a CPU brought online changes (the record's --verify-rate says the rest).
bool compiles_to(const xt_rule& live, const xt_rule& want) {
  const auto windows = [](const xt_rule& r) {
    std::vector<std::array<uint64_t, 4>> out;
    for (int p = 0; p < XT_MAX_LIMITS; p++)
      if (r.limits >> p & 1)
        out.push_back({r.limit[p].fill, r.limit[p].cost, r.limit[p].cap, uint64_t{r.byte_limits} >> p & 1});
    std::ranges::sort(out);
    return out;
  };
  // XT_RULE_PREV_ECN says what the version before was, not what this is;
  // XT_RULE_REKEYED that a change's walk has not finished, which the next
  // change makes up for (state.cpp, put_rule): no difference of the rule.
  const auto flags = [](const xt_rule& r) { return r.flags & ~(XT_RULE_PREV_ECN | XT_RULE_REKEYED); };
  return live.action == want.action && flags(live) == flags(want) && live.per_len == want.per_len &&
         live.remember == want.remember && live.ban_after == want.ban_after && live.ban_for == want.ban_for &&
         xt_same_limit(&live.new_src, &want.new_src) &&
         xt_same_limit(&live.total, &want.total) && live.fair_start == want.fair_start && windows(live) == windows(want);
}

}  // namespace

// The record says what the rule is, and the kernel's rule is checked too:
// a replacement killed between writing the record and swapping the rule
// (an OOM kill, a stop's timeout during serve's reload) left a record of
// the new rule over the old one, which the same command then found
// unchanged for good.
bool rule_unchanged(const State& state, const RuleEntry& live, const RuleSpec& want, const xt_rule& compiled) {
  return same_rule(live.spec, want) && compiles_to(live.rule, compiled) && !redirect_stale(state, live);
}

Result<RulesDiff> diff_rules(const State& state, const RulesFile& file) {
  auto live = state.rules();
  if (!live) return std::unexpected(live.error());
  RulesDiff diff;
  for (const FileRule& want : file.rules) {
    const RuleEntry* now = find_rule(*live, want.spec.cidr, want.spec.match);
    if (!now)
      diff.add.push_back({want.spec, want.compiled, std::nullopt});
    else if (!rule_unchanged(state, *now, want.spec, want.compiled))
      diff.change.push_back({want.spec, want.compiled, *now});
    else
      diff.unchanged++;
  }
  for (const RuleEntry& e : *live) {
    const bool wanted = std::ranges::any_of(file.rules, [&](const FileRule& r) { return r.spec.cidr == e.cidr && r.spec.match == e.spec.match; });
    if (!wanted) diff.remove.push_back({e.spec, e.rule, e});
  }

  auto lists = state.blocklists();
  if (!lists) return std::unexpected(lists.error());
  for (size_t i = 0; i < file.blocklists.size(); i++) {
    const FileBlocklist& want = file.blocklists[i];
    const size_t entries = want.entries ? want.entries->size() : 0;
    auto now = std::ranges::find_if(*lists, [&](const State::Blocklist& b) { return want.name == b.list.name; });
    if (now == lists->end()) {
      diff.lists_add.push_back({want.name, want.file, entries, std::nullopt, i});
      continue;
    }
    bool same = true;
    if (want.entries) {
      auto have = state.blocklist_cidrs(now->slot);
      if (!have) return std::unexpected(have.error());
      same = *have == *want.entries;
    }
    if (same)
      diff.lists_unchanged++;
    else
      diff.lists_change.push_back({want.name, want.file, entries, now->list.entries, i});
  }
  // A list the file does not name goes, but the fleet's: another host
  // loaded it, and deleting it here would delete it on every host.
  for (const State::Blocklist& b : *lists)
    if (std::ranges::none_of(file.blocklists, [&](const FileBlocklist& f) { return f.name == b.list.name; })) {
      if (b.list.used == XT_BLOCKLIST_BY_FLEET)
        diff.lists_fleet++;
      else
        diff.lists_remove.push_back({b.list.name, "", 0, b.list.entries, 0});
    }
  return diff;
}

RulesDiff diff_from_nothing(const RulesFile& file) {
  RulesDiff all;
  for (const FileRule& r : file.rules) all.add.push_back({r.spec, r.compiled, std::nullopt});
  for (size_t i = 0; i < file.blocklists.size(); i++) {
    const FileBlocklist& b = file.blocklists[i];
    all.lists_add.push_back({b.name, b.file, b.entries ? b.entries->size() : 0, std::nullopt, i});
  }
  return all;
}

std::string diff_text(const RulesDiff& diff) {
  std::string out;
  for (const auto& c : diff.add) out += "+ " + rule_name(c.spec.cidr, c.spec.match) + " " + describe(c.spec) + "\n";
  for (const auto& c : diff.change)
    out += "~ " + rule_name(c.spec.cidr, c.spec.match) + " " + describe(c.live->spec) + "\n    -> " + describe(c.spec) + "\n";
  for (const auto& c : diff.remove) out += "- " + rule_name(c.spec.cidr, c.spec.match) + " " + describe(c.spec) + "\n";
  for (const auto& l : diff.lists_add)
    out += "+ blocklist " + l.name + " from " + l.file + " (" + std::to_string(l.entries) + " prefixes)\n";
  for (const auto& l : diff.lists_change)
    out += "~ blocklist " + l.name + " from " + l.file + " (" + std::to_string(*l.live_entries) + " -> " +
           std::to_string(l.entries) + " prefixes)\n";
  for (const auto& l : diff.lists_remove)
    out += "- blocklist " + l.name + " (" + std::to_string(*l.live_entries) + " prefixes)\n";
  out += std::to_string(diff.add.size()) + " to add, " + std::to_string(diff.change.size()) + " to change, " +
         std::to_string(diff.remove.size()) + " to remove, " + std::to_string(diff.unchanged) + " unchanged\n";
  const size_t lists = diff.lists_add.size() + diff.lists_change.size() + diff.lists_remove.size() + diff.lists_unchanged;
  if (lists)
    out += "blocklists: " + std::to_string(diff.lists_add.size()) + " to load, " +
           std::to_string(diff.lists_change.size()) + " to reload, " + std::to_string(diff.lists_remove.size()) +
           " to delete, " + std::to_string(diff.lists_unchanged) + " unchanged\n";
  if (diff.lists_fleet)
    out += "blocklists the fleet told and the file does not name: " + std::to_string(diff.lists_fleet) +
           " kept (another host's to delete)\n";
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
  auto lists = [](const std::vector<RulesDiff::ListChange>& changes) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& l : changes) {
      nlohmann::json j = {{"name", l.name}};
      if (!l.file.empty()) j["file"] = l.file, j["entries"] = l.entries;
      if (l.live_entries) j["live_entries"] = *l.live_entries;
      out.push_back(j);
    }
    return out;
  };
  return {{"add", list(diff.add)},
          {"change", list(diff.change)},
          {"remove", list(diff.remove)},
          {"unchanged", diff.unchanged},
          {"blocklists",
           {{"add", lists(diff.lists_add)},
            {"change", lists(diff.lists_change)},
            {"remove", lists(diff.lists_remove)},
            {"unchanged", diff.lists_unchanged},
            {"fleet", diff.lists_fleet}}}};
}

Result<void> apply_rules(State& state, const RulesFile& file, const RulesDiff& diff) {
  std::vector<const RulesDiff::Change*> done;
  std::set<const RulesDiff::Change*> removals;  // of done, the rules going
  // The lists changed so far, with what they held before (nothing: new).
  struct ListBefore {
    std::vector<Cidr> cidrs;
    uint64_t loaded_unix = 0;
    bool by_fleet = false;
  };
  std::vector<std::pair<std::string, std::optional<ListBefore>>> lists_done;
  std::optional<State::SlotsReady> ready;  // the slots the new rules take, freed in one walk
  std::optional<State::ChangesCaughtUp> caught;  // the changing rules' buckets, brought up in one walk
  auto undo = [&](const Error& why) -> Result<void> {
    ready.reset();
    caught.reset();
    // What the undo puts back, made ready in one walk each, as the apply's
    // own steps were: the slots of the rules going it adds again, and the
    // buckets of the rules it changed back (best effort: without them, each
    // rule walks on its own, as a `rule add` does).
    size_t readding = 0;
    std::vector<std::pair<RuleSpec, xt_rule>> changing_back;
    for (const auto* c : done) {
      if (!c->live) continue;
      if (!removals.contains(c))
        changing_back.emplace_back(c->live->spec, c->live->rule);
      else if (!state.rule_of(c->spec.cidr, c->spec.match))
        readding++;
    }
    if (auto slots = state.ready_new_slots(readding)) ready.emplace(std::move(*slots));
    if (auto walked = state.catch_up_changes(changing_back)) caught.emplace(std::move(*walked));
    for (auto it = lists_done.rbegin(); it != lists_done.rend(); ++it) {
      if (it->second)
        (void)state.load_blocklist(it->first, it->second->cidrs, it->second->loaded_unix, it->second->by_fleet);
      else
        (void)state.del_blocklist(it->first);
    }
    // Best effort: an undo the kernel also refuses is reported below.
    for (auto it = done.rbegin(); it != done.rend();) {
      if (!(*it)->live) {
        // The rules added (one after another in done), deleted together:
        // the rules read once and one walk, not one of each a rule. One
        // that did not go in is left out, or the kernel would refuse the
        // whole group.
        std::vector<std::pair<Cidr, Match>> added;
        for (; it != done.rend() && !(*it)->live; ++it)
          if (state.rule_of((*it)->spec.cidr, (*it)->spec.match))
            added.emplace_back((*it)->spec.cidr, (*it)->spec.match);
        (void)state.del_rules(added);
        continue;
      }
      const auto* c = *it++;
      // A rule going that the deletions did not reach is there as it was.
      if (removals.contains(c) && state.rule_of(c->spec.cidr, c->spec.match)) continue;
      (void)state.put_rule(c->live->spec, c->live->rule);
    }
    ready.reset();
    caught.reset();
    return std::unexpected(Error{why.kind, why.message + " (the rules and lists changed before it were restored)"});
  };
  // New rules go in before old ones go out, so no source is unlimited
  // meanwhile, but for the rules in their way (rules_in_the_way).
  auto live = state.rules();
  if (!live) return std::unexpected(live.error());
  const std::vector<bool> first = rules_in_the_way(diff, *live);
  // The rules going, before the new ones (first) or after: deleted
  // together, with the rules read once and one walk for all their buckets.
  auto remove = [&](bool before) -> Result<void> {
    std::vector<std::pair<Cidr, Match>> which;
    for (size_t i = 0; i < diff.remove.size(); i++)
      if (first[i] == before) {
        // Undone by adding it back (its buckets are gone); also where the
        // deletions failed part-way, or before it.
        done.push_back(&diff.remove[i]);
        removals.insert(&diff.remove[i]);
        which.emplace_back(diff.remove[i].spec.cidr, diff.remove[i].spec.match);
      }
    if (auto ok = state.del_rules(which); !ok) return undo(ok.error());
    return {};
  };
  if (auto ok = remove(true); !ok) return ok;
  if (auto slots = state.ready_new_slots(diff.add.size()); !slots)
    return undo(slots.error());
  else
    ready.emplace(std::move(*slots));
  std::vector<std::pair<RuleSpec, xt_rule>> changing;
  for (const auto& c : diff.change) changing.emplace_back(c.spec, c.compiled);
  if (auto walked = state.catch_up_changes(changing); !walked)
    return undo(walked.error());
  else
    caught.emplace(std::move(*walked));
  for (const auto* list : {&diff.add, &diff.change}) {
    for (const auto& c : *list) {
      // Undone also where the put failed: it may fail after the rule is in
      // (publishing it, sweeping another --per's buckets), and that rule
      // stayed as the file has it while apply said the rules were restored.
      // Undoing one that did not go in is a delete the kernel refuses, or
      // the live rule put back as it is.
      done.push_back(&c);
      if (auto ok = state.put_rule(c.spec, c.compiled); !ok) return undo(ok.error());
    }
  }
  ready.reset();
  caught.reset();
  // The lists, between the rules added and the rules removed: each load
  // or delete switches the data path's union at once (blocklist.cpp).
  auto live_list = [&](const std::string& name) -> Result<std::optional<ListBefore>> {
    auto lists = state.blocklists();
    if (!lists) return std::unexpected(lists.error());
    for (const auto& b : *lists)
      if (name == b.list.name) {
        auto cidrs = state.blocklist_cidrs(b.slot);
        if (!cidrs) return std::unexpected(cidrs.error());
        return std::optional(ListBefore{std::move(*cidrs), b.list.loaded_unix, b.list.used == XT_BLOCKLIST_BY_FLEET});
      }
    return std::optional<ListBefore>();
  };
  auto drop_list = [&](const RulesDiff::ListChange& l) -> Result<void> {
    auto before = live_list(l.name);
    if (!before) return undo(before.error());
    if (auto ok = state.del_blocklist(l.name); !ok) return undo(ok.error());
    lists_done.emplace_back(l.name, std::move(*before));
    return {};
  };
  // Lists going go after the new ones are in, unless the new ones would
  // not fit beside them.
  const size_t live_lists =
      diff.lists_change.size() + diff.lists_unchanged + diff.lists_remove.size() + diff.lists_fleet;
  const bool room_first = live_lists + diff.lists_add.size() > XT_MAX_BLOCKLISTS;
  if (room_first)
    for (const auto& l : diff.lists_remove)
      if (auto ok = drop_list(l); !ok) return ok;
  for (const auto* list : {&diff.lists_add, &diff.lists_change}) {
    for (const auto& l : *list) {
      const FileBlocklist& want = file.blocklists.at(l.index);
      if (!want.entries) return undo(Error{ErrorKind::Usage, "blocklist " + want.name + ": its file was not read"});
      auto before = live_list(l.name);
      if (!before) return undo(before.error());
      if (auto ok = state.load_blocklist(l.name, *want.entries); !ok)
        return undo(Error{ok.error().kind, "blocklist " + l.name + " from " + want.file + ": " + ok.error().message});
      lists_done.emplace_back(l.name, std::move(*before));
    }
  }
  if (!room_first)
    for (const auto& l : diff.lists_remove)
      if (auto ok = drop_list(l); !ok) return ok;

  if (auto ok = remove(false); !ok) return ok;

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
