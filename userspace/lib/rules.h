// SPDX-License-Identifier: MIT
// Rules: what the operator writes (a CIDR and the options of `rule add`, or
// the keys of a rules file), the one builder that checks those words for the
// command line and for files alike, the limits the defaults make of them,
// and the compiled form the XDP program meters with. The kernel keeps only
// the compiled form (struct xt_rule); the words live with the controller, in
// a pinned map the data path never reads. Pure: unit-tested on the host.
#pragma once

#include <xthrottle/abi.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "policy.h"

namespace xt {

// A rule as the operator wrote it. Unset options take their defaults.
struct RuleSpec {
  Cidr cidr;
  Match match;  // with the CIDR, what names the rule
  xt_action action = XT_ACT_LIMIT;
  std::optional<int> per;
  // The windows (docs/design.md, "Windows"): packet windows (--rate, given
  // once or several times) with their bursts (none, or one for each, in the
  // same order), and byte windows (--bandwidth) with theirs; each list in
  // order of period, the shortest first.
  std::vector<Rate> rates;
  std::vector<uint64_t> bursts;
  std::vector<Bandwidth> bandwidths;
  std::vector<uint64_t> burst_bytes;
  // What the rule passes from all its sources together, packets or bytes
  // (one of them), shared fairly while it binds (docs/design.md, "Totals").
  std::optional<Rate> total;
  std::optional<Bandwidth> total_bandwidth;
  std::optional<Rate> new_rate;  // default: XT_DEFAULT_NEW_RATE per second
  std::optional<bool> verify;        // --verify tcp|off (default tcp)
  std::optional<Rate> verify_rate;   // default: XT_DEFAULT_VERIFY_RATE per second
  std::optional<uint64_t> remember;  // seconds (default XT_DEFAULT_REMEMBER_SECONDS); 0: none
  bool dry_run = false;
  // What becomes of what the rule would drop (--over): dropped, or sent out
  // the interface `redirect` (--over redirect:IFACE); of the kinds of drop
  // in over_kinds (a bit per enum xt_over_kind, --over-reasons), or if none
  // are given every kind the rule has (over_kinds_of).
  std::optional<std::string> redirect;
  std::optional<uint8_t> over_kinds;
  // --over ecn: an ECN-capable packet that passes with less than half of a
  // limit's burst left is marked Congestion Experienced (XT_RULE_ECN).
  bool ecn = false;
  // --ban-after, --ban-for (seconds, both or neither): a source over its
  // limit without a break for ban_after is banned for ban_for.
  std::optional<uint64_t> ban_after, ban_for;
  // --scope fleet: the rule's packet windows are shared by every host of
  // serve's --cluster (fleet.h): each host takes what the others passed.
  bool fleet = false;
};

// The names of the kinds of a rule's drops (enum xt_over_kind), as `stats`
// names their reasons: over_limit, over_total, new_source, denied.
const char* over_kind_name(int kind);
// "over_limit,new_source" to a bit per kind; and back.
Result<uint8_t> parse_over_kinds(std::string_view what, std::string_view text);
std::string format_over_kinds(uint8_t kinds);
// The kinds a rule sends elsewhere: those given, or every kind of drop the
// rule has (a limit rule: over_limit and new_source, over_total with a
// total; a deny rule: denied); 0 without --over redirect.
uint8_t over_kinds_of(const RuleSpec& spec);

// One limit of a rule once the defaults are in: a packet window (count
// packets per period) or a byte window (count bits per period), and its
// burst in packets or bytes.
struct Window {
  bool bytes = false;
  uint64_t count = 0;
  uint64_t period_ns = 0;
  uint64_t burst = 0;
  bool byte_unit = false;  // a byte window written in bytes
  bool operator==(const Window&) const = default;
};
// "100/min" or "10Mbit/s"; with its burst, "100/min burst 100" or
// "10Mbit/s burst 1250000B".
std::string window_name(const Window& w);
std::string describe_window(const Window& w);

// What a limit rule enforces once the defaults are in: a window's burst is
// its count (packets, or a byte window's bytes: a second's worth of a
// per-second bandwidth), the new-source budget XT_DEFAULT_NEW_RATE a
// second, one bucket per address (IPv4) or /64 (IPv6).
struct Limits {
  int per = 0;
  std::vector<Window> windows;  // the packet windows, then the byte windows, as in the spec
  std::optional<Window> total;  // burst: its count (a per-second total: a second's worth)
  Rate new_rate;
  uint64_t new_burst = 0;
  bool verify = true;
  Rate verify_rate;
  uint64_t remember = 0;
};
Limits limits_of(const RuleSpec& spec);
// Whether two specs make the same rule (what `apply` leaves untouched).
bool same_rule(const RuleSpec& a, const RuleSpec& b);

// A rule's options as words: what `rule add` takes after the CIDR, and what
// a rules file's keys hold (numbers as their digits). Keys: action, per,
// rate, burst, bandwidth, burst_bytes, new_rate, verify, verify_rate,
// remember, dry_run, over, over_reasons, ban_after, ban_for, scope, and the
// match's proto, port, syn.
struct RuleWords {
  std::optional<std::string> action;  // "limit", "allow" or "deny"
  std::optional<std::string> proto, port;
  bool syn = false;
  std::optional<std::string> per, new_rate, verify, verify_rate, remember, total, total_bandwidth;
  // The windows' words, each option in the order given (several windows:
  // several words).
  std::vector<std::string> rate, burst, bandwidth, burst_bytes;
  bool dry_run = false;
  std::optional<std::string> over, over_reasons;  // "drop", "ecn" or "redirect:IFACE"; "over_limit,new_source"
  std::optional<std::string> ban_after, ban_for;  // durations
  std::optional<std::string> scope;               // "host" or "fleet"
};

// Where words came from, for messages: how a key is named ("--burst-bytes"
// on the command line, "burst_bytes" in a file) and what goes before a
// message about it ("" on the command line, whose messages quote the bad
// word; "FILE:LINE: " in a file).
struct WordsContext {
  std::function<std::string(std::string_view key)> name;
  std::function<std::string(std::string_view key)> where;
};
WordsContext command_line_words();

// The one builder: every word through the same parsers, with the same
// limits, whether it came from the command line, a rules file or the pinned
// state. Combinations and what the tick can meter are compile_rule's.
Result<RuleSpec> build_spec(const Cidr& cidr, const RuleWords& words, const WordsContext& context);

// The canonical words of a spec (only the options it has), and the same as
// one line of command-line options, which is what the pinned state keeps.
RuleWords words_of(const RuleSpec& spec);
std::string options_text(const RuleSpec& spec);
Result<RuleSpec> spec_from_options_text(const Cidr& cidr, std::string_view text);

// The exact limit for `count` units per `ticks` kernel ticks (of hz per
// second) with a burst of `burst` units (see struct xt_limit). `what` names
// the option in messages.
Result<xt_limit> make_limit(uint64_t count, uint64_t ticks, uint64_t burst, uint32_t hz, std::string_view what);

// Windows that make sense together (compile_rule's check): at most
// XT_MAX_LIMITS of them, and none that never binds, because another of its
// kind allows less at every moment (no more at once, and no faster): a day
// window shorter than a minute window's count, or a window given twice.
Result<void> check_windows(const Limits& limits);

// Checks the combinations of a spec and compiles it into the map value for
// a kernel running at `hz` ticks per second, with `cpus` possible CPUs (each
// gets its share of --verify-rate). id and gen are left for the state layer
// to assign.
Result<xt_rule> compile_rule(const RuleSpec& spec, uint32_t hz, uint32_t cpus = 1);
// Where a replaced rule's windows go (struct xt_rule, limits): rule, as
// compile_rule made it, is rearranged so that each window keeps the word
// of the old rule's window it continues, and given the old limits to
// convert from (prev). A window the old rule had unchanged continues it;
// a changed one continues the old window of its kind nearest in rate; a
// new one takes a word no window of its kind had, and starts full.
void place_limits(const xt_rule& old, xt_rule& rule);

// The combinations of a match that can never match anything (--port
// without tcp or udp, --syn with another protocol, ICMP of the other
// family): compile_rule's first check, and `rule del`'s.
Result<void> check_match(const RuleSpec& spec);

// --over and --over-reasons that go together and with the rule's action
// (compile_rule's check).
Result<void> check_over(const RuleSpec& spec);

// What a rule will do that its author may not expect, one warning a line
// for `rule add` and `apply` (empty: nothing to say). Tokens arrive once a
// kernel tick, so a burst below a tick's worth caps the rate below what was
// asked; and a byte burst below a quarter of a second's worth starves a TCP
// flow (docs/operations.md, "Sizing a byte burst for TCP").
std::vector<std::string> rule_warnings(const RuleSpec& spec, uint32_t hz);

const char* action_name(uint8_t action);
// One line describing a rule's limits: "100/s burst 100, 10Mbit/s burst 1250000B, new sources 1000/s".
std::string describe_limits(const RuleSpec& spec);
// The whole rule: "limit 100/s burst 100, ..., per /32 (dry-run)".
std::string describe(const RuleSpec& spec);

// A live rule: what the operator wrote, and what the kernel meters with
// (its slot id and generation included).
struct RuleEntry {
  Cidr cidr;
  xt_rule rule;
  RuleSpec spec;
};
// The rule of rules for cidr and match (a rule is the two), or none.
inline const RuleEntry* find_rule(const std::vector<RuleEntry>& rules, const Cidr& cidr, const Match& match) {
  for (const RuleEntry& e : rules)
    if (e.cidr == cidr && e.spec.match == match) return &e;
  return nullptr;
}

// Which word of the live rule's buckets each window of its spec (in
// limits_of order) is metered in: -1 for one not found (a spec that is
// not the rule's).
std::vector<int> window_positions(const RuleEntry& entry, uint32_t hz);

// The port rules whose sources have no rule without a port to fall back on:
// a non-first fragment matches only rules without a port (its protocol's,
// or none), and an IPv6 packet behind more than four extension headers only
// rules without a match, so from those sources it passes unlimited. One
// line for each (status warns with them).
std::vector<std::string> port_rule_gaps(const std::vector<RuleEntry>& rules);

nlohmann::json rule_json(const RuleEntry& entry);
nlohmann::json rules_json(const std::vector<RuleEntry>& rules);
std::string rules_text(const std::vector<RuleEntry>& rules);

}  // namespace xt
