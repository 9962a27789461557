// SPDX-License-Identifier: MIT
// xthrottle rule add CIDR [--proto tcp|udp|icmp|icmpv6|N] [--port P|P-Q] [--syn]
//                         [--per LEN] [--rate N/UNIT [--burst N]]...
//                         [--bandwidth N UNIT/PERIOD [--burst-bytes N]]...
//                         [--total N/UNIT | --total-bandwidth N UNIT/PERIOD] [--new-rate N/UNIT]
//                         [--verify tcp|off] [--verify-rate N/UNIT] [--remember DURATION]
//                         [--allow | --deny] [--over drop|ecn|redirect:IFACE [--over-reasons KIND,...]]
//                         [--ban-after DURATION --ban-for DURATION] [--dry-run]
// xthrottle rule del CIDR [--proto ...] [--port ...] [--syn]
// xthrottle rule list [--json]
#include <iostream>
#include <memory>
#include <vector>

#include "apply.h"
#include "cli.h"
#include "map_util.h"
#include "rules.h"

namespace xt::cli {
namespace {

// A rule's match as given on the command line.
struct MatchOptions {
  std::string proto, port;
  bool syn = false;
};

void add_match_options(CLI::App* cmd, MatchOptions& m) {
  cmd->add_option("--proto", m.proto, "Match this IP protocol only: tcp, udp, icmp, icmpv6, sctp or a number");
  cmd->add_option("--port", m.port, "Match this destination port or range only (TCP, UDP): 53, 1024-65535");
  cmd->add_flag("--syn", m.syn, "Match TCP SYNs without ACK only (new connections); implies --proto tcp");
}

void put_match_words(const MatchOptions& m, RuleWords& words) {
  if (!m.proto.empty()) words.proto = m.proto;
  if (!m.port.empty()) words.port = m.port;
  words.syn = m.syn;
}

struct RuleAddOptions {
  MatchOptions match;
  std::string cidr, per, new_rate, verify, verify_rate, remember, total, over, over_reasons, ban_after, ban_for, scope;
  // Each may be given several times (several windows).
  std::vector<std::string> rate, burst, burst_bytes;
  std::vector<std::string> bandwidth;        // each one word (10Mbit/s) or two (10 Mbit/s)
  std::vector<std::string> total_bandwidth;  // the same, once
  bool allow = false, deny = false, dry_run = false;
};

// The bandwidths a bandwidth option's words make, every occurrence's
// together: a number alone goes with the unit after it (10 Mbit/s).
std::vector<std::string> bandwidth_values(const std::vector<std::string>& parts) {
  std::vector<std::string> out;
  for (size_t i = 0; i < parts.size(); i++) {
    const std::string& part = parts[i];
    const bool number = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    if (number && i + 1 < parts.size())
      out.push_back(part + " " + parts[++i]);
    else
      out.push_back(part);
  }
  return out;
}

// The options as the words the one spec builder takes (rules.h).
Result<RuleSpec> spec_of(RuleAddOptions o) {
  // An option that may be given several times takes the words after it
  // while the CIDR is not yet given (`rule add --rate 100/s 198.51.100.0/24`),
  // and `--bandwidth N UNIT/s` may take two: the CIDR (or bare address) that
  // one of them took is given back. No rate, burst or bandwidth reads as one.
  for (std::vector<std::string>* took : {&o.bandwidth, &o.total_bandwidth, &o.rate, &o.burst, &o.burst_bytes})
    if (o.cidr.empty() && !took->empty() && parse_cidr(took->back()) && !parse_bandwidth(took->back())) {
      o.cidr = took->back();
      took->pop_back();
    }
  if (o.cidr.empty()) return usage_error("rule add needs a CIDR, e.g. rule add 198.18.0.0/15 --rate 100/s");
  auto cidr = parse_source_cidr(o.cidr);
  if (!cidr) return std::unexpected(cidr.error());
  auto given = [](const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); };
  RuleWords words;
  if (o.allow) words.action = "allow";
  if (o.deny) words.action = "deny";
  words.per = given(o.per);
  words.rate = o.rate;
  words.burst = o.burst;
  words.burst_bytes = o.burst_bytes;
  words.new_rate = given(o.new_rate);
  words.total = given(o.total);
  const std::vector<std::string> total_bandwidth = bandwidth_values(o.total_bandwidth);
  if (total_bandwidth.size() > 1) return usage_error("--total-bandwidth is given once: a rule has one total");
  if (!total_bandwidth.empty()) words.total_bandwidth = total_bandwidth[0];
  words.verify = given(o.verify);
  words.verify_rate = given(o.verify_rate);
  words.remember = given(o.remember);
  words.over = given(o.over);
  words.over_reasons = given(o.over_reasons);
  words.ban_after = given(o.ban_after);
  words.ban_for = given(o.ban_for);
  words.scope = given(o.scope);
  words.bandwidth = bandwidth_values(o.bandwidth);
  words.dry_run = o.dry_run;
  put_match_words(o.match, words);
  return build_spec(*cidr, words, command_line_words());
}

int run_rule_add(const Globals& g, const RuleAddOptions& o) {
  auto spec = spec_of(o);
  if (!spec) return fail(spec.error());
  // Checked whole before the pins are locked (which may mount a BPF file
  // system and make the directory): a rule that cannot be compiled changes
  // nothing and needs no privilege to be told so.
  auto checked_hz = tick_rate_to_check(g.pin_dir);
  if (!checked_hz) return fail(checked_hz.error());
  auto rule = compile_rule(*spec, *checked_hz, online_cpus());
  if (!rule) return fail(rule.error());
  if (auto ok = redirect_ifindex(*spec); !ok) return fail(ok.error());
  // Under the lock, the state opened once: limits are compiled into its
  // kernel ticks (or the kernel's, for a state about to be made).
  auto locked = lock_pins(g.pin_dir);
  if (!locked) return fail(locked.error());
  auto hz = tick_rate_of(*locked, *checked_hz);
  if (!hz) return fail(hz.error());
  if (*hz != *checked_hz) rule = compile_rule(*spec, *hz, online_cpus());
  if (!rule) return fail(rule.error());
  if (auto ok = create_if_missing(*locked, g.pin_dir, *hz); !ok) return fail(ok.error());
  // Run again as it was (a config-management job every minute): nothing to
  // do. A replacement would hand the rule a full new-source budget and
  // total, and let a flood's newcomers in at each run.
  auto live = locked->state->rules();
  if (!live) return fail(live.error());
  const RuleEntry* now = find_rule(*live, spec->cidr, spec->match);
  if (now && rule_unchanged(*locked->state, *now, *spec, *rule)) {
    std::cout << "unchanged " << rule_name(spec->cidr, spec->match) << " " << describe(*spec) << "\n";
    for (const auto& w : rule_warnings(*spec, *hz)) std::cerr << "xthrottle: warning: " << w << "\n";
    return 0;
  }
  auto replaced = locked->state->put_rule(*spec, *rule);
  if (!replaced) return fail(replaced.error());
  std::cout << (*replaced ? "replaced " : "added ") << rule_name(spec->cidr, spec->match) << " " << describe(*spec)
            << "\n";
  for (const auto& w : rule_warnings(*spec, *hz)) std::cerr << "xthrottle: warning: " << w << "\n";
  return 0;
}

int run_rule_del(const Globals& g, const std::string& cidr_text, const MatchOptions& m) {
  auto cidr = parse_cidr(cidr_text);
  if (!cidr) return fail(cidr.error());
  RuleWords words;
  put_match_words(m, words);
  auto spec = build_spec(*cidr, words, command_line_words());
  if (!spec) return fail(spec.error());
  if (auto ok = check_match(*spec); !ok) return fail(ok.error());
  auto locked = open_locked(g.pin_dir);
  if (!locked) return fail(locked.error());
  if (auto ok = locked->state->del_rule(*cidr, spec->match); !ok) return fail(ok.error());
  std::cout << "deleted " << rule_name(*cidr, spec->match) << "\n";
  return 0;
}

int run_rule_list(const Globals& g, bool json) {
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  auto rules = state->rules();
  if (!rules) return fail(rules.error());
  emit(json, rules_json(*rules), rules_text(*rules));
  return 0;
}

}  // namespace

void add_rule_commands(CLI::App& app, const Globals& g, int& rc) {
  auto* rule = app.add_subcommand("rule", "Manage rules")->require_subcommand(1);

  auto o = std::make_shared<RuleAddOptions>();
  auto* add = rule->add_subcommand("add", "Add a rule, or replace the rule for the same CIDR and match in place");
  // Not ->required(): `--bandwidth 10Mbit/s CIDR` hands CLI11 the CIDR as the
  // bandwidth's optional second word; spec_of() takes it back.
  add->add_option("CIDR", o->cidr, "Source prefix, e.g. 198.18.0.0/15 or 2001:db8::/32");
  add_match_options(add, o->match);
  add->add_option("--per", o->per, "Prefix length one bucket covers (default 32 for IPv4, 64 for IPv6)");
  add->add_option("--rate", o->rate,
                  "Packets per time: 100/s, 6000/min, 50000/hour, 1000/day; several times for several windows "
                  "(--rate 100/min --rate 1000/day), a packet passing only if each allows it");
  add->add_option("--burst", o->burst,
                  "Packets admitted at once (default: the count in --rate); with several --rate, one for each, in "
                  "the same order");
  add->add_option("--bandwidth", o->bandwidth, "Bytes per time: 10Mbit/s, 500kbit/s, 2MB/s, 1GB/day; several times "
                  "for several windows")->expected(1, 2);
  add->add_option("--burst-bytes", o->burst_bytes,
                  "Bytes admitted at once (default: the bytes in --bandwidth, one second's worth of a per-second "
                  "one); with several --bandwidth, one for each, in the same order");
  add->add_option("--total", o->total,
                  "Packets per time the rule passes from all its sources together (200000/s), shared fairly: "
                  "while it binds, the heaviest sources give way first");
  add->add_option("--total-bandwidth", o->total_bandwidth,
                  "Bytes per time the rule passes from all its sources together (1Gbit/s), shared fairly")
      ->expected(1, 2);
  add->add_option("--new-rate", o->new_rate,
                  "Packets per time admitted from sources not yet tracked (default " +
                      std::to_string(XT_DEFAULT_NEW_RATE) + "/s)");
  add->add_option("--verify", o->verify,
                  "tcp (default): a TCP source over the new-source budget may prove its address and get in; off: "
                  "it is dropped");
  add->add_option("--verify-rate", o->verify_rate,
                  "Proofs (SYN-ACKs) sent per time at most (default " + std::to_string(XT_DEFAULT_VERIFY_RATE) + "/s)");
  add->add_option("--remember", o->remember,
                  "How long a source that behaved is let in outside the new-source budget: 30min, 24h (default), 0");
  auto* allow = add->add_flag("--allow", o->allow, "Never limit these sources");
  auto* deny = add->add_flag("--deny", o->deny, "Drop everything from these sources");
  allow->excludes(deny);
  add->add_option("--over", o->over,
                  "What becomes of what the rule drops: drop (default); ecn to mark ECN-capable packets "
                  "Congestion Experienced past half the burst and through an overdraft of half a burst, so TCP "
                  "slows down without losing segments (other packets meet the burst; beyond the overdraft all "
                  "are dropped); or redirect:IFACE to send it out IFACE "
                  "instead (to a scrubber, a honeypot or a capture box); dropped while IFACE is gone");
  add->add_option("--over-reasons", o->over_reasons,
                  "Which drops --over redirect sends: over_limit, over_total, new_source, denied, separated by "
                  "commas (default: every kind the rule has)");
  add->add_option("--ban-after", o->ban_after,
                  "Ban a source that stays over its limit this long without a break (30s, 5min; with --ban-for)");
  add->add_option("--ban-for", o->ban_for, "How long such a source is banned: 10min, 24h (see `xthrottle bans`)");
  add->add_option("--scope", o->scope,
                  "host (default) or fleet: the --rate windows are shared by every host of `serve --cluster` "
                  "(each takes from its buckets what the others passed)");
  add->add_flag("--dry-run", o->dry_run, "Count what would be dropped, drop nothing");
  add->callback([&g, &rc, o] { rc = run_rule_add(g, *o); });

  auto cidr = std::make_shared<std::string>();
  auto match = std::make_shared<MatchOptions>();
  auto* del = rule->add_subcommand("del", "Delete the rule for exactly this CIDR and match");
  del->add_option("CIDR", *cidr, "Source prefix")->required();
  add_match_options(del, *match);
  del->callback([&g, &rc, cidr, match] { rc = run_rule_del(g, *cidr, *match); });

  auto json = std::make_shared<bool>(false);
  auto* list = rule->add_subcommand("list", "List the rules");
  list->add_flag("--json", *json, "JSON output");
  list->callback([&g, &rc, json] { rc = run_rule_list(g, *json); });
}

}  // namespace xt::cli
