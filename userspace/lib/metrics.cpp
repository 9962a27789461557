// SPDX-License-Identifier: MIT
#include "metrics.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>

#include "report.h"
#include "state.h"

namespace xt {
namespace {

// Label values escaped as the exposition format wants.
std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  void sample(const char* name, const std::map<std::string, std::string>& labels, double value) {
    out_ << name;
    if (!labels.empty()) {
      out_ << "{";
      bool first = true;
      for (const auto& [k, v] : labels) {
        out_ << (first ? "" : ",") << k << "=\"" << escape(v) << "\"";
        first = false;
      }
      out_ << "}";
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), " %.17g\n", value);
    out_ << buf;
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

}  // namespace

Result<std::string> render_metrics(const std::string& pin_dir) {
  auto status = read_status(pin_dir);
  if (!status) return std::unexpected(status.error());
  Exposition m;

  m.family("xthrottle_up", "gauge", "1 if the pinned state could be read.");
  m.sample("xthrottle_up", {}, status->state ? 1 : 0);
  m.family("xthrottle_protected", "gauge", "1 if status has no warning (see xthrottle status).");
  m.sample("xthrottle_protected", {}, status->warnings.empty() ? 1 : 0);
  m.family("xthrottle_warnings", "gauge", "Warnings status reports now.");
  m.sample("xthrottle_warnings", {}, static_cast<double>(status->warnings.size()));
  m.family("xthrottle_attached", "gauge",
           "1 for each interface of this network namespace the program runs on, with its XDP mode.");
  for (const auto& a : status->interfaces)
    m.sample("xthrottle_attached",
             {{"interface", a.ifname}, {"mode", mode_name(a.mode)}, {"multiprog", a.multiprog ? "true" : "false"}},
             a.live ? 1 : 0);
  if (!status->state) return m.str();

  auto state = State::open(pin_dir);
  if (!state) return std::unexpected(state.error());
  auto stats = read_stats(*state);
  if (!stats) return std::unexpected(stats.error());
  auto meta = state->meta();
  if (!meta) return std::unexpected(meta.error());

  size_t dry = 0;
  for (const auto& e : status->rules) dry += (e.rule.flags & XT_RULE_DRY_RUN) != 0;
  m.family("xthrottle_rules", "gauge", "Rules in the rule table.");
  m.sample("xthrottle_rules", {}, static_cast<double>(status->rules.size()));
  m.family("xthrottle_dry_run_rules", "gauge", "Rules that count what they would drop but drop nothing.");
  m.sample("xthrottle_dry_run_rules", {}, static_cast<double>(dry));

  // Per rule, so that summing over rule gives the totals; "none" holds what
  // no rule decided (no rule covers it, not IP, malformed).
  m.family("xthrottle_packets_total", "counter", "Packets the XDP program passed or dropped, by rule.");
  Exposition bytes;  // a family's samples must follow its own header: built apart, appended after
  bytes.family("xthrottle_bytes_total", "counter", "Bytes of those packets (whole Ethernet frames), by rule.");
  for (const auto& r : stats->rules) {
    const std::string cidr = format_cidr(r.cidr);
    m.sample("xthrottle_packets_total", {{"action", "passed"}, {"rule", cidr}}, r.stats.passed_packets);
    m.sample("xthrottle_packets_total", {{"action", "dropped"}, {"rule", cidr}}, r.stats.dropped_packets);
    bytes.sample("xthrottle_bytes_total", {{"action", "passed"}, {"rule", cidr}}, r.stats.passed_bytes);
    bytes.sample("xthrottle_bytes_total", {{"action", "dropped"}, {"rule", cidr}}, r.stats.dropped_bytes);
  }
  const auto& reasons = stats->reasons;
  const xt_count none_passed{reasons[XT_PASS_UNMATCHED].packets + reasons[XT_PASS_NON_IP].packets,
                             reasons[XT_PASS_UNMATCHED].bytes + reasons[XT_PASS_NON_IP].bytes};
  m.sample("xthrottle_packets_total", {{"action", "passed"}, {"rule", "none"}}, none_passed.packets);
  m.sample("xthrottle_packets_total", {{"action", "dropped"}, {"rule", "none"}}, reasons[XT_DROP_MALFORMED].packets);
  bytes.sample("xthrottle_bytes_total", {{"action", "passed"}, {"rule", "none"}}, none_passed.bytes);
  bytes.sample("xthrottle_bytes_total", {{"action", "dropped"}, {"rule", "none"}}, reasons[XT_DROP_MALFORMED].bytes);
  std::string out = m.str() + bytes.str();

  Exposition rest;
  rest.family("xthrottle_reason_packets_total", "counter",
              "Packets by the reason for their verdict (the reasons of xthrottle stats).");
  for (uint32_t r = 0; r < XT_REASONS; r++)
    rest.sample("xthrottle_reason_packets_total",
                {{"reason", reason_info(r).key}, {"action", r >= XT_FIRST_DROP ? "dropped" : "passed"}},
                reasons[r].packets);
  rest.family("xthrottle_dry_run_packets_total", "counter",
              "Packets a dry-run rule would have dropped (and passed), by rule.");
  rest.family("xthrottle_new_source_dropped_packets_total", "counter",
              "Packets from untracked sources dropped over the rule's new-source budget, by rule.");
  for (const auto& r : stats->rules) {
    rest.sample("xthrottle_dry_run_packets_total", {{"rule", format_cidr(r.cidr)}}, r.stats.dryrun_packets);
    rest.sample("xthrottle_new_source_dropped_packets_total", {{"rule", format_cidr(r.cidr)}},
                r.stats.new_source_dropped_packets);
  }
  rest.family("xthrottle_tracked_sources", "gauge", "Sources with a bucket in the source table.");
  rest.sample("xthrottle_tracked_sources", {}, static_cast<double>(status->tracked_sources));
  rest.family("xthrottle_max_sources", "gauge", "Size of the source table (attach --max-sources).");
  rest.sample("xthrottle_max_sources", {}, status->max_sources);
  rest.family("xthrottle_source_table_bytes", "gauge", "Kernel memory of the source table and seen filter.");
  rest.sample("xthrottle_source_table_bytes", {},
              static_cast<double>(status->bytes_per_source) * status->max_sources);
  const uint64_t admitted = stats->extra(XT_SOURCES_ADMITTED);
  rest.family("xthrottle_sources_admitted_total", "counter", "Buckets created for new sources.");
  rest.sample("xthrottle_sources_admitted_total", {}, static_cast<double>(admitted));
  // The kernel does not count LRU evictions: what was created and is neither
  // in the table nor deleted by the controller was evicted.
  // The three are read at slightly different moments (a walk of the table
  // takes a while under churn), so the difference jitters; a counter must
  // never go down (Prometheus would take it for a reset), so this process
  // reports the highest value it has seen.
  const double estimate = static_cast<double>(admitted) - static_cast<double>(status->tracked_sources) -
                          static_cast<double>(meta->buckets_swept);
  static std::mutex evicted_mu;
  static double evicted_high = 0;
  double evicted;
  {
    std::lock_guard<std::mutex> hold(evicted_mu);
    evicted_high = std::max(evicted_high, estimate);
    evicted = evicted_high;
  }
  rest.family("xthrottle_sources_evicted_total", "counter",
              "Buckets the full table evicted to make room (created - tracked - deleted by rule changes).");
  rest.sample("xthrottle_sources_evicted_total", {}, evicted);
  rest.family("xthrottle_events_total", "counter", "Events delivered to the daemon (a source throttled or released).");
  rest.sample("xthrottle_events_total", {}, static_cast<double>(stats->extra(XT_EVENTS_SENT)));
  rest.family("xthrottle_events_suppressed_total", "counter", "Events over the per-second cap, not written.");
  rest.sample("xthrottle_events_suppressed_total", {}, static_cast<double>(stats->extra(XT_EVENTS_SUPPRESSED)));
  rest.family("xthrottle_events_lost_total", "counter",
              "Events the daemon's ring had no room for (it was down or behind), not delivered.");
  rest.sample("xthrottle_events_lost_total", {}, static_cast<double>(stats->extra(XT_EVENTS_LOST)));
  rest.family("xthrottle_config_applied_timestamp_seconds", "gauge",
              "When the live config file was applied (0: none).");
  rest.sample("xthrottle_config_applied_timestamp_seconds", {}, static_cast<double>(meta->applied_at));
  rest.family("xthrottle_info", "gauge", "Constant 1, with the build's ABI version and the kernel's tick rate.");
  rest.sample("xthrottle_info", {{"abi", std::to_string(XT_ABI_VERSION)}, {"hz", std::to_string(status->hz)}}, 1);
  return out + rest.str();
}

}  // namespace xt
