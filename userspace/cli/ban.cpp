// SPDX-License-Identifier: MIT
// xthrottle ban add CIDR --for DURATION
// xthrottle ban del CIDR
// xthrottle bans [--json]
#include <algorithm>
#include <iostream>
#include <memory>

#include "cli.h"
#include "format.h"

namespace xt::cli {
namespace {

int run_ban_add(const Globals& g, const std::string& cidr_text, const std::string& duration) {
  auto cidr = parse_source_cidr(cidr_text);
  if (!cidr) return fail(cidr.error());
  auto seconds = parse_duration("--for", duration, false);
  if (!seconds) return fail(seconds.error());
  if (*seconds == 0) return fail(usage_error("bad --for '" + duration + "': a ban lasts some time (10min, 24h)").error());
  // Under the lock; the state made if there is none yet, as `rule add` does.
  auto locked = lock_pins(g.pin_dir);
  if (!locked) return fail(locked.error());
  auto hz = tick_rate_of(*locked);
  if (!hz) return fail(hz.error());
  if (auto ok = create_if_missing(*locked, g.pin_dir, *hz); !ok) return fail(ok.error());
  if (auto ok = locked->state->add_ban(*cidr, *seconds); !ok) return fail(ok.error());
  std::cout << "banned " << format_cidr(*cidr) << " for " << format_duration(*seconds) << "\n";
  return 0;
}

int run_ban_del(const Globals& g, const std::string& cidr_text) {
  auto cidr = parse_cidr(cidr_text);
  if (!cidr) return fail(cidr.error());
  auto locked = open_locked(g.pin_dir);
  if (!locked) return fail(locked.error());
  if (auto ok = locked->state->del_ban(*cidr); !ok) return fail(ok.error());
  std::cout << "lifted the ban of " << format_cidr(*cidr) << "\n";
  return 0;
}

int run_bans(const Globals& g, bool json) {
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  auto bans = state->bans();
  if (!bans) return fail(bans.error());
  auto now = state->now();
  if (!now) return fail(now.error());
  auto cfg = state->config();
  if (!cfg) return fail(cfg.error());
  auto seconds = [&](uint64_t ticks) { return static_cast<double>(ticks) / cfg->hz; };
  auto rules = state->rules();
  if (!rules) return fail(rules.error());
  // The rule that made a ban (--ban-for), by its id; none for `ban add`.
  // A rule's ban whose rule is not there any more reads as deleted too:
  // marking a deleted rule's bans is best effort (State::delete_rule).
  auto made_by = [&](const xt_ban& ban) -> nlohmann::json {
    if (ban.rule == XT_BAN_BY_DELETED_RULE) return "(deleted rule)";
    if (!XT_BAN_BY_RULE(ban)) return nullptr;
    for (const auto& e : *rules)
      if (e.rule.id == ban.rule - 1) return rule_name(e.cidr, e.spec.match);
    return "(deleted rule)";
  };
  nlohmann::json j = nlohmann::json::array();
  std::string text = bans->empty() ? "no bans\n" : fmt("%-44s %12s %12s  %s\n", "CIDR", "LEFT", "FOR", "BY");
  for (const auto& b : *bans) {
    // A ban that ended since bans() read the clock: none left, not the
    // unsigned difference's 2^64 ticks.
    const double left = ban_ended(b.ban, *now) ? 0.0 : seconds(b.ban.until - *now);
    const double total = seconds(b.ban.until - b.ban.since);
    const nlohmann::json rule = made_by(b.ban);
    const bool fleet = b.ban.rule == XT_BAN_BY_FLEET;
    j.push_back({{"cidr", format_cidr(b.cidr)},
                 {"seconds_left", left},
                 {"seconds", total},
                 {"rule", rule},
                 {"fleet", fleet}});
    // Who made it: a rule (--ban-for), another host of the fleet, or ban add.
    const std::string by = rule.is_string() ? rule.get<std::string>() : fleet ? "(fleet)" : "(ban add)";
    text += fmt("%-44s %12s %12s  %s\n", format_cidr(b.cidr).c_str(),
                format_duration(static_cast<uint64_t>(left + 0.5)).c_str(),
                format_duration(static_cast<uint64_t>(total + 0.5)).c_str(), by.c_str());
  }
  emit(json, j, text);
  return 0;
}

}  // namespace

void add_ban_commands(CLI::App& app, const Globals& g, int& rc) {
  auto* ban = app.add_subcommand("ban", "Drop a prefix outright for a while, whatever its rule (not an --allow "
                                        "rule's)")
                  ->require_subcommand(1);
  auto cidr = std::make_shared<std::string>();
  auto duration = std::make_shared<std::string>();
  auto* add = ban->add_subcommand("add", "Ban a prefix (a ban of the same prefix is replaced)");
  add->add_option("CIDR", *cidr, "Source prefix, e.g. 203.0.113.7 or 2001:db8::/48")->required();
  add->add_option("--for", *duration, "How long: 10min, 24h, 7d")->required();
  add->callback([&g, &rc, cidr, duration] { rc = run_ban_add(g, *cidr, *duration); });
  auto del_cidr = std::make_shared<std::string>();
  auto* del = ban->add_subcommand("del", "Lift the ban of exactly this prefix");
  del->add_option("CIDR", *del_cidr, "Source prefix")->required();
  del->callback([&g, &rc, del_cidr] { rc = run_ban_del(g, *del_cidr); });

  auto json = std::make_shared<bool>(false);
  auto* list = app.add_subcommand("bans", "The bans in force, with the time left");
  list->add_flag("--json", *json, "JSON output");
  list->callback([&g, &rc, json] { rc = run_bans(g, *json); });
}

}  // namespace xt::cli
