// SPDX-License-Identifier: MIT
#include "stats.h"

#include <cmath>

#include <algorithm>
#include <map>

#include "format.h"
#include "meter.h"

namespace xt {
namespace {

using json = nlohmann::json;


json count_json(const xt_count& c) { return {{"packets", c.packets}, {"bytes", c.bytes}}; }

xt_count sum_reasons(const std::vector<xt_count>& reasons, uint32_t from, uint32_t to) {
  xt_count total{};
  for (uint32_t r = from; r < to && r < reasons.size(); r++) {
    total.packets += reasons[r].packets;
    total.bytes += reasons[r].bytes;
  }
  return total;
}

// How new clients get past a saturated budget of a rule of these limits.
std::string ways_in(const Limits& l) {
  if (l.verify && l.remember) return "new clients get in only by proof (TCP) or as known sources (--remember)";
  if (l.verify) return "new clients get in only by proof (TCP; --remember 0: none is remembered)";
  if (l.remember) return "new clients get in only as known sources (--verify off: no TCP proofs)";
  return "new clients are turned away with them (--verify off, --remember 0)";
}

}  // namespace

std::string saturation_text(const Saturation& sat) {
  // A dry-run rule's budget saturates as any other's, and passes what it
  // would drop: it must not read as a rule turning clients away.
  return sat.dry_run ? fmt("the new-source budget of %s (%s) has been full for %.0f s; it would drop %.0f packets/s "
                           "of untracked sources, new clients among them, and passes them",
                           sat.rule.c_str(), sat.new_rate.c_str(), sat.seconds, sat.dropped_pps)
                     : fmt("the new-source budget of %s (%s) has been full for %.0f s, dropping %.0f packets/s of "
                           "untracked sources: %s",
                           sat.rule.c_str(), sat.new_rate.c_str(), sat.seconds, sat.dropped_pps, sat.ways_in.c_str());
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
    if (!st.saturated_since || xt_ticks_since(tick, st.last_new_drop, cfg->hz * XT_RELEASE_SECONDS, cfg->hz)) continue;
    Saturation sat;
    sat.rule = rule_name(r.cidr, r.spec.match);
    const Limits limits = limits_of(r.spec);
    sat.new_rate = format_rate(limits.new_rate.count, limits.new_rate.period_ns);
    sat.ways_in = ways_in(limits);
    // The data path stamps the start as now | 1, and another CPU's tick may
    // be ahead of this read: a start up to a second ahead is now, not a
    // wrap of 49 days.
    sat.seconds = xt_ticks_since(tick, st.saturated_since, 0, cfg->hz)
                      ? static_cast<double>(tick - st.saturated_since) / cfg->hz
                      : 0.0;
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
xt_count Stats::dropped_without_rule() const {
  // Banned or blocklisted while no rule covers them, and malformed.
  const xt_count unruled = extra_count(XT_DROPPED_WITHOUT_RULE), malformed = extra_count(XT_DROP_MALFORMED);
  return {unruled.packets + malformed.packets, unruled.bytes + malformed.bytes};
}
bool Stats::is_saturated(const RuleCounters& r) const {
  const std::string rule = rule_name(r.cidr, r.spec.match);
  return std::ranges::any_of(saturated, [&](const Saturation& s) { return s.rule == rule; });
}

uint64_t Stats::extra(uint32_t counter) const { return extra_count(counter).packets; }
xt_count Stats::extra_count(uint32_t counter) const { return counter < reasons.size() ? reasons[counter] : xt_count{}; }

std::optional<double> fair_share(const RuleCounters& r, uint32_t hz) {
  if (!(r.rule.flags & XT_RULE_TOTAL)) return std::nullopt;
  if (!r.state.fair_cost) return 0.0;
  return std::ldexp(static_cast<double>(hz), XT_FAIR_SHIFT) / static_cast<double>(r.state.fair_cost);
}

std::optional<double> fair_quiet_seconds(const RuleCounters& r, uint32_t hz) {
  if (!(r.rule.flags & XT_RULE_TOTAL)) return std::nullopt;
  return hz ? static_cast<double>(r.state.fair_quiet) / hz : 0.0;
}

Result<Stats> read_stats(const State& state) {
  Stats s;
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  s.hz = cfg->hz;
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
    rules[rule_name(r.cidr, r.spec.match)] = {{"action", action_name(r.rule.action)},
                                  {"dry_run", (r.rule.flags & XT_RULE_DRY_RUN) != 0},
                                  {"passed_packets", r.stats.passed_packets},
                                  {"passed_bytes", r.stats.passed_bytes},
                                  {"dropped_packets", r.stats.dropped_packets},
                                  {"dropped_bytes", r.stats.dropped_bytes},
                                  {"dryrun_packets", r.stats.dryrun_packets},
                                  {"dryrun_bytes", r.stats.dryrun_bytes},
                                  {"new_source_dropped_packets", r.stats.new_source_dropped_packets},
                                  {"redirected_packets", r.stats.redirected_packets},
                                  {"redirected_bytes", r.stats.redirected_bytes},
                                  {"marked_packets", r.stats.marked_packets},
                                  {"marked_bytes", r.stats.marked_bytes},
                                  {"new_source_saturated", stats.is_saturated(r)}};
    if (auto share = fair_share(r, stats.hz)) {
      auto& row = rules[rule_name(r.cidr, r.spec.match)];
      row["fair_share_per_second"] = *share;
      row["fair_quiet_seconds"] = fair_quiet_seconds(r, stats.hz).value_or(0.0);
    }
  }
  j["rules"] = rules;
  j["events_sent"] = stats.extra(XT_EVENTS_SENT);
  j["events_suppressed"] = stats.extra(XT_EVENTS_SUPPRESSED);
  j["events_lost"] = stats.extra(XT_EVENTS_LOST);
  j["sources_admitted"] = stats.extra(XT_SOURCES_ADMITTED);
  // Buckets a newcomer took the slot of; of those, sources still sending
  // (within the idle window), whose limits no longer hold.
  j["sources_evicted"] = stats.extra(XT_SOURCES_EVICTED);
  j["sources_evicted_active"] = stats.extra(XT_SOURCES_EVICTED_ACTIVE);
  j["proofs_sent"] = stats.extra(XT_PROOFS_SENT);
  j["proofs_passed"] = stats.extra(XT_PROOFS_PASSED);
  j["admitted_by_proof"] = stats.extra(XT_ADMITTED_BY_PROOF);
  j["admitted_by_memory"] = stats.extra(XT_ADMITTED_BY_MEMORY);
  // Of the dropped packets, those sent out another interface instead.
  j["redirected"] = count_json(stats.extra_count(XT_REDIRECTED));
  // Of the dropped packets, those no rule decided (malformed; banned or
  // blocklisted while no rule covers them): with the rules' drops, all.
  j["dropped_without_rule"] = count_json(stats.dropped_without_rule());
  // Of the passed packets, those marked Congestion Experienced (--over ecn).
  j["marked"] = count_json(stats.extra_count(XT_MARKED));
  // `xthrottle capture`: packets sampled, and those over its sampling rate.
  j["captured"] = stats.extra(XT_CAPTURED);
  j["capture_not_taken"] = stats.extra(XT_CAPTURE_SUPPRESSED);
  return j;
}

std::string stats_text(const Stats& stats) {
  const xt_count passed = stats.passed(), dropped = stats.dropped();
  std::string out = fmt("%-32s %14s %16s\n", "", "PACKETS", "BYTES");
  out += fmt("%-32s %14llu %16llu\n", "passed", (unsigned long long)passed.packets,
             (unsigned long long)passed.bytes);
  out += fmt("%-32s %14llu %16llu\n", "dropped", (unsigned long long)dropped.packets,
             (unsigned long long)dropped.bytes);
  for (uint32_t r = 0; r < XT_REASONS; r++)
    out += fmt("  %-30s %14llu %16llu\n", kReasons[r].text, (unsigned long long)stats.reasons[r].packets,
               (unsigned long long)stats.reasons[r].bytes);
  for (auto [which, text] : {std::pair{XT_REDIRECTED, "of them sent out elsewhere"},
                              std::pair{XT_MARKED, "passed and marked CE"}}) {
    const xt_count c = stats.extra_count(which);
    if (c.packets)
      out += fmt("  %-30s %14llu %16llu\n", text, (unsigned long long)c.packets, (unsigned long long)c.bytes);
  }
  out += fmt("\n%-32s %14llu\n%-32s %14llu\n%-32s %14llu\n%-32s %14llu\n", "proofs sent (SYN-ACKs)",
             (unsigned long long)stats.extra(XT_PROOFS_SENT), "proofs passed",
             (unsigned long long)stats.extra(XT_PROOFS_PASSED), "admitted by proof",
             (unsigned long long)stats.extra(XT_ADMITTED_BY_PROOF), "admitted by memory",
             (unsigned long long)stats.extra(XT_ADMITTED_BY_MEMORY));
  if (stats.rules.empty()) return out + "\nno rules\n";
  out += fmt("\n%-44s %14s %14s %14s\n", "RULE", "PASSED", "DROPPED", "WOULD-DROP");
  for (const auto& r : stats.rules)
    out += fmt("%-44s %14llu %14llu %14s%s\n", rule_name(r.cidr, r.spec.match).c_str(),
               (unsigned long long)r.stats.passed_packets, (unsigned long long)r.stats.dropped_packets,
               (r.rule.flags & XT_RULE_DRY_RUN) ? std::to_string(r.stats.dryrun_packets).c_str() : "-",
               stats.is_saturated(r) ? "  new-source budget saturated" : "");
  for (const auto& sat : stats.saturated) out += "\n" + saturation_text(sat) + "\n";
  return out;
}

json stats_rate_json(const Stats& before, const Stats& after, double seconds) {
  // A count that went back (a restore writing the per-CPU counters while
  // the data path counts) is no rate: 0, not 1.8e19.
  auto rate = [&](uint64_t a, uint64_t b) { return seconds > 0 && b > a ? static_cast<double>(b - a) / seconds : 0.0; };
  json j = stats_json(after);
  j["interval_seconds"] = seconds;
  j["passed_pps"] = rate(before.passed().packets, after.passed().packets);
  j["dropped_pps"] = rate(before.dropped().packets, after.dropped().packets);
  j["passed_bps"] = 8 * rate(before.passed().bytes, after.passed().bytes);
  j["dropped_bps"] = 8 * rate(before.dropped().bytes, after.dropped().bytes);
  // Above zero: the table is too small for the sources sending now.
  j["sources_evicted_active_per_second"] =
      rate(before.extra(XT_SOURCES_EVICTED_ACTIVE), after.extra(XT_SOURCES_EVICTED_ACTIVE));
  return j;
}

std::string stats_rate_text(const Stats& before, const Stats& after, double seconds) {
  json j = stats_rate_json(before, after, seconds);
  return fmt("passed %12.0f pkt/s %14.0f bit/s   dropped %12.0f pkt/s %14.0f bit/s   (so far: %llu passed, %llu "
             "dropped)\n",
             j["passed_pps"].get<double>(), j["passed_bps"].get<double>(), j["dropped_pps"].get<double>(),
             j["dropped_bps"].get<double>(), (unsigned long long)after.passed().packets,
             (unsigned long long)after.dropped().packets) +
         (j["sources_evicted_active_per_second"].get<double>() > 0
              ? fmt("  %.0f evictions/s of sources still sending: the table is too small for them\n",
                    j["sources_evicted_active_per_second"].get<double>())
              : "");
}

// How far back a bucket's 32-bit count may go between two reads of top
// --watch: the hot cache's pending drops, 255 a CPU, with room for 4096
// CPUs and to spare.
constexpr uint32_t kWentBack = 1u << 24;

Result<std::vector<TopRow>> read_top(const State& state, size_t limit, TopSnapshot* since, double seconds) {
  auto rules = state.rules();
  if (!rules) return std::unexpected(rules.error());
  auto now = state.now();
  if (!now) return std::unexpected(now.error());
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  std::map<uint32_t, const RuleEntry*> by_id;
  for (const auto& e : *rules) by_id[e.rule.id] = &e;

  // Drops the per-CPU hot caches counted but have not added to their bucket
  // yet belong to the rows too.
  auto pending = state.hot_pending();
  if (!pending) return std::unexpected(pending.error());

  const bool rates = since && !since->empty();
  if (since) since->resize(table_slots(*cfg));
  // The best `limit` so far, in a heap whose top is the one that ranks last.
  struct Candidate {
    BucketEntry e;
    uint64_t dropped, passed;  // what ranks it: since the snapshot, or all
  };
  auto ranks_before = [](const Candidate& a, const Candidate& b) {
    if (a.dropped != b.dropped) return a.dropped > b.dropped;
    if (a.passed != b.passed) return a.passed > b.passed;
    return BucketKeyLess{}(a.e.key, b.e.key);
  };
  std::vector<Candidate> best;
  auto walked = state.for_each_bucket([&](const BucketEntry& e) {
    if (!by_id.contains(e.key.rule_id)) return;  // its rule was just deleted
    Candidate c{e, 0, 0};
    c.e.bucket.dropped_packets += pending->of(e.key);
    c.dropped = c.e.bucket.dropped_packets;
    c.passed = c.e.bucket.passed_packets;
    if (since && e.slot < since->size()) {
      TopSeen& seen = (*since)[e.slot];
      const uint32_t hash = slot_key_hash(*cfg, e.key);
      const auto dropped = static_cast<uint32_t>(c.e.bucket.dropped_packets);
      const auto passed = static_cast<uint32_t>(c.e.bucket.passed_packets);
      if (rates) {
        // A slot that changed hands counts from zero. The counts are 32
        // bits and wrap: the difference is taken modulo 2^32, and one
        // within kWentBack of 2^32 is a count that went back, which counts
        // as none: drops the hot cache added to the bucket between the read
        // of its pending ones and this walk were counted twice last time
        // (255 at most a CPU); a bucket made anew for the same source is
        // rarer. Anything less is drops: a /16's bucket at 8 Mpps drops
        // 2^31 in under five minutes, which --watch 300 must not read as
        // none.
        auto since_seen = [&](uint32_t low, uint32_t was, uint64_t all) -> uint64_t {
          if (seen.key_hash != hash) return all;
          const uint32_t d = low - was;
          return d <= UINT32_MAX - kWentBack ? d : 0;
        };
        c.dropped = since_seen(dropped, seen.dropped, c.e.bucket.dropped_packets);
        c.passed = since_seen(passed, seen.passed, c.e.bucket.passed_packets);
      }
      seen = {hash, dropped, passed};
    }
    if (best.size() < limit) {
      best.push_back(std::move(c));
      std::ranges::push_heap(best, ranks_before);
    } else if (limit > 0 && ranks_before(c, best.front())) {
      std::ranges::pop_heap(best, ranks_before);
      best.back() = std::move(c);
      std::ranges::push_heap(best, ranks_before);
    }
  });
  if (!walked) return std::unexpected(walked.error());
  std::ranges::sort_heap(best, ranks_before);

  std::vector<TopRow> rows;
  for (const Candidate& c : best) {
    const RuleEntry& entry = *by_id.at(c.e.key.rule_id);
    const xt_rule& rule = entry.rule;
    TopRow row;
    Cidr src{c.e.key.family, {}, c.e.key.per_len};
    std::copy(std::begin(c.e.key.addr), std::end(c.e.key.addr), src.addr.begin());
    row.source = format_cidr(src);
    row.rule = rule_name(entry.cidr, entry.spec.match);
    row.passed_packets = c.e.bucket.passed_packets;
    row.dropped_packets = c.e.bucket.dropped_packets;
    row.dry_run = rule.flags & XT_RULE_DRY_RUN;
    const Limits limits = limits_of(entry.spec);
    const std::vector<int> at = window_positions(entry, cfg->hz);
    for (size_t i = 0; i < at.size(); i++) {
      const int p = at[i];
      if (p < 0) continue;
      const Window& w = limits.windows[i];
      const uint64_t word = XT_REGEN(&rule, p, c.e.bucket.word[p], *now);
      // Under --over ecn, what any packet has: the overdraft left out.
      const xt_limit& l = rule.limit[p];
      const uint64_t room = l.cap - xt_ecn_keep(&rule, p, 0), debt = xt_debt(&l, word, *now);
      const uint64_t left = l.cost && room > debt ? (room - debt) / l.cost : 0;
      row.left.push_back({window_name(w), w.bytes, left});
      if (!w.bytes && (row.packets_left < 0 || static_cast<int64_t>(left) < row.packets_left))
        row.packets_left = static_cast<int64_t>(left);
    }
    if (rates && seconds > 0) {
      row.dropped_pps = static_cast<double>(c.dropped) / seconds;
      row.passed_pps = static_cast<double>(c.passed) / seconds;
    }
    rows.push_back(std::move(row));
  }
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
    if (!r.left.empty()) {
      json left = json::array();
      for (const auto& l : r.left) left.push_back({{"limit", l.limit}, {l.bytes ? "bytes" : "packets", l.left}});
      j["left"] = left;
    }
    if (r.dropped_pps >= 0) j["dropped_pps"] = r.dropped_pps;
    if (r.passed_pps >= 0) j["passed_pps"] = r.passed_pps;
    out.push_back(j);
  }
  return out;
}

std::string top_text(const std::vector<TopRow>& rows) {
  if (rows.empty()) return "no tracked sources\n";
  const bool rates = rows.front().dropped_pps >= 0;
  // As wide as the longest rule's name (an IPv6 prefix, a port range):
  // a wider one moved every column after it along.
  int rule_width = 20;
  for (const auto& r : rows) rule_width = std::max(rule_width, static_cast<int>(r.rule.size()));
  // DROPPED is followed by the dry-run mark or a space.
  std::string out = fmt("%-44s %-*s %s%12s %12s  %10s\n", "SOURCE", rule_width, "RULE",
                        rates ? fmt("%11s %11s ", "DROP/s", "PASS/s").c_str() : "", "PASSED", "DROPPED", "LEFT");
  for (const auto& r : rows) {
    // One window: what is left; several: each with its window's name.
    std::string left;
    for (const auto& l : r.left)
      left += (left.empty() ? "" : " ") + std::to_string(l.left) + (l.bytes ? "B" : "") +
              (r.left.size() > 1 ? "/" + l.limit.substr(l.limit.find('/') + 1) : "");
    out += fmt("%-44s %-*s %s%12llu %12llu%s %10s\n", r.source.c_str(), rule_width, r.rule.c_str(),
               rates ? fmt("%11.0f %11.0f ", r.dropped_pps, r.passed_pps).c_str() : "",
               (unsigned long long)r.passed_packets, (unsigned long long)r.dropped_packets, r.dry_run ? "*" : " ",
               left.empty() ? "-" : left.c_str());
  }
  if (std::ranges::any_of(rows, &TopRow::dry_run)) out += "* dry-run rule: these drops were counted, not done\n";
  return out;
}

}  // namespace xt
