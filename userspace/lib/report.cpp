// SPDX-License-Identifier: MIT
#include "report.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>

#include "keys.h"
#include "meter.h"
#include "seen.h"
#include "config.h"
#include "map_util.h"
#include "object.h"

namespace xt {
namespace {

using json = nlohmann::json;

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
  char buf[512];
  va_list args;
  va_start(args, format);
  vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  return buf;
}

constexpr ReasonInfo kReasons[XT_REASONS] = {
    {"within_limit", "passed within limit"},
    {"allowed", "passed by allow rule"},
    {"dry_run", "passed, dry-run (would drop)"},
    {"unmatched", "passed, no rule"},
    {"non_ip", "passed, not IP"},
    {"over_limit", "dropped over limit"},
    {"denied", "dropped by deny rule"},
    {"malformed", "dropped malformed"},
    {"table_full", "dropped, table refused insert"},
    {"new_source", "dropped, new-source budget"},
};

json count_json(const xt_count& c) { return {{"packets", c.packets}, {"bytes", c.bytes}}; }

xt_count sum_reasons(const std::vector<xt_count>& reasons, uint32_t from, uint32_t to) {
  xt_count total{};
  for (uint32_t r = from; r < to && r < reasons.size(); r++) {
    total.packets += reasons[r].packets;
    total.bytes += reasons[r].bytes;
  }
  return total;
}

std::string rule_flags_text(const xt_rule& rule) {
  return (rule.flags & XT_RULE_DRY_RUN) ? " (dry-run)" : "";
}

}  // namespace

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

const ReasonInfo& reason_info(uint32_t reason) { return kReasons[reason < XT_REASONS ? reason : 0]; }

json rule_json(const Cidr& cidr, const xt_rule& rule) {
  json j = {{"cidr", format_cidr(cidr)},
            {"family", cidr.family == XT_FAMILY_V4 ? "ipv4" : "ipv6"},
            {"action", action_name(rule.action)},
            {"dry_run", (rule.flags & XT_RULE_DRY_RUN) != 0},
            {"id", rule.id},
            {"generation", rule.gen}};
  if (rule.action != XT_ACT_LIMIT) return j;
  j["per"] = rule.per_len;
  j["new_rate"] = format_rate(rule.new_count, rule.new_period_ns);
  if (rule.flags & XT_RULE_PKT_LIMIT) {
    j["rate"] = format_rate(rule.rate_count, rule.rate_period_ns);
    j["rate_packets"] = rule.rate_count;
    j["rate_period_seconds"] = rule.rate_period_ns / kNsPerSec;
    j["burst"] = rule.burst;
  }
  if (rule.flags & XT_RULE_BYTE_LIMIT) {
    j["bandwidth"] = format_bandwidth(rule.bw_bits, rule.flags & XT_RULE_BW_BYTES);
    j["bandwidth_bits_per_second"] = rule.bw_bits;
    j["burst_bytes"] = rule.burst_bytes;
  }
  return j;
}

json rules_json(const std::vector<RuleEntry>& rules) {
  json out = json::array();
  for (const auto& e : rules) out.push_back(rule_json(e.cidr, e.rule));
  return out;
}

std::string rules_text(const std::vector<RuleEntry>& rules) {
  if (rules.empty()) return "no rules\n";
  std::string out = fmt("%-44s %-6s %-5s %s\n", "CIDR", "ACTION", "PER", "LIMITS");
  for (const auto& e : rules) {
    const bool limit = e.rule.action == XT_ACT_LIMIT;
    out += fmt("%-44s %-6s %-5s %s%s\n", format_cidr(e.cidr).c_str(), action_name(e.rule.action),
               limit ? ("/" + std::to_string(e.rule.per_len)).c_str() : "-",
               limit ? describe_limits(e.rule).c_str() : "-", rule_flags_text(e.rule).c_str());
  }
  return out;
}

Result<std::vector<Saturation>> saturations(const State& state, const std::vector<RuleCounters>& rules) {
  std::vector<Saturation> out;
  // Saturated, and the last drop within XT_RELEASE_SECONDS (after that it
  // has ended, and the next admission will say so).
  if (std::ranges::none_of(rules, [](const RuleCounters& r) { return r.state.saturated_since != 0; })) return out;
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  auto now = state.now();
  if (!now) return std::unexpected(now.error());
  const uint32_t tick = static_cast<uint32_t>(*now);
  for (const auto& r : rules) {
    const xt_rule_state& st = r.state;
    if (!st.saturated_since || tick - st.last_new_drop >= cfg->hz * XT_RELEASE_SECONDS) continue;
    Saturation sat;
    sat.rule = format_cidr(r.cidr);
    sat.new_rate = format_rate(r.rule.new_count, r.rule.new_period_ns);
    sat.seconds = static_cast<double>(tick - st.saturated_since) / cfg->hz;
    const uint64_t now_dropped = r.stats.new_source_dropped_packets;
    const uint64_t dropped = now_dropped > st.new_drops_at_start ? now_dropped - st.new_drops_at_start : 0;
    sat.dropped_pps = sat.seconds > 0 ? static_cast<double>(dropped) / sat.seconds : 0;
    sat.dry_run = r.rule.flags & XT_RULE_DRY_RUN;
    out.push_back(sat);
  }
  return out;
}

xt_count Stats::passed() const { return sum_reasons(reasons, 0, XT_FIRST_DROP); }
xt_count Stats::dropped() const { return sum_reasons(reasons, XT_FIRST_DROP, XT_REASONS); }
bool Stats::is_saturated(const Cidr& cidr) const {
  const std::string rule = format_cidr(cidr);
  return std::ranges::any_of(saturated, [&](const Saturation& s) { return s.rule == rule; });
}

uint64_t Stats::extra(uint32_t counter) const { return counter < reasons.size() ? reasons[counter].packets : 0; }

Result<Stats> read_stats(const State& state) {
  Stats s;
  auto reasons = state.counters();
  if (!reasons) return std::unexpected(reasons.error());
  auto rules = state.rule_counters();
  if (!rules) return std::unexpected(rules.error());
  auto saturated = saturations(state, *rules);
  if (!saturated) return std::unexpected(saturated.error());
  s.reasons = std::move(*reasons);
  s.rules = std::move(*rules);
  s.saturated = std::move(*saturated);
  return s;
}

json stats_json(const Stats& stats) {
  const xt_count passed = stats.passed(), dropped = stats.dropped();
  json j = {{"passed_packets", passed.packets},
            {"passed_bytes", passed.bytes},
            {"dropped_packets", dropped.packets},
            {"dropped_bytes", dropped.bytes}};
  json reasons = json::object();
  for (uint32_t r = 0; r < XT_REASONS; r++) reasons[kReasons[r].key] = count_json(stats.reasons[r]);
  j["reasons"] = reasons;
  json rules = json::object();
  for (const auto& r : stats.rules) {
    rules[format_cidr(r.cidr)] = {{"action", action_name(r.rule.action)},
                                  {"dry_run", (r.rule.flags & XT_RULE_DRY_RUN) != 0},
                                  {"passed_packets", r.stats.passed_packets},
                                  {"passed_bytes", r.stats.passed_bytes},
                                  {"dropped_packets", r.stats.dropped_packets},
                                  {"dropped_bytes", r.stats.dropped_bytes},
                                  {"dryrun_packets", r.stats.dryrun_packets},
                                  {"dryrun_bytes", r.stats.dryrun_bytes},
                                  {"new_source_dropped_packets", r.stats.new_source_dropped_packets},
                                  {"new_source_saturated", stats.is_saturated(r.cidr)}};
  }
  j["rules"] = rules;
  j["events_sent"] = stats.extra(XT_EVENTS_SENT);
  j["events_suppressed"] = stats.extra(XT_EVENTS_SUPPRESSED);
  j["events_lost"] = stats.extra(XT_EVENTS_LOST);
  j["sources_admitted"] = stats.extra(XT_SOURCES_ADMITTED);
  return j;
}

std::string stats_text(const Stats& stats) {
  const xt_count passed = stats.passed(), dropped = stats.dropped();
  std::string out = fmt("%-30s %14s %16s\n", "", "PACKETS", "BYTES");
  out += fmt("%-30s %14llu %16llu\n", "passed", (unsigned long long)passed.packets,
             (unsigned long long)passed.bytes);
  out += fmt("%-30s %14llu %16llu\n", "dropped", (unsigned long long)dropped.packets,
             (unsigned long long)dropped.bytes);
  for (uint32_t r = 0; r < XT_REASONS; r++)
    out += fmt("  %-28s %14llu %16llu\n", kReasons[r].text, (unsigned long long)stats.reasons[r].packets,
               (unsigned long long)stats.reasons[r].bytes);
  if (stats.rules.empty()) return out + "\nno rules\n";
  out += fmt("\n%-44s %14s %14s %14s\n", "RULE", "PASSED", "DROPPED", "WOULD-DROP");
  for (const auto& r : stats.rules)
    out += fmt("%-44s %14llu %14llu %14s%s\n", format_cidr(r.cidr).c_str(),
               (unsigned long long)r.stats.passed_packets, (unsigned long long)r.stats.dropped_packets,
               (r.rule.flags & XT_RULE_DRY_RUN) ? std::to_string(r.stats.dryrun_packets).c_str() : "-",
               stats.is_saturated(r.cidr) ? "  new-source budget saturated" : "");
  for (const auto& sat : stats.saturated)
    out += fmt("\nthe new-source budget of %s (%s) is saturated: %.0f untracked packets/s dropped for %.0f s; new "
               "clients are turned away with them\n",
               sat.rule.c_str(), sat.new_rate.c_str(), sat.dropped_pps, sat.seconds);
  return out;
}

json stats_rate_json(const Stats& before, const Stats& after, double seconds) {
  auto rate = [&](uint64_t a, uint64_t b) { return seconds > 0 ? static_cast<double>(b - a) / seconds : 0.0; };
  json j = stats_json(after);
  j["interval_seconds"] = seconds;
  j["passed_pps"] = rate(before.passed().packets, after.passed().packets);
  j["dropped_pps"] = rate(before.dropped().packets, after.dropped().packets);
  j["passed_bps"] = 8 * rate(before.passed().bytes, after.passed().bytes);
  j["dropped_bps"] = 8 * rate(before.dropped().bytes, after.dropped().bytes);
  return j;
}

std::string stats_rate_text(const Stats& before, const Stats& after, double seconds) {
  json j = stats_rate_json(before, after, seconds);
  return fmt("passed %12.0f pkt/s %14.0f bit/s   dropped %12.0f pkt/s %14.0f bit/s   (so far: %llu passed, %llu "
             "dropped)\n",
             j["passed_pps"].get<double>(), j["passed_bps"].get<double>(), j["dropped_pps"].get<double>(),
             j["dropped_bps"].get<double>(), (unsigned long long)after.passed().packets,
             (unsigned long long)after.dropped().packets);
}

Result<std::vector<TopRow>> read_top(const State& state, size_t limit) {
  auto rules = state.rules();
  if (!rules) return std::unexpected(rules.error());
  auto now = state.now();
  if (!now) return std::unexpected(now.error());
  std::map<uint32_t, const RuleEntry*> by_id;
  for (const auto& e : *rules) by_id[e.rule.id] = &e;

  // Drops the per-CPU hot caches counted but have not added to their bucket
  // yet belong to the rows too.
  auto pending = state.hot_pending();
  if (!pending) return std::unexpected(pending.error());

  std::vector<TopRow> rows;
  auto walked = state.for_each_bucket([&](const BucketEntry& e) {
    auto it = by_id.find(e.key.rule_id);
    if (it == by_id.end()) return;  // its rule was just deleted
    const xt_rule& rule = it->second->rule;
    TopRow row;
    Cidr src{e.key.family, {}, e.key.per_len};
    std::copy(std::begin(e.key.addr), std::end(e.key.addr), src.addr.begin());
    row.source = format_cidr(src);
    row.rule = format_cidr(it->second->cidr);
    row.passed_packets = e.bucket.passed_packets;
    row.dropped_packets = e.bucket.dropped_packets;
    if (auto p = pending->find(e.key); p != pending->end()) row.dropped_packets += p->second;
    row.dry_run = rule.flags & XT_RULE_DRY_RUN;
    if (rule.flags & XT_RULE_PKT_LIMIT) {
      const uint64_t word = XT_REGEN_PKT(&rule, e.bucket.pkt_word, *now);
      row.packets_left = static_cast<int64_t>(xt_available(&rule.pkt, word, *now));
    }
    rows.push_back(std::move(row));
  });
  if (!walked) return std::unexpected(walked.error());
  std::ranges::sort(rows, [](const TopRow& a, const TopRow& b) {
    return std::tie(b.dropped_packets, b.passed_packets, a.source) <
           std::tie(a.dropped_packets, a.passed_packets, b.source);
  });
  if (rows.size() > limit) rows.resize(limit);
  return rows;
}

json top_json(const std::vector<TopRow>& rows) {
  json out = json::array();
  for (const auto& r : rows) {
    json j = {{"source", r.source},
              {"rule", r.rule},
              {"passed_packets", r.passed_packets},
              {"dropped_packets", r.dropped_packets},
              {"dry_run", r.dry_run}};
    if (r.packets_left >= 0) j["packets_left"] = r.packets_left;
    if (r.dropped_pps >= 0) j["dropped_pps"] = r.dropped_pps;
    if (r.passed_pps >= 0) j["passed_pps"] = r.passed_pps;
    out.push_back(j);
  }
  return out;
}

std::string top_text(const std::vector<TopRow>& rows) {
  if (rows.empty()) return "no tracked sources\n";
  const bool rates = rows.front().dropped_pps >= 0;
  std::string out = fmt("%-44s %-20s %s%12s %12s %10s\n", "SOURCE", "RULE",
                        rates ? fmt("%11s %11s ", "DROP/s", "PASS/s").c_str() : "", "PASSED", "DROPPED", "LEFT");
  for (const auto& r : rows)
    out += fmt("%-44s %-20s %s%12llu %12llu%s %10s\n", r.source.c_str(), r.rule.c_str(),
               rates ? fmt("%11.0f %11.0f ", r.dropped_pps, r.passed_pps).c_str() : "",
               (unsigned long long)r.passed_packets, (unsigned long long)r.dropped_packets, r.dry_run ? "*" : " ",
               r.packets_left >= 0 ? std::to_string(r.packets_left).c_str() : "-");
  if (std::ranges::any_of(rows, &TopRow::dry_run)) out += "* dry-run rule: these drops were counted, not done\n";
  return out;
}

namespace {

// xthrottle running here on state other than pin_dir's: the one thing a
// status read from the wrong pin directory must not hide. A warning when
// the state asked about protects nothing here (it is absent, or attached
// nowhere in this namespace), a note otherwise (another instance is fine).
void tell_elsewhere(Status& s, uint32_t rules_id) {
  for (const auto& p : other_xthrottles(rules_id)) s.elsewhere.push_back({p.ifname, p.prog_id, p.pin_dir});
  const bool attached = std::ranges::any_of(s.interfaces, &Attachment::live);
  for (const auto& e : s.elsewhere)
    (attached ? s.notes : s.warnings)
        .push_back(e.ifname + " runs xthrottle (prog id " + std::to_string(e.prog_id) + ") on state that is not in " +
                   s.pin_dir +
                   (e.pin_dir.empty() ? std::string(": its state is not pinned on any BPF file system mounted here; "
                                                    "look for it where it was attached from")
                                      : ": its state is pinned in " + e.pin_dir + " (use --pin-dir " + e.pin_dir + ")"));
}

}  // namespace

Result<Status> read_status(const std::string& pin_dir) {
  Status s;
  s.pin_dir = pin_dir;
  s.state = State::exists(pin_dir);
  if (!s.state) {
    tell_elsewhere(s, 0);
    if (s.elsewhere.empty())
      s.warnings.push_back("not protecting: no xthrottle state in " + pin_dir +
                           " (nothing attached or configured there)");
    return s;
  }
  auto state = State::open(pin_dir);
  if (!state) return std::unexpected(state.error());
  auto counted = state->rule_counters();
  if (!counted) return std::unexpected(counted.error());
  for (const auto& r : *counted) s.rules.push_back({r.cidr, r.rule});
  auto ifaces = attachments(*state);
  if (!ifaces) return std::unexpected(ifaces.error());
  s.interfaces = std::move(*ifaces);
  tell_elsewhere(s, map_id(state->rules_fd()));
  auto cfg = state->config();
  if (!cfg) return std::unexpected(cfg.error());
  s.max_sources = cfg->max_sources;
  s.hz = cfg->hz;
  s.bytes_per_source = state->source_memory_bytes() / cfg->max_sources;
  auto walked = state->for_each_bucket([&](const BucketEntry&) { s.tracked_sources++; });
  if (!walked) return std::unexpected(walked.error());
  auto counters = state->counters();
  if (!counters) return std::unexpected(counters.error());
  s.table_full_drops = (*counters)[XT_DROP_NO_STATE].packets;
  s.new_source_drops = (*counters)[XT_DROP_NEW_SOURCE].packets;

  auto saturated = saturations(*state, *counted);
  if (!saturated) return std::unexpected(saturated.error());
  s.saturated = std::move(*saturated);

  auto meta = state->meta();
  if (!meta) return std::unexpected(meta.error());
  if (meta->config_path[0]) {
    s.config_path = std::string(meta->config_path, strnlen(meta->config_path, sizeof(meta->config_path)));
    for (uint8_t byte : meta->config_sha256) s.config_sha256 += fmt("%02x", byte);
    s.config_applied_at = meta->applied_at;
    // Read once: hashed to see whether it changed, parsed to see whether
    // the rules still say what it says.
    const auto bytes = read_file(s.config_path);
    const std::string on_disk = bytes ? sha256_hex(*bytes) : "";
    s.config_changed = on_disk != s.config_sha256;
    if (s.config_changed) {
      s.config_warnings.push_back("config " + s.config_path + (on_disk.empty() ? " is gone" : " changed") +
                                  " since it was applied: the live rules may not be what it says (xthrottle apply "
                                  "it, or SIGHUP serve)");
    } else if (auto file = parse_config(*bytes, s.config_path, cfg->hz); file) {
      // The file is what was applied; are the rules still what it says, or
      // did `rule add`/`rule del` change them since?
      auto diff = diff_config(*state, *file);
      s.rules_drifted = diff && !diff->empty();
      if (s.rules_drifted)
        s.config_warnings.push_back("the live rules differ from " + s.config_path +
                                    " (changed by rule add/del since it was applied: " +
                                    std::to_string(diff->add.size() + diff->change.size()) +
                                    " rule(s) missing or different, " + std::to_string(diff->remove.size()) +
                                    " extra); `xthrottle apply --dry-run` shows how");
    }
  }

  const bool attached = std::ranges::any_of(s.interfaces, &Attachment::live);
  if (!attached && s.elsewhere.empty())
    s.warnings.push_back("not protecting: not attached to any interface in this network namespace");
  for (const auto& a : s.interfaces) {
    if (!a.live) {
      s.warnings.push_back(a.ifname + ": attached by xthrottle (prog id " + std::to_string(a.prog_id) +
                           ") but the program is gone from the interface");
      continue;
    }
    // A device without a link layer (tun, WireGuard) has no native XDP for
    // its frames: generic mode is not a fallback there, but the only way.
    if (a.mode == XT_MODE_SKB && a.requested != XT_MODE_SKB && a.link != XT_LINK_IP)
      s.warnings.push_back(a.ifname + ": running in generic (skb) mode, not native: slower, and the stack "
                           "has already spent work on every packet");
    if (a.mode == XT_MODE_SKB)
      s.notes.push_back(a.ifname + ": generic (skb) mode sees super-packets (a local TCP sender's 64 KB "
                        "segments, GRO aggregates): each counts as the wire packets it stands for, estimated "
                        "from the MTU: exact for full-size segments, fewer for a sender whose segments are "
                        "smaller");
    if (a.link == XT_LINK_IP)
      s.notes.push_back(a.ifname + ": no link layer (tun, WireGuard): frames are read from the IP header");
    if (a.mtu && a.mtu_now && frags_needed(a.mtu) != frags_needed(a.mtu_now))
      s.warnings.push_back(a.ifname + ": the MTU is " + std::to_string(a.mtu_now) + " but the program was loaded "
                           "for " + std::to_string(a.mtu) + (frags_needed(a.mtu_now) ? ", without" : ", with") +
                           " multi-buffer frames: `xthrottle attach " + a.ifname + "` again to swap in the right "
                           "one");
  }
  if (attached && s.rules.empty()) s.warnings.push_back("not limiting anything: attached, but there are no rules");
  std::string dry;
  for (const auto& e : s.rules)
    if (e.rule.flags & XT_RULE_DRY_RUN) dry += (dry.empty() ? "" : ", ") + format_cidr(e.cidr);
  if (!dry.empty()) s.warnings.push_back("dry-run on: " + dry + " count what they would drop but drop nothing");
  // New-source budgets admit sources into the table; if together they can
  // turn it over faster than the idle window, quiet established sources can
  // be evicted by a flood's newcomers.
  double admissions = 0;
  for (const auto& e : s.rules)
    if (e.rule.action == XT_ACT_LIMIT && e.rule.new_period_ns)
      admissions += static_cast<double>(e.rule.new_count) * kNsPerSec / static_cast<double>(e.rule.new_period_ns);
  if (admissions > 0 && s.max_sources / admissions < XT_DEFAULT_IDLE_SECONDS)
    s.warnings.push_back(fmt("new-source budgets (%.0f/s in all) can turn the source table (%u) over in %.0f s, "
                             "less than the %d s that keeps a quiet source established: raise --max-sources or "
                             "lower --new-rate",
                             admissions, s.max_sources, s.max_sources / admissions, XT_DEFAULT_IDLE_SECONDS));
  if (s.table_full_drops)
    s.warnings.push_back("the source table (" + std::to_string(s.max_sources) + " entries) refused " +
                         std::to_string(s.table_full_drops) +
                         " inserts under churn: those packets were dropped (raise --max-sources)");
  return s;
}

json status_json(const Status& s) {
  json ifaces = json::array();
  for (const auto& a : s.interfaces)
    ifaces.push_back({{"ifname", a.ifname},
                      {"ifindex", a.ifindex},
                      {"attached", a.live},
                      {"mode", mode_name(a.mode)},
                      {"requested_mode", a.recorded ? mode_name(a.requested) : "unknown"},
                      {"multiprog", a.multiprog},
                      {"prog_id", a.prog_id},
                      {"link", link_name(a.link)},
                      {"mtu", a.mtu}});
  json saturated = json::array();
  for (const auto& sat : s.saturated)
    saturated.push_back({{"rule", sat.rule},
                         {"new_rate", sat.new_rate},
                         {"seconds", sat.seconds},
                         {"dropped_pps", sat.dropped_pps},
                         {"dry_run", sat.dry_run}});
  json elsewhere = json::array();
  for (const auto& e : s.elsewhere)
    elsewhere.push_back({{"ifname", e.ifname},
                         {"prog_id", e.prog_id},
                         {"pin_dir", e.pin_dir.empty() ? json(nullptr) : json(e.pin_dir)}});
  size_t dry = std::ranges::count_if(s.rules, [](const RuleEntry& e) { return e.rule.flags & XT_RULE_DRY_RUN; });
  return {{"pin_dir", s.pin_dir},
          {"state", s.state},
          {"protected", s.warnings.empty()},
          {"rules", s.rules.size()},
          {"dry_run_rules", dry},
          {"tracked_sources", s.tracked_sources},
          {"max_sources", s.max_sources},
          {"bytes_per_source", s.bytes_per_source},
          {"hz", s.hz},
          {"new_source_dropped_packets", s.new_source_drops},
          {"new_source_saturated", saturated},
          {"interfaces", ifaces},
          {"elsewhere", elsewhere},
          {"config", s.config_path.empty() ? nlohmann::json(nullptr)
                                           : nlohmann::json{{"path", s.config_path},
                                                            {"sha256", s.config_sha256},
                                                            {"applied_at", s.config_applied_at},
                                                            {"changed_since", s.config_changed},
                                                            {"rules_differ", s.rules_drifted}}},
          // "warnings" has every warning, as it always did; "protected"
          // heeds those about protection only (config drift is not one).
          {"warnings", [&] {
             std::vector<std::string> all = s.warnings;
             all.insert(all.end(), s.config_warnings.begin(), s.config_warnings.end());
             return all;
           }()},
          {"config_warnings", s.config_warnings},
          {"notes", s.notes}};
}

std::string status_text(const Status& s) {
  std::string out;
  if (s.state) {
    out += fmt("state:   %s: %zu rules, %llu of %u sources tracked (%llu bytes each), clock %u Hz\n",
               s.pin_dir.c_str(), s.rules.size(), (unsigned long long)s.tracked_sources, s.max_sources,
               (unsigned long long)s.bytes_per_source, s.hz);
    if (s.new_source_drops)
      out += fmt("         %llu packets from untracked sources dropped over new-source budgets\n",
                 (unsigned long long)s.new_source_drops);
  } else {
    out += "state:   none in " + s.pin_dir + "\n";
  }
  if (!s.config_path.empty())
    out += "config:  " + s.config_path + " (sha256 " + s.config_sha256.substr(0, 12) + "...)" + "\n";
  for (const auto& a : s.interfaces) {
    if (!a.live) continue;
    out += fmt("%-8s attached, %s mode%s, %s, prog id %u\n", (a.ifname + ":").c_str(), mode_name(a.mode),
               a.recorded ? (" (asked: " + std::string(mode_name(a.requested)) + ")").c_str() : "",
               a.multiprog ? "libxdp multi-program dispatcher" : "single program", a.prog_id);
  }
  for (const auto& sat : s.saturated)
    out += sat.dry_run
               ? fmt("UNDER A FLOOD (dry-run): the new-source budget of %s (%s) has been full for %.0f s; it would "
                     "drop %.0f packets/s of untracked sources, new clients among them, and passes them\n",
                     sat.rule.c_str(), sat.new_rate.c_str(), sat.seconds, sat.dropped_pps)
               : fmt("UNDER A FLOOD: the new-source budget of %s (%s) has been full for %.0f s, dropping %.0f "
                     "packets/s of untracked sources: new clients are turned away with them\n",
                     sat.rule.c_str(), sat.new_rate.c_str(), sat.seconds, sat.dropped_pps);
  for (const auto& n : s.notes) out += "note: " + n + "\n";
  for (const auto& w : s.config_warnings) out += "WARNING (config): " + w + "\n";
  for (const auto& w : s.warnings) out += "WARNING: " + w + "\n";
  if (s.warnings.empty()) out += "protected\n";
  return out;
}

}  // namespace xt
