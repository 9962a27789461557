// SPDX-License-Identifier: MIT
// The commands of the command line (README, "Usage"): attach, detach, status, rule,
// stats, top. Each parses and validates all its input before it changes
// anything.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <iostream>
#include <map>

#include "attach.h"
#include "common.h"
#include "object.h"
#include "policy.h"
#include "report.h"

namespace xt::cli {
namespace {

Result<RuleSpec> rule_spec(RuleAddArgs a) {
  // `--bandwidth N UNIT/s` may take two words; if the second is the CIDR that
  // followed a one-word bandwidth, give it back.
  if (a.cidr.empty() && a.bandwidth.size() == 2 && !a.bandwidth[1].ends_with("/s") &&
      parse_cidr(a.bandwidth[1])) {
    a.cidr = a.bandwidth[1];
    a.bandwidth.pop_back();
  }
  if (a.cidr.empty()) return usage_error("rule add needs a CIDR, e.g. rule add 198.18.0.0/15 --rate 100/s");
  RuleSpec spec;
  auto cidr = parse_cidr(a.cidr);
  if (!cidr) return std::unexpected(cidr.error());
  spec.cidr = *cidr;
  spec.action = a.allow ? XT_ACT_ALLOW : a.deny ? XT_ACT_DENY : XT_ACT_LIMIT;
  spec.dry_run = a.dry_run;
  if (!a.per.empty()) {
    auto per = parse_prefix_len("--per", a.per);
    if (!per) return std::unexpected(per.error());
    spec.per = *per;
  }
  if (!a.rate.empty()) {
    auto rate = parse_rate(a.rate);
    if (!rate) return std::unexpected(rate.error());
    spec.rate = *rate;
  }
  if (!a.burst.empty()) {
    auto burst = parse_positive("--burst", a.burst);
    if (!burst) return std::unexpected(burst.error());
    spec.burst = *burst;
  }
  if (!a.bandwidth.empty()) {
    std::string text;
    for (const auto& part : a.bandwidth) text += (text.empty() ? "" : " ") + part;
    auto bw = parse_bandwidth(text);
    if (!bw) return std::unexpected(bw.error());
    spec.bandwidth = *bw;
  }
  if (!a.burst_bytes.empty()) {
    auto burst = parse_positive("--burst-bytes", a.burst_bytes);
    if (!burst) return std::unexpected(burst.error());
    spec.burst_bytes = *burst;
  }
  if (!a.new_rate.empty()) {
    auto rate = parse_rate(a.new_rate);
    if (!rate) return std::unexpected(rate.error());
    spec.new_rate = *rate;
  }
  return spec;
}

}  // namespace

int cmd_attach(const std::string& pin_dir, const std::string& ifname, const std::string& mode_text,
               const std::string& max_sources_text, bool replace) {
  auto mode = parse_mode(mode_text);
  if (!mode) return fail(mode.error());
  State::Create create;
  if (!max_sources_text.empty()) {
    auto n = parse_positive("--max-sources", max_sources_text);
    if (!n) return fail(n.error());
    if (*n < XT_MIN_MAX_SOURCES || *n > XT_MAX_MAX_SOURCES)
      return fail({ErrorKind::Usage, "bad --max-sources '" + max_sources_text + "': between " +
                                             std::to_string(XT_MIN_MAX_SOURCES) + " and " + std::to_string(XT_MAX_MAX_SOURCES)});
    create.max_sources = static_cast<uint32_t>(*n);
  }
  // Before anything is created: a missing interface, or one whose frames
  // xthrottle cannot read, changes nothing.
  if (auto ifindex = ifindex_of(ifname); !ifindex) return fail(ifindex.error());
  if (auto link = link_of(ifname); !link) return fail(link.error());
  auto locked = open_locked(pin_dir, create);
  if (!locked) return fail(locked.error());
  auto a = attach(locked->state, ifname, *mode, replace);
  if (!a) return fail(a.error());
  if (a->replaced_prog_id)
    std::cout << "upgraded " << a->ifname << ": prog id " << a->replaced_prog_id << " replaced by " << a->prog_id
              << " in one step, on the same maps; " << mode_name(a->mode) << " mode\n";
  else
    std::cout << (a->already ? "already attached to " : "attached to ") << a->ifname << ": " << mode_name(a->mode)
              << " mode, " << (a->multiprog ? "libxdp multi-program dispatcher" : "single program") << ", prog id "
              << a->prog_id << "\n";
  if (a->mode == XT_MODE_SKB && *mode != XT_MODE_SKB)
    std::cerr << "xthrottle: warning: " << ifname << " has no native XDP; running in generic (skb) mode\n";
  if (a->mode == XT_MODE_SKB)
    std::cerr << "xthrottle: note: generic (skb) mode sees a local TCP sender's segments and GRO aggregates whole "
                 "(up to 64 KB): each counts as the wire packets it stands for, estimated from the MTU ("
              << a->mtu << "): exact for full-size segments, fewer for smaller ones\n";
  if (a->link == XT_LINK_IP)
    std::cerr << "xthrottle: note: " << ifname << " has no link layer: frames are read from the IP header\n";
  return 0;
}

int cmd_detach(const std::string& pin_dir, const std::string& ifname) {
  auto locked = open_locked(pin_dir, std::nullopt);
  if (!locked) return fail(locked.error());
  if (auto ok = detach(locked->state, ifname); !ok) return fail(ok.error());
  std::cout << "detached from " << ifname << "; rules and counters stay in " << pin_dir << "\n";
  return 0;
}

int cmd_status(const std::string& pin_dir, bool json, bool check) {
  auto status = read_status(pin_dir);
  if (!status) return fail(status.error());
  emit(json, status_json(*status), status_text(*status));
  if (!check) return 0;
  if (!status->warnings.empty()) return kExitNotProtected;
  return status->config_warnings.empty() ? 0 : kExitConfigDrift;
}

int cmd_rule_add(const std::string& pin_dir, const RuleAddArgs& args) {
  auto spec = rule_spec(args);
  if (!spec) return fail(spec.error());
  // Limits are compiled into the kernel's ticks: the state's, or measured now
  // for the state this command is about to create.
  auto hz = tick_rate(pin_dir);
  if (!hz) return fail(hz.error());
  auto rule = compile_rule(*spec, *hz);
  if (!rule) return fail(rule.error());
  auto locked = open_locked(pin_dir, State::Create{.max_sources = std::nullopt, .hz = *hz});
  if (!locked) return fail(locked.error());
  auto replaced = locked->state.put_rule(spec->cidr, *rule);
  if (!replaced) return fail(replaced.error());
  std::cout << (*replaced ? "replaced " : "added ") << format_cidr(spec->cidr) << " "
            << action_name(rule->action);
  if (rule->action == XT_ACT_LIMIT) std::cout << " " << describe_limits(*rule) << ", per /" << int(rule->per_len);
  if (rule->flags & XT_RULE_DRY_RUN) std::cout << " (dry-run)";
  std::cout << "\n";
  for (const auto& w : rule_warnings(*rule, *hz)) std::cerr << "xthrottle: warning: " << w << "\n";
  return 0;
}

int cmd_rule_del(const std::string& pin_dir, const std::string& cidr_text) {
  auto cidr = parse_cidr(cidr_text);
  if (!cidr) return fail(cidr.error());
  auto locked = open_locked(pin_dir, std::nullopt);
  if (!locked) return fail(locked.error());
  if (auto ok = locked->state.del_rule(*cidr); !ok) return fail(ok.error());
  std::cout << "deleted " << format_cidr(*cidr) << "\n";
  return 0;
}

int cmd_rule_list(const std::string& pin_dir, bool json) {
  auto state = State::open(pin_dir);
  if (!state) return fail(state.error());
  auto rules = state->rules();
  if (!rules) return fail(rules.error());
  emit(json, rules_json(*rules), rules_text(*rules));
  return 0;
}

int cmd_stats(const std::string& pin_dir, bool json, double watch) {
  auto state = State::open(pin_dir);
  if (!state) return fail(state.error());
  auto stats = read_stats(*state);
  if (!stats) return fail(stats.error());
  if (watch <= 0) {
    emit(json, stats_json(*stats), stats_text(*stats));
    return 0;
  }
  // One line per interval until interrupted; rates are over that interval.
  install_stop_signals();
  auto before = std::move(*stats);
  auto t0 = std::chrono::steady_clock::now();
  while (sleep_unless_stopped(watch)) {
    auto after = read_stats(*state);
    if (!after) return fail(after.error());
    auto t1 = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    if (json)
      std::cout << json_text(stats_rate_json(before, *after, seconds)) << std::endl;
    else
      std::cout << stats_rate_text(before, *after, seconds) << std::flush;
    before = std::move(*after);
    t0 = t1;
  }
  return 0;
}

int cmd_top(const std::string& pin_dir, bool json, size_t limit, double watch) {
  auto state = State::open(pin_dir);
  if (!state) return fail(state.error());
  if (watch <= 0) {
    auto rows = read_top(*state, limit);
    if (!rows) return fail(rows.error());
    emit(json, top_json(*rows), top_text(*rows));
    return 0;
  }
  // Live: every interval, the sources dropping most in that interval, with
  // their rates. A terminal is redrawn; otherwise (or with --json) one
  // report per interval is appended. Samples are taken on a fixed schedule
  // (reading takes time, which must not stretch the interval), and the
  // rates are over the interval that really passed.
  install_stop_signals();
  const bool tty = isatty(STDOUT_FILENO);
  std::map<std::string, TopRow> before;
  const auto start = std::chrono::steady_clock::now();
  auto t0 = start;
  for (uint64_t n = 0; !g_stop; n++) {
    if (n > 0) {
      const auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(watch * static_cast<double>(n)));
      const double wait = std::chrono::duration<double>(due - std::chrono::steady_clock::now()).count();
      if (wait > 0 && !sleep_unless_stopped(wait)) break;
    }
    auto all = read_top(*state, SIZE_MAX);
    if (!all) return fail(all.error());
    const auto t1 = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    if (n > 0) {
      for (TopRow& row : *all) {
        auto was = before.find(row.source + " " + row.rule);
        const uint64_t dropped0 = was == before.end() ? 0 : was->second.dropped_packets;
        const uint64_t passed0 = was == before.end() ? 0 : was->second.passed_packets;
        row.dropped_pps = row.dropped_packets >= dropped0 ? (row.dropped_packets - dropped0) / seconds : 0;
        row.passed_pps = row.passed_packets >= passed0 ? (row.passed_packets - passed0) / seconds : 0;
      }
      std::ranges::stable_sort(*all, [](const TopRow& a, const TopRow& b) { return a.dropped_pps > b.dropped_pps; });
    }
    before.clear();
    for (const TopRow& row : *all) before[row.source + " " + row.rule] = row;
    std::vector<TopRow> shown(all->begin(), all->begin() + static_cast<long>(std::min(limit, all->size())));
    if (json) {
      std::cout << json_text(nlohmann::json{{"interval_seconds", n == 0 ? 0.0 : seconds}, {"sources", top_json(shown)}})
                << std::endl;
    } else {
      if (tty) std::cout << "\033[H\033[2J";
      char head[160];
      if (n == 0)
        std::snprintf(head, sizeof(head), "xthrottle top: every %g s (Ctrl-C to stop); rates from the next one on\n\n",
                      watch);
      else
        std::snprintf(head, sizeof(head), "xthrottle top: rates over the last %.2f s, every %g s (Ctrl-C to stop)\n\n",
                      seconds, watch);
      std::cout << head << top_text(shown) << std::flush;
    }
    t0 = t1;
  }
  return 0;
}


}  // namespace xt::cli
