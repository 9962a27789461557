// SPDX-License-Identifier: MIT
#include "rules.h"

#include "format.h"
#include "gcra.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <sstream>

namespace xt {
namespace {

// The defaults the README promises, in one place.
constexpr int kDefaultPerV4 = 32;
constexpr int kDefaultPerV6 = 64;

// A window with its burst: given, or the window's count (a bandwidth's
// bytes: a second's worth of a per-second one).
Window window_of(const Rate& r, std::optional<uint64_t> burst) {
  return {false, r.count, r.period_ns, burst.value_or(r.count), false};
}
Window window_of(const Bandwidth& b, std::optional<uint64_t> burst) {
  return {true, b.bits, b.period_ns, burst.value_or((b.bits + 7) / 8), b.byte_unit};
}

// Of a compiled rule: whether word p's limit is in force, whether it
// counts bytes.
bool in_force(const xt_rule& r, int p) { return (r.limits >> p) & 1; }
bool counts_bytes(const xt_rule& r, int p) { return (r.byte_limits >> p) & 1; }

}  // namespace

Limits limits_of(const RuleSpec& spec) {
  Limits l;
  l.per = spec.per.value_or(spec.cidr.family == XT_FAMILY_V4 ? kDefaultPerV4 : kDefaultPerV6);
  auto nth = [](const std::vector<uint64_t>& v, size_t i) { return i < v.size() ? std::optional(v[i]) : std::nullopt; };
  for (size_t i = 0; i < spec.rates.size(); i++) l.windows.push_back(window_of(spec.rates[i], nth(spec.bursts, i)));
  for (size_t i = 0; i < spec.bandwidths.size(); i++)
    l.windows.push_back(window_of(spec.bandwidths[i], nth(spec.burst_bytes, i)));
  if (spec.total) l.total = window_of(*spec.total, std::nullopt);
  if (spec.total_bandwidth) l.total = window_of(*spec.total_bandwidth, std::nullopt);
  l.new_rate = spec.new_rate.value_or(Rate{XT_DEFAULT_NEW_RATE, kNsPerSec});
  l.new_burst = l.new_rate.count;
  l.verify = spec.verify.value_or(true);
  l.verify_rate = spec.verify_rate.value_or(Rate{XT_DEFAULT_VERIFY_RATE, kNsPerSec});
  l.remember = spec.remember.value_or(XT_DEFAULT_REMEMBER_SECONDS);
  return l;
}

std::string window_name(const Window& w) {
  return w.bytes ? format_bandwidth({w.count, w.period_ns, w.byte_unit}) : format_rate(w.count, w.period_ns);
}

std::string describe_window(const Window& w) {
  return window_name(w) + " burst " + std::to_string(w.burst) + (w.bytes ? "B" : "");
}

namespace {

constexpr const char* kOverKindNames[XT_OVER_KINDS] = {"over_limit", "over_total", "new_source", "denied"};
constexpr std::string_view kRedirectPrefix = "redirect:";

// An interface's name as the kernel takes it: 1 to IFNAMSIZ-1 (15)
// characters, none of them '/', ':' or white space.
bool good_ifname(std::string_view name) {
  return !name.empty() && name.size() < 16 && std::ranges::none_of(name, [](unsigned char c) {
    return c == '/' || c == ':' || std::isspace(c) || !std::isprint(c);
  });
}

}  // namespace

const char* over_kind_name(int kind) { return kind >= 0 && kind < XT_OVER_KINDS ? kOverKindNames[kind] : "unknown"; }

Result<uint8_t> parse_over_kinds(std::string_view what, std::string_view text) {
  uint8_t kinds = 0;
  for (const std::string_view name : comma_list(text)) {
    int kind = 0;
    while (kind < XT_OVER_KINDS && name != kOverKindNames[kind]) kind++;
    if (kind == XT_OVER_KINDS)
      return usage_error("bad " + std::string(what) + " '" + std::string(text) + "': '" + std::string(name) +
                         "' is not a kind of drop (use over_limit, over_total, new_source or denied, separated by "
                         "commas)");
    kinds |= static_cast<uint8_t>(1u << kind);
  }
  return kinds;
}

std::string format_over_kinds(uint8_t kinds) {
  std::string out;
  for (int k = 0; k < XT_OVER_KINDS; k++)
    if (kinds >> k & 1) out += (out.empty() ? "" : ",") + std::string(kOverKindNames[k]);
  return out;
}

uint8_t over_kinds_of(const RuleSpec& spec) {
  if (!spec.redirect) return 0;
  if (spec.over_kinds) return *spec.over_kinds;
  if (spec.action == XT_ACT_DENY) return 1u << XT_OVER_DENY;
  if (spec.action != XT_ACT_LIMIT) return 0;
  const bool total = spec.total || spec.total_bandwidth;
  return static_cast<uint8_t>(1u << XT_OVER_LIMIT | 1u << XT_OVER_NEW_SOURCE | (total ? 1u << XT_OVER_TOTAL : 0));
}

bool same_rule(const RuleSpec& a, const RuleSpec& b) {
  if (a.cidr != b.cidr || a.match != b.match || a.action != b.action || a.dry_run != b.dry_run) return false;
  if (a.redirect != b.redirect || over_kinds_of(a) != over_kinds_of(b) || a.ecn != b.ecn) return false;
  if (a.ban_after != b.ban_after || a.ban_for != b.ban_for || a.fleet != b.fleet) return false;
  if (a.action != XT_ACT_LIMIT) return true;
  Limits la = limits_of(a), lb = limits_of(b);
  // How a bandwidth was written (bits or bytes) does not change the rule.
  for (Limits* l : {&la, &lb}) {
    for (Window& w : l->windows) w.byte_unit = false;
    if (l->total) l->total->byte_unit = false;
  }
  return la.per == lb.per && la.windows == lb.windows && la.total == lb.total && la.new_rate.count == lb.new_rate.count && la.new_rate.period_ns == lb.new_rate.period_ns &&
         la.new_burst == lb.new_burst && la.verify == lb.verify && la.remember == lb.remember &&
         la.verify_rate.count == lb.verify_rate.count && la.verify_rate.period_ns == lb.verify_rate.period_ns;
}

WordsContext command_line_words() {
  return {[](std::string_view key) {
            std::string name = "--" + std::string(key);
            std::ranges::replace(name, '_', '-');
            return name;
          },
          [](std::string_view) { return std::string(); }};
}

Result<RuleSpec> build_spec(const Cidr& cidr, const RuleWords& w, const WordsContext& context) {
  auto at = [&](std::string_view key, const Error& e) {
    return std::unexpected(Error{e.kind, context.where(key) + e.message});
  };
  RuleSpec spec;
  spec.cidr = cidr;
  spec.dry_run = w.dry_run;
  if (w.action) {
    if (*w.action == "allow")
      spec.action = XT_ACT_ALLOW;
    else if (*w.action == "deny")
      spec.action = XT_ACT_DENY;
    else if (*w.action != "limit")
      return at("action", Error{ErrorKind::Usage, context.name("action") + " must be \"limit\", \"allow\" or \"deny\", not \"" +
                                                      *w.action + "\""});
  }
  if (w.proto) {
    auto proto = parse_proto(*w.proto);
    if (!proto) return at("proto", proto.error());
    spec.match.proto = *proto;
  }
  if (w.port) {
    auto ports = parse_ports(*w.port);
    if (!ports) return at("port", ports.error());
    spec.match.ports = *ports;
  }
  // --syn is TCP's: it says the protocol by itself.
  spec.match.syn = w.syn;
  if (w.syn && !spec.match.proto) spec.match.proto = kProtoTcp;
  if (w.per) {
    auto per = parse_prefix_len(context.name("per"), *w.per);
    if (!per) return at("per", per.error());
    spec.per = *per;
  }
  for (auto [key, word, out] : {std::tuple{"new_rate", &w.new_rate, &spec.new_rate},
                                std::tuple{"verify_rate", &w.verify_rate, &spec.verify_rate}}) {
    if (!*word) continue;
    auto rate = parse_rate(**word, "");
    if (!rate) return at(key, rate.error());
    *out = *rate;
  }
  if (w.total) {
    auto rate = parse_rate(*w.total, context.name("total_bandwidth"));
    if (!rate) return at("total", rate.error());
    spec.total = *rate;
  }
  if (w.total_bandwidth) {
    auto bw = parse_bandwidth(*w.total_bandwidth);
    if (!bw) return at("total_bandwidth", bw.error());
    spec.total_bandwidth = *bw;
  }
  for (const std::string& word : w.rate) {
    auto rate = parse_rate(word, context.name("bandwidth"));
    if (!rate) return at("rate", rate.error());
    spec.rates.push_back(*rate);
  }
  for (const std::string& word : w.bandwidth) {
    auto bw = parse_bandwidth(word);
    if (!bw) return at("bandwidth", bw.error());
    spec.bandwidths.push_back(*bw);
  }
  for (auto [key, words, out] : {std::tuple{"burst", &w.burst, &spec.bursts},
                                 std::tuple{"burst_bytes", &w.burst_bytes, &spec.burst_bytes}}) {
    for (const std::string& word : *words) {
      auto n = parse_positive(context.name(key), word);
      if (!n) return at(key, n.error());
      out->push_back(*n);
    }
  }
  auto times = [](size_t n) { return n == 1 ? std::string("once") : std::to_string(n) + " times"; };
  // Bursts go with their windows in the order given; then each list is
  // put in order of period (the canonical form: listed, compared, stored).
  auto order = [&](auto& windows, std::vector<uint64_t>& bursts, std::string_view window_key,
                   std::string_view burst_key) -> Result<void> {
    if (!bursts.empty() && !windows.empty() && bursts.size() != windows.size())
      return std::unexpected(
          Error{ErrorKind::Usage, context.where(burst_key) + context.name(burst_key) + " is given " +
                                      times(bursts.size()) + ", " + context.name(window_key) + " " +
                                      times(windows.size()) + ": give one " + context.name(burst_key) +
                                      " for each " + context.name(window_key) + ", in the same order, or none "
                                      "(each window's burst is then its count)"});
    std::vector<size_t> idx(windows.size());
    for (size_t i = 0; i < idx.size(); i++) idx[i] = i;
    std::ranges::sort(idx, {}, [&](size_t i) { return std::pair(windows[i].period_ns, i); });
    auto sorted_windows = windows;
    auto sorted_bursts = bursts;
    for (size_t i = 0; i < idx.size(); i++) {
      sorted_windows[i] = windows[idx[i]];
      if (!bursts.empty()) sorted_bursts[i] = bursts[idx[i]];
    }
    windows = sorted_windows;
    bursts = sorted_bursts;
    return {};
  };
  if (auto ok = order(spec.rates, spec.bursts, "rate", "burst"); !ok) return std::unexpected(ok.error());
  if (auto ok = order(spec.bandwidths, spec.burst_bytes, "bandwidth", "burst_bytes"); !ok)
    return std::unexpected(ok.error());
  if (w.verify) {
    if (*w.verify != "tcp" && *w.verify != "off")
      return at("verify", Error{ErrorKind::Usage, context.name("verify") + " must be \"tcp\" or \"off\", not \"" +
                                                      *w.verify + "\""});
    spec.verify = *w.verify == "tcp";
  }
  if (w.remember) {
    auto d = parse_duration(context.name("remember"), *w.remember);
    if (!d) return at("remember", d.error());
    spec.remember = *d;
  }
  if (w.over && *w.over == "ecn") spec.ecn = true;
  if (w.over && *w.over != "drop" && *w.over != "ecn") {
    const std::string_view over = *w.over;
    if (!over.starts_with(kRedirectPrefix))
      return at("over", Error{ErrorKind::Usage, context.name("over") +
                                                    " must be \"drop\", \"ecn\" or \"redirect:IFACE\", not \"" +
                                                    *w.over + "\""});
    const std::string_view iface = over.substr(kRedirectPrefix.size());
    if (!good_ifname(iface))
      return at("over", Error{ErrorKind::Usage, "bad " + context.name("over") + " \"" + *w.over + "\": \"" +
                                                    std::string(iface) + "\" is not an interface name (1 to 15 "
                                                    "characters, no '/', ':' or spaces)"});
    spec.redirect = std::string(iface);
  }
  for (auto [key, word, out] : {std::tuple{"ban_after", &w.ban_after, &spec.ban_after},
                                std::tuple{"ban_for", &w.ban_for, &spec.ban_for}}) {
    if (!*word) continue;
    // parse_duration takes "off" for 0, which here is no "off": --ban-after 0
    // bans at the first drop.
    if (std::string_view(key) == "ban_after" && std::ranges::equal(**word, std::string_view("off"), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == b;
        }))
      return at(key, Error{ErrorKind::Usage, "bad " + context.name(key) + " \"" + **word +
                                                "\": 0 bans at the first drop; to ban no one, leave --ban-after "
                                                "and --ban-for out"});
    auto d = parse_duration(context.name(key), **word, false);  // --ban-for 0 is refused too
    if (!d) return at(key, d.error());
    *out = *d;
  }
  if (w.over_reasons) {
    auto kinds = parse_over_kinds(context.name("over_reasons"), *w.over_reasons);
    if (!kinds) return at("over_reasons", kinds.error());
    spec.over_kinds = *kinds;
  }
  if (w.scope) {
    if (*w.scope != "host" && *w.scope != "fleet")
      return at("scope", Error{ErrorKind::Usage, context.name("scope") + " must be \"host\" or \"fleet\", not \"" +
                                                     *w.scope + "\""});
    spec.fleet = *w.scope == "fleet";
  }
  return spec;
}

RuleWords words_of(const RuleSpec& spec) {
  RuleWords w;
  if (spec.action != XT_ACT_LIMIT) w.action = action_name(spec.action);
  // --syn alone stands for --proto tcp --syn.
  if (spec.match.proto && !(spec.match.syn && *spec.match.proto == kProtoTcp))
    w.proto = format_proto(*spec.match.proto);
  if (spec.match.ports) w.port = format_ports(*spec.match.ports);
  w.syn = spec.match.syn;
  if (spec.per) w.per = std::to_string(*spec.per);
  for (const Rate& r : spec.rates) w.rate.push_back(format_rate(r.count, r.period_ns));
  for (uint64_t b : spec.bursts) w.burst.push_back(std::to_string(b));
  for (const Bandwidth& b : spec.bandwidths) w.bandwidth.push_back(format_bandwidth(b));
  for (uint64_t b : spec.burst_bytes) w.burst_bytes.push_back(std::to_string(b));
  if (spec.total) w.total = format_rate(spec.total->count, spec.total->period_ns);
  if (spec.total_bandwidth) w.total_bandwidth = format_bandwidth(*spec.total_bandwidth);
  if (spec.new_rate) w.new_rate = format_rate(spec.new_rate->count, spec.new_rate->period_ns);
  if (spec.verify) w.verify = *spec.verify ? "tcp" : "off";
  if (spec.verify_rate) w.verify_rate = format_rate(spec.verify_rate->count, spec.verify_rate->period_ns);
  if (spec.remember) w.remember = format_duration(*spec.remember);
  w.dry_run = spec.dry_run;
  if (spec.redirect) w.over = std::string(kRedirectPrefix) + *spec.redirect;
  if (spec.ecn) w.over = "ecn";
  if (spec.over_kinds) w.over_reasons = format_over_kinds(*spec.over_kinds);
  if (spec.ban_after) w.ban_after = format_duration(*spec.ban_after);
  if (spec.ban_for) w.ban_for = format_duration(*spec.ban_for);
  if (spec.fleet) w.scope = "fleet";
  return w;
}

std::string options_text(const RuleSpec& spec) {
  const RuleWords w = words_of(spec);
  const WordsContext cli = command_line_words();
  std::string out;
  auto add = [&](const char* key, const std::optional<std::string>& word) {
    if (word) out += (out.empty() ? "" : " ") + cli.name(key) + " " + *word;
  };
  if (w.action) out += "--" + *w.action;
  add("proto", w.proto);
  add("port", w.port);
  if (w.syn) out += (out.empty() ? "" : " ") + std::string("--syn");
  add("per", w.per);
  // Each window with its burst after it.
  for (size_t i = 0; i < w.rate.size(); i++) {
    add("rate", w.rate[i]);
    if (i < w.burst.size()) add("burst", w.burst[i]);
  }
  for (size_t i = 0; i < w.bandwidth.size(); i++) {
    add("bandwidth", w.bandwidth[i]);
    if (i < w.burst_bytes.size()) add("burst_bytes", w.burst_bytes[i]);
  }
  add("total", w.total);
  add("total_bandwidth", w.total_bandwidth);
  add("new_rate", w.new_rate);
  add("verify", w.verify);
  add("verify_rate", w.verify_rate);
  add("remember", w.remember);
  add("over", w.over);
  add("over_reasons", w.over_reasons);
  add("ban_after", w.ban_after);
  add("ban_for", w.ban_for);
  add("scope", w.scope);
  if (w.dry_run) out += (out.empty() ? "" : " ") + std::string("--dry-run");
  return out;
}

Result<RuleSpec> spec_from_options_text(const Cidr& cidr, std::string_view text) {
  std::istringstream in{std::string(text)};
  RuleWords w;
  for (std::string word; in >> word;) {
    if (word == "--allow" || word == "--deny") {
      w.action = word.substr(2);
      continue;
    }
    if (word == "--dry-run") {
      w.dry_run = true;
      continue;
    }
    if (word == "--syn") {
      w.syn = true;
      continue;
    }
    std::string value;
    if (!(in >> value)) return usage_error("option " + word + " has no value in '" + std::string(text) + "'");
    if (word == "--proto") w.proto = value;
    else if (word == "--port") w.port = value;
    else if (word == "--per") w.per = value;
    else if (word == "--rate") w.rate.push_back(value);
    else if (word == "--burst") w.burst.push_back(value);
    else if (word == "--bandwidth") w.bandwidth.push_back(value);
    else if (word == "--burst-bytes") w.burst_bytes.push_back(value);
    else if (word == "--total") w.total = value;
    else if (word == "--total-bandwidth") w.total_bandwidth = value;
    else if (word == "--new-rate") w.new_rate = value;
    else if (word == "--verify") w.verify = value;
    else if (word == "--verify-rate") w.verify_rate = value;
    else if (word == "--remember") w.remember = value;
    else if (word == "--over") w.over = value;
    else if (word == "--over-reasons") w.over_reasons = value;
    else if (word == "--ban-after") w.ban_after = value;
    else if (word == "--ban-for") w.ban_for = value;
    else if (word == "--scope") w.scope = value;
    else return usage_error("unknown option " + word + " in '" + std::string(text) + "'");
  }
  return build_spec(cidr, w, command_line_words());
}

Result<xt_limit> make_limit(uint64_t count, uint64_t ticks, uint64_t burst, uint32_t hz, std::string_view what) {
  const uint64_t g = std::gcd(count, ticks);
  xt_limit l{};
  l.fill = count / g;
  l.cost = ticks / g;
  // A bucket's state is unambiguous for an idle time of 2^(XT_TAT_BITS-1)
  // units (abi.h): refuse fills so large that this would be under a year.
  const unsigned __int128 horizon_ticks = (static_cast<unsigned __int128>(1) << (XT_TAT_BITS - 1)) / l.fill;
  if (l.fill > XT_MAX_SCALED || horizon_ticks / hz < XT_MIN_HORIZON_SECONDS)
    return usage_error("bad " + std::string(what) + ": it does not reduce to a small enough fraction of the " +
                       std::to_string(hz) + " kernel ticks per second to meter exactly; round it (to a multiple "
                       "of 1000, say)");
  if (burst > XT_MAX_SCALED / l.cost)
    return usage_error("bad " + std::string(what) + ": a burst of " + std::to_string(burst) +
                       " is too large to meter exactly at this rate (at most " +
                       std::to_string(XT_MAX_SCALED / l.cost) + ")");
  l.cap = burst * l.cost;
  return l;
}

namespace {

// Ticks in period_ns at hz ticks per second: exact, as every period is whole
// seconds.
uint64_t period_ticks(uint64_t period_ns, uint32_t hz) { return period_ns / kNsPerSec * hz; }

// The exact limit of a window (a byte window of N bits per T ticks: a byte
// costs 8 of them), named by `option` in messages.
Result<xt_limit> window_limit(const Window& w, uint32_t hz, std::string_view option) {
  return make_limit(w.count, period_ticks(w.period_ns, hz) * (w.bytes ? 8 : 1), w.burst, hz,
                    std::string(option) + " " + window_name(w));
}

}  // namespace

void place_limits(const xt_rule& old, xt_rule& rule) {
  constexpr int kN = XT_MAX_LIMITS;
  std::array<int, kN> at;  // new window i goes to position at[i] (-1: not yet placed)
  std::array<bool, kN> taken{};
  at.fill(-1);
  // With a total, the last word is the fair share's (XT_FAIR_WORD).
  if (rule.flags & XT_RULE_TOTAL) taken[XT_FAIR_WORD] = true;
  auto place = [&](int i, int p) {
    at[i] = p;
    taken[p] = true;
  };
  // Unchanged windows first.
  for (int i = 0; i < kN; i++)
    for (int p = 0; p < kN && in_force(rule, i) && at[i] < 0; p++)
      if (!taken[p] && in_force(old, p) && counts_bytes(old, p) == counts_bytes(rule, i) &&
          xt_same_limit(&old.limit[p], &rule.limit[i]))
        place(i, p);
  // Then changed ones, the pairs nearest in rate first.
  auto rate = [](const xt_limit& l) { return std::log(static_cast<double>(l.fill) / static_cast<double>(l.cost)); };
  for (;;) {
    int best_i = -1, best_p = -1;
    double best = 0;
    for (int i = 0; i < kN; i++)
      for (int p = 0; p < kN; p++) {
        if (!in_force(rule, i) || at[i] >= 0 || taken[p] || !in_force(old, p) ||
            counts_bytes(old, p) != counts_bytes(rule, i))
          continue;
        const double d = std::fabs(rate(rule.limit[i]) - rate(old.limit[p]));
        if (best_i < 0 || d < best) best_i = i, best_p = p, best = d;
      }
    if (best_i < 0) break;
    place(best_i, best_p);
  }
  // What continues something is given the old limit to convert from.
  xt_rule out = rule;
  out.limits = out.byte_limits = 0;
  // The old rule's overdraft is no token (gcra.h, xt_regen): its caps,
  // given as prev, are read with it taken off.
  out.flags = static_cast<uint8_t>((rule.flags & ~XT_RULE_PREV_ECN) | ((old.flags & XT_RULE_ECN) ? XT_RULE_PREV_ECN : 0));
  for (int p = 0; p < kN; p++) out.limit[p] = out.prev[p] = xt_limit{};
  for (int i = 0; i < kN; i++) {
    if (!in_force(rule, i)) continue;
    const bool continues = at[i] >= 0;
    // New windows: a word no window of the old rule had, if there is one.
    for (int pass = 0; pass < 2 && at[i] < 0; pass++)
      for (int p = 0; p < kN && at[i] < 0; p++)
        if (!taken[p] && (pass == 1 || !in_force(old, p))) place(i, p);
    const int p = at[i];
    out.limit[p] = rule.limit[i];
    if (continues) out.prev[p] = old.limit[p];
    out.limits |= static_cast<uint8_t>(1u << p);
    if (counts_bytes(rule, i)) out.byte_limits |= static_cast<uint8_t>(1u << p);
  }
  rule = out;
}

// The combinations of a match that can never match anything.
Result<void> check_match(const RuleSpec& spec) {
  const Match& m = spec.match;
  const bool v4 = spec.cidr.family == XT_FAMILY_V4;
  if (m.ports && (!m.proto || (*m.proto != kProtoTcp && *m.proto != kProtoUdp)))
    return usage_error("--port needs --proto tcp or --proto udp" +
                       (m.proto ? " (not --proto " + format_proto(*m.proto) + ")" : std::string()));
  if (m.syn && *m.proto != kProtoTcp)
    return usage_error("--syn is TCP's: it cannot go with --proto " + format_proto(*m.proto));
  if (m.proto && *m.proto == 1 && !v4)
    return usage_error("--proto icmp never matches an IPv6 source: IPv6 has --proto icmpv6");
  if (m.proto && *m.proto == 58 && v4)
    return usage_error("--proto icmpv6 never matches an IPv4 source: IPv4 has --proto icmp");
  return {};
}

// Windows that make sense together: at most XT_MAX_LIMITS, and none that
// never binds. Of two windows of a kind, one with no lower rate and no
// smaller burst than the other lets through, at every moment, at least as
// much as it: it never decides anything, and is surely a mistake (a day
// window shorter than a minute window's count, a window given twice).
Result<void> check_windows(const Limits& limits) {
  const auto& ws = limits.windows;
  if (ws.size() > XT_MAX_LIMITS)
    return usage_error("a rule holds at most " + std::to_string(XT_MAX_LIMITS) + " limits, --rate and --bandwidth "
                       "together; this one has " + std::to_string(ws.size()));
  auto option = [](const Window& w) { return std::string(w.bytes ? "--bandwidth " : "--rate ") + window_name(w); };
  for (size_t i = 0; i < ws.size(); i++)
    for (size_t j = 0; j < ws.size(); j++) {
      const Window &a = ws[i], &b = ws[j];
      if (i == j || a.bytes != b.bytes) continue;
      // a's rate at least b's: a.count / a.period >= b.count / b.period.
      const auto lhs = static_cast<unsigned __int128>(a.count) * b.period_ns;
      const auto rhs = static_cast<unsigned __int128>(b.count) * a.period_ns;
      if (lhs < rhs || a.burst < b.burst || (lhs == rhs && a.burst == b.burst && i > j)) continue;
      const char* unit = a.bytes ? " bytes" : "";
      if (lhs == rhs && a.burst == b.burst)
        return usage_error(option(a) + " allows exactly what " + option(b) +
                           " does (the same rate and burst): give each window once");
      return usage_error(option(a) + " never binds: " + option(b) + " allows less at every moment (a burst of " +
                         std::to_string(b.burst) + unit + " against " + std::to_string(a.burst) + unit +
                         ", and no faster); a longer window must allow more at once and less over time than a "
                         "shorter one (--rate 100/min --rate 1000/day)");
    }
  return {};
}

Result<void> check_over(const RuleSpec& spec) {
  if (spec.ecn && spec.action != XT_ACT_LIMIT)
    return usage_error(std::string("--over ecn marks packets that pass a limit: ") +
                       (spec.action == XT_ACT_ALLOW ? "an --allow" : "a --deny") + " rule has none");
  if (spec.over_kinds && !spec.redirect)
    return usage_error("--over-reasons says which drops --over redirect:IFACE sends out IFACE: it needs --over "
                       "redirect:IFACE");
  if (!spec.redirect) return {};
  if (spec.action == XT_ACT_ALLOW)
    return usage_error("--over redirect:" + *spec.redirect + " has nothing to send: an --allow rule drops nothing");
  if (!spec.over_kinds) return {};
  RuleSpec every = spec;
  every.over_kinds.reset();
  const uint8_t has = over_kinds_of(every);
  if (const uint8_t extra = *spec.over_kinds & ~has; extra)
    return usage_error("--over-reasons " + format_over_kinds(*spec.over_kinds) + ": this rule has no " +
                       format_over_kinds(extra) + " drops (its drops are " + format_over_kinds(has) + ")");
  return {};
}

Result<xt_rule> compile_rule(const RuleSpec& spec, uint32_t hz, uint32_t cpus) {
  xt_rule rule{};
  rule.action = static_cast<uint8_t>(spec.action);
  rule.family = spec.cidr.family;
  rule.src_len = spec.cidr.len;
  rule.level = match_level(spec.match);
  if (auto ok = check_match(spec); !ok) return std::unexpected(ok.error());
  if (auto ok = check_over(spec); !ok) return std::unexpected(ok.error());
  // The rule's options are recorded as text beside it (rule list, the
  // snapshots): checked here with the rest, not first when the rule is put
  // in, half-way through an apply whose earlier steps then had to be undone.
  if (const size_t text = options_text(spec).size(); text >= XT_RULE_TEXT_SIZE)
    return usage_error("the options of the rule for " + rule_name(spec.cidr, spec.match) + " are too long to record (" +
                       std::to_string(text) + " bytes; at most " + std::to_string(XT_RULE_TEXT_SIZE - 1) + ")");
  const int max_bits = family_bits(spec.cidr.family);
  const char* family_name = spec.cidr.family == XT_FAMILY_V4 ? "IPv4" : "IPv6";
  const bool limits = !spec.rates.empty() || !spec.bursts.empty() || !spec.bandwidths.empty() ||
                      !spec.burst_bytes.empty() || spec.per || spec.new_rate || spec.verify || spec.verify_rate ||
                      spec.remember || spec.total || spec.total_bandwidth || spec.ban_after || spec.ban_for;

  if (spec.action != XT_ACT_LIMIT) {
    const char* flag = spec.action == XT_ACT_ALLOW ? "--allow" : "--deny";
    if (limits)
      return usage_error(std::string(flag) +
                         " takes no limits: --rate, --burst, --bandwidth, --burst-bytes, --total, "
                         "--total-bandwidth, --per, --new-rate, --verify, --verify-rate, --remember, --ban-after "
                         "and --ban-for apply to limit rules");
    if (spec.fleet) return usage_error(std::string("--scope fleet shares limits: an ") + flag + " rule has none");
    if (spec.dry_run && spec.action == XT_ACT_ALLOW)
      return usage_error("--dry-run has no effect on an --allow rule: it never drops");
    rule.flags = spec.dry_run ? XT_RULE_DRY_RUN : 0;
    rule.per_len = static_cast<uint8_t>(max_bits);
    return rule;
  }

  if (spec.rates.empty() && spec.bandwidths.empty())
    return usage_error("a limit rule needs --rate or --bandwidth (or --allow / --deny)");
  if (!spec.bursts.empty() && spec.rates.empty()) return usage_error("--burst needs --rate: it is counted in packets");
  if (!spec.burst_bytes.empty() && spec.bandwidths.empty()) return usage_error("--burst-bytes needs --bandwidth");
  const Limits l = limits_of(spec);
  if (auto ok = check_windows(l); !ok) return std::unexpected(ok.error());
  if (spec.total && spec.total_bandwidth)
    return usage_error("a rule has one total: --total (packets) or --total-bandwidth (bytes), not both");
  if (l.total && l.windows.size() > XT_FAIR_WORD)
    return usage_error("a rule with a total holds at most " + std::to_string(XT_FAIR_WORD) +
                       " limits of its own, --rate and --bandwidth together: the fair share takes the third");

  int per = spec.per.value_or(spec.cidr.family == XT_FAMILY_V4 ? 32 : 64);
  if (per < 0 || per > max_bits)
    return usage_error("bad --per " + std::to_string(per) + ": longer than an " + family_name +
                       " address (" + std::to_string(max_bits) + " bits)");
  rule.per_len = static_cast<uint8_t>(per);
  if (spec.dry_run) rule.flags |= XT_RULE_DRY_RUN;

  for (size_t p = 0; p < l.windows.size(); p++) {
    const Window& w = l.windows[p];
    auto limit = window_limit(w, hz, w.bytes ? "--bandwidth" : "--rate");
    if (!limit) return std::unexpected(limit.error());
    rule.limit[p] = *limit;
    // --over ecn: half a burst more, an overdraft only ECN-capable
    // packets may use, marked (meter.h, xt_ecn_keep).
    if (spec.ecn) {
      if (rule.limit[p].cap > XT_MAX_SCALED / 3 * 2)
        return usage_error("--over ecn: the burst of " + window_name(w) + " is too large to add half of it again");
      rule.limit[p].cap += rule.limit[p].cap / 2;
    }
    rule.limits |= static_cast<uint8_t>(1u << p);
    if (w.bytes) rule.byte_limits |= static_cast<uint8_t>(1u << p);
  }
  if (l.total) {
    const Window& t = *l.total;
    auto total = window_limit(t, hz, t.bytes ? "--total-bandwidth" : "--total");
    if (!total) return std::unexpected(total.error());
    rule.total = *total;
    rule.flags |= XT_RULE_TOTAL | (t.bytes ? XT_RULE_TOTAL_BYTES : 0);
    // The fair word's cost per unit for a share of the whole total:
    // 2^XT_FAIR_SHIFT units a tick over the total's units a tick.
    const unsigned __int128 start =
        (static_cast<unsigned __int128>(total->cost) << XT_FAIR_SHIFT) / total->fill;
    rule.fair_start = start == 0 ? 1 : start > (1ULL << 52) ? (1ULL << 52) : static_cast<uint64_t>(start);
  }
  const Rate fresh = spec.new_rate.value_or(Rate{XT_DEFAULT_NEW_RATE, kNsPerSec});
  auto n = make_limit(fresh.count, period_ticks(fresh.period_ns, hz), fresh.count, hz,
                      "--new-rate " + format_rate(fresh.count, fresh.period_ns));
  if (!n) return std::unexpected(n.error());
  rule.new_src = *n;

  if (spec.ban_after.has_value() != spec.ban_for.has_value())
    return usage_error("--ban-after and --ban-for go together: how long a source stays over its limit before it is "
                       "banned, and for how long");
  if (spec.ban_for) {
    if (*spec.ban_for == 0) return usage_error("--ban-for 0 bans nothing: leave both --ban-after and --ban-for out");
    // A ban is of the bucket's prefix: one wider than the rule's would
    // ban sources of other rules, and sources no rule covers.
    if (per < spec.cidr.len)
      return usage_error("--ban-for bans a source's --per prefix (/" + std::to_string(per) +
                         "), which is wider than the rule's " + format_cidr(spec.cidr) +
                         ": it would ban sources no rule of this one's covers; use --per " +
                         std::to_string(spec.cidr.len) + " or longer");
    if (*spec.ban_after > XT_MAX_BAN_AFTER)
      return usage_error("--ban-after " + format_duration(*spec.ban_after) + " is too long (at most " +
                         format_duration(XT_MAX_BAN_AFTER) + ")");
    rule.ban_after = static_cast<uint16_t>(*spec.ban_after);
    rule.ban_for = static_cast<uint32_t>(*spec.ban_for);  // parse_duration keeps it within 32 bits
  }
  if (spec.ecn) rule.flags |= XT_RULE_ECN;
  // A fleet shares what one bucket word can be told from another host: a
  // packet count (the bucket's passed_packets). Bytes and totals are not
  // counted per source in a way the hosts could exchange.
  if (spec.fleet && (!spec.bandwidths.empty() || spec.total || spec.total_bandwidth))
    return usage_error("--scope fleet shares packet windows (--rate) only: --bandwidth, --total and "
                       "--total-bandwidth would still be each host's own; give them in a rule of --scope host");
  if (spec.fleet && spec.rates.empty()) return usage_error("--scope fleet needs --rate: it shares packet windows");
  if (spec.verify_rate && !l.verify) return usage_error("--verify-rate needs --verify tcp (the default)");
  if (l.verify) rule.flags |= XT_RULE_VERIFY_TCP;
  rule.remember = static_cast<uint32_t>(l.remember);  // parse_duration keeps it within 32 bits
  // Each CPU meters its own share of the proofs (no line shared between
  // CPUs under a SYN flood): the rate divided exactly, the burst rounded up.
  const uint64_t shares = std::max(cpus, 1u);
  auto proof = make_limit(l.verify_rate.count, period_ticks(l.verify_rate.period_ns, hz) * shares,
                          (l.verify_rate.count + shares - 1) / shares, hz,
                          "--verify-rate " + format_rate(l.verify_rate.count, l.verify_rate.period_ns));
  if (!proof) return std::unexpected(proof.error());
  rule.proof = *proof;
  return rule;
}

namespace {

// Whether prefix `outer` holds all of `inner` (same family).
bool holds(const Cidr& outer, const Cidr& inner) {
  if (outer.family != inner.family || outer.len > inner.len) return false;
  for (int bit = 0; bit < outer.len; bit++) {
    const uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if ((outer.addr[bit / 8] & mask) != (inner.addr[bit / 8] & mask)) return false;
  }
  return true;
}

}  // namespace

std::vector<int> window_positions(const RuleEntry& entry, uint32_t hz) {
  const Limits l = limits_of(entry.spec);
  std::vector<int> out(l.windows.size(), -1);
  auto compiled = compile_rule(entry.spec, hz);
  if (!compiled) return out;
  for (size_t i = 0; i < out.size(); i++) {
    const xt_limit& want = compiled->limit[i];
    for (int p = 0; p < XT_MAX_LIMITS && out[i] < 0; p++) {
      if (in_force(entry.rule, p) && counts_bytes(entry.rule, p) == l.windows[i].bytes &&
          xt_same_limit(&entry.rule.limit[p], &want))
        out[i] = p;
    }
  }
  return out;
}

std::vector<std::string> port_rule_gaps(const std::vector<RuleEntry>& rules) {
  std::vector<std::string> out;
  for (const RuleEntry& e : rules) {
    const Match& m = e.spec.match;
    if (!m.proto) continue;  // no match: it takes them all (a port or --syn comes with a protocol)
    // A rule without a port whose protocol is the packet's (or any):
    // where a non-first fragment goes. An IPv6 packet behind more than
    // four extension headers has for its protocol the header where the
    // walk stopped: only a rule without a match at all takes it, so it
    // escapes IPv6 rules of a protocol alone too.
    auto covered_by = [&](bool any_proto_only) {
      return std::ranges::any_of(rules, [&](const RuleEntry& other) {
        const Match& o = other.spec.match;
        return !o.ports && !o.syn && (!o.proto || (!any_proto_only && o.proto == m.proto)) &&
               holds(other.cidr, e.cidr);
      });
    };
    const bool port_rule = m.ports || m.syn;
    const std::string name = rule_name(e.cidr, e.spec.match), cidr = format_cidr(e.cidr);
    if (e.cidr.family == XT_FAMILY_V6 && !covered_by(true))
      out.push_back("no rule without a match covers the sources of " + name + ": their packets behind more than " +
                    "four extension headers" + (!port_rule || covered_by(false) ? "" : " and their non-first fragments") +
                    " pass unlimited (such a packet's protocol is the extension header where the walk stopped, "
                    "which no --proto rule takes); add one, e.g. `rule add " + cidr + " --rate ...`");
    else if (port_rule && !covered_by(false))
      out.push_back("no rule without a port or --syn covers the sources of " + name +
                    ": their non-first fragments pass unlimited; add one, e.g. `rule add " + cidr + " --proto " +
                    format_proto(*m.proto) + " --rate ...`");
  }
  return out;
}

const char* action_name(uint8_t action) {
  switch (action) {
    case XT_ACT_LIMIT: return "limit";
    case XT_ACT_ALLOW: return "allow";
    case XT_ACT_DENY: return "deny";
  }
  return "unknown";
}

std::vector<std::string> rule_warnings(const RuleSpec& spec, uint32_t hz) {
  std::vector<std::string> out;
  if (spec.redirect && spec.dry_run)
    out.push_back("--over redirect:" + *spec.redirect + " sends nothing while the rule is --dry-run: it drops nothing");
  if (spec.ecn && spec.dry_run) out.push_back("--over ecn marks nothing while the rule is --dry-run");
  // A config's rule (rule add refuses it: parse_source_cidr).
  if (const auto v4 = mapped_ipv4(spec.cidr))
    out.push_back(format_cidr(spec.cidr) + " is IPv4 clients in IPv6's mapped form: their packets are IPv4 and never "
                  "match it; write " + format_cidr(*v4));
  // The parser steps over up to four of IPv6's extension headers to the
  // protocol after them (a fragment of UDP is UDP's): a rule of one matches
  // only where the walk stopped at it, a longer chain or one cut short.
  const std::optional<uint8_t> p = spec.match.proto;
  if (p && spec.cidr.family == XT_FAMILY_V6 && (*p == 0 || *p == 43 || *p == 44 || *p == 51 || *p == 60))
    out.push_back("--proto " + format_proto(*p) +
                  " is an IPv6 extension header, which xthrottle steps over to the protocol after it (a fragment of "
                  "UDP is --proto udp): this rule matches only chains of more than four such headers, or cut short");
  if (spec.action != XT_ACT_LIMIT) return out;
  const Limits l = limits_of(spec);
  // One bucket for the whole CIDR, and it bans: the ban is of the CIDR,
  // well-behaved sources and other rules' with the flood, which is the
  // outage an attacker sending enough would want.
  const int host = spec.cidr.family == XT_FAMILY_V4 ? 32 : 128;
  if (spec.ban_for && l.per == spec.cidr.len && l.per < host)
    out.push_back("--per " + std::to_string(l.per) + " meters all of " + format_cidr(spec.cidr) +
                  " as one source, so --ban-for bans all of it, well-behaved sources with the flood, for " +
                  format_duration(*spec.ban_for) + ": whoever sends enough makes that outage; a longer --per bans "
                  "only the prefixes over the limit");
  constexpr uint64_t kFrame = 1514;  // a full-size Ethernet frame
  for (const Window& w : l.windows) {
    if (w.bytes && w.burst < kFrame) {
      out.push_back("--burst-bytes " + std::to_string(w.burst) + " of " + window_name(w) +
                    " is below a full-size Ethernet frame (1514 bytes): larger packets can never pass");
      continue;
    }
    if (w.period_ns != kNsPerSec) continue;  // the tick's bounds matter to per-second windows
    if (!w.bytes) {
      // A bucket holding less than a tick's worth of tokens throws the rest
      // away every tick: at most burst x hz packets a second pass.
      const uint64_t per_tick = (w.count + hz - 1) / hz;
      if (w.burst * hz < w.count)
        out.push_back("--burst " + std::to_string(w.burst) + " is below one kernel tick's worth of " +
                      window_name(w) + " (" + std::to_string(per_tick) + " packets at " + std::to_string(hz) +
                      " ticks a second): at most " + std::to_string(w.burst * hz) +
                      " packets/s can pass; use --burst " + std::to_string(per_tick) + " or more");
      continue;
    }
    const std::string bandwidth = window_name(w);
    const uint64_t bytes_per_second = w.count / 8;
    const uint64_t per_tick = (bytes_per_second + hz - 1) / hz;
    const uint64_t for_tcp = std::max<uint64_t>(bytes_per_second / 4, 20 * kFrame);
    const std::string burst = "--burst-bytes " + std::to_string(w.burst);
    if (w.burst < per_tick + kFrame) {
      const uint64_t most = w.burst / kFrame * kFrame * hz;
      out.push_back(burst + " is below one kernel tick's worth of " + bandwidth + " plus a frame (" +
                    std::to_string(per_tick + kFrame) + " bytes): tokens arrive once a tick, so full-size frames "
                    "pass at no more than " + std::to_string(most * 8 / 1000) + " kbit/s; use " +
                    std::to_string(for_tcp) + " or more");
    } else if (w.burst < for_tcp) {
      out.push_back(burst + " is below a quarter of a second's worth of " + bandwidth + " (" +
                    std::to_string(for_tcp) + " bytes): a TCP flow through it may get well below the limit "
                    "(docs/operations.md, \"Sizing a byte burst for TCP\")");
    }
  }
  return out;
}

std::string describe_limits(const RuleSpec& spec) {
  if (spec.action != XT_ACT_LIMIT) return "";
  const Limits l = limits_of(spec);
  std::string out;
  for (const Window& w : l.windows) out += (out.empty() ? "" : ", ") + describe_window(w);
  if (l.total) out += ", total " + window_name(*l.total) + " shared fairly";
  return out + ", new sources " + format_rate(l.new_rate.count, l.new_rate.period_ns);
}

std::string describe(const RuleSpec& spec) {
  std::string out = action_name(spec.action);
  if (spec.action == XT_ACT_LIMIT) {
    const Limits l = limits_of(spec);
    out += " " + describe_limits(spec) + ", per /" + std::to_string(l.per);
    // The defaults go unsaid.
    if (!l.verify) out += ", verify off";
    if (spec.verify_rate) out += ", proofs " + format_rate(l.verify_rate.count, l.verify_rate.period_ns);
    if (spec.remember) out += ", remember " + format_duration(l.remember);
    if (spec.ban_for)
      out += ", banned for " + format_duration(*spec.ban_for) + " after " + format_duration(*spec.ban_after) +
             " over its limit";
  }
  if (spec.redirect) out += ", " + format_over_kinds(over_kinds_of(spec)) + " sent out " + *spec.redirect;
  if (spec.ecn) out += ", ECN-capable packets marked past half the burst and through an overdraft of half a burst";
  if (spec.fleet) out += ", shared by the fleet";
  if (spec.dry_run) out += " (dry-run)";
  return out;
}

nlohmann::json rule_json(const RuleEntry& e) {
  nlohmann::json j = {{"cidr", format_cidr(e.cidr)},
                      {"match", format_match(e.spec.match)},
                      {"family", e.cidr.family == XT_FAMILY_V4 ? "ipv4" : "ipv6"},
                      {"action", action_name(e.spec.action)},
                      {"dry_run", e.spec.dry_run},
                      {"scope", e.spec.fleet ? "fleet" : "host"},
                      {"id", e.rule.id},
                      {"generation", e.rule.gen},
                      {"options", options_text(e.spec)}};
  if (e.spec.match.proto) j["proto"] = format_proto(*e.spec.match.proto);
  if (e.spec.match.ports) {
    j["port"] = format_ports(*e.spec.match.ports);
    j["port_low"] = e.spec.match.ports->first;
    j["port_high"] = e.spec.match.ports->second;
  }
  if (e.spec.match.syn) j["syn"] = true;
  j["over"] = e.spec.redirect ? "redirect" : e.spec.ecn ? "ecn" : "drop";
  if (e.spec.redirect) {
    j["redirect_interface"] = *e.spec.redirect;
    j["over_reasons"] = nlohmann::json::array();
    for (int k = 0; k < XT_OVER_KINDS; k++)
      if (over_kinds_of(e.spec) >> k & 1) j["over_reasons"].push_back(over_kind_name(k));
  }
  if (e.spec.action != XT_ACT_LIMIT) return j;
  const Limits l = limits_of(e.spec);
  j["per"] = l.per;
  j["new_rate"] = format_rate(l.new_rate.count, l.new_rate.period_ns);
  j["verify"] = l.verify ? "tcp" : "off";
  j["verify_rate"] = format_rate(l.verify_rate.count, l.verify_rate.period_ns);
  j["remember"] = format_duration(l.remember);
  j["remember_seconds"] = l.remember;
  if (e.spec.ban_for) {
    j["ban_after_seconds"] = *e.spec.ban_after;
    j["ban_for_seconds"] = *e.spec.ban_for;
  }
  // Every window; and, as before windows came, the shortest packet and
  // byte windows under their own keys.
  j["windows"] = nlohmann::json::array();
  for (const Window& w : l.windows) {
    j["windows"].push_back({{"kind", w.bytes ? "bytes" : "packets"},
                            {"limit", window_name(w)},
                            {w.bytes ? "bits" : "packets", w.count},
                            {"period_seconds", w.period_ns / kNsPerSec},
                            {w.bytes ? "burst_bytes" : "burst", w.burst}});
    if (!w.bytes && !j.contains("rate")) {
      j["rate"] = window_name(w);
      j["rate_packets"] = w.count;
      j["rate_period_seconds"] = w.period_ns / kNsPerSec;
      j["burst"] = w.burst;
    }
    if (w.bytes && !j.contains("bandwidth")) {
      j["bandwidth"] = window_name(w);
      if (w.period_ns == kNsPerSec) j["bandwidth_bits_per_second"] = w.count;
      j["burst_bytes"] = w.burst;
    }
  }
  if (l.total) {
    j["total"] = window_name(*l.total);
    j["total_kind"] = l.total->bytes ? "bytes" : "packets";
    j["total_burst"] = l.total->burst;
  }
  return j;
}

nlohmann::json rules_json(const std::vector<RuleEntry>& rules) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : rules) out.push_back(rule_json(e));
  return out;
}

std::string rules_text(const std::vector<RuleEntry>& rules) {
  if (rules.empty()) return "no rules\n";
  std::string out = fmt("%-44s %-18s %-6s %-5s %s\n", "CIDR", "MATCH", "ACTION", "PER", "LIMITS");
  for (const auto& e : rules) {
    const bool limit = e.spec.action == XT_ACT_LIMIT;
    const std::string match = format_match(e.spec.match);
    out += fmt("%-44s %-18s %-6s %-5s %s%s\n", format_cidr(e.cidr).c_str(), match.empty() ? "-" : match.c_str(),
               action_name(e.spec.action),
               limit ? ("/" + std::to_string(limits_of(e.spec).per)).c_str() : "-",
               limit ? describe_limits(e.spec).c_str() : "-",
               (std::string(e.spec.redirect ? " (drops sent out " + *e.spec.redirect + ")" : "") +
                (e.spec.dry_run ? " (dry-run)" : ""))
                   .c_str());
  }
  return out;
}

}  // namespace xt
