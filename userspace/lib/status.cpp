// SPDX-License-Identifier: MIT
#include "status.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <tuple>

#include "apply.h"
#include "files.h"
#include "format.h"
#include "map_util.h"
#include "object.h"
#include "snapshot.h"

namespace xt {

using json = nlohmann::json;

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

// The applied rules file, parsed and compiled: kept, by its path, hash and
// tick rate, for the life of the process, so that serve's scrapes parse it
// again only when it has changed.
std::optional<RulesFile> applied_file(std::string_view bytes, const std::string& path, const std::string& sha256,
                                      uint32_t hz) {
  static std::mutex mu;
  static std::optional<std::tuple<std::string, std::string, uint32_t, RulesFile>> kept;
  std::lock_guard<std::mutex> hold(mu);
  if (kept && std::get<0>(*kept) == path && std::get<1>(*kept) == sha256 && std::get<2>(*kept) == hz)
    return std::get<3>(*kept);
  auto file = parse_rules_file(bytes, path);
  if (!file || !compile_rules(*file, hz, online_cpus())) return std::nullopt;
  kept.emplace(path, sha256, hz, *file);
  return *file;
}

// Whether interface `name` of this namespace is up.
bool interface_up(const std::string& name) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // cannot tell: say nothing
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  const bool up = ioctl(fd, SIOCGIFFLAGS, &req) != 0 || (req.ifr_flags & IFF_UP);
  close(fd);
  return up;
}

// Rules that send their drops out an interface (--over redirect) that is
// gone (the kernel emptied its keys: the drops are dropped), or down (what
// is sent there is lost).
Result<void> redirect_warnings(const State& state, Status& s) {
  for (const auto& e : s.rules) {
    if (!e.spec.redirect) continue;
    const std::string& iface = *e.spec.redirect;
    auto gone = state.redirect_gone(e);
    if (!gone) return std::unexpected(gone.error());
    const std::string name = rule_name(e.cidr, e.spec.match);
    if (*gone)
      s.warnings.push_back("the rule for " + name + " sends its drops out " + iface + ", which is gone" +
                           (if_nametoindex(iface.c_str()) ? " (an interface of that name is back)" : "") +
                           ": they are dropped instead; `xthrottle rule add` the rule again once " + iface +
                           " is there");
    else if (!interface_up(iface))
      s.warnings.push_back("the rule for " + name + " sends its drops out " + iface + ", which is down: what it "
                           "sends there is lost");
    // Frames go out as they came in: a tun device's bare IP packets are
    // no Ethernet frames.
    for (const auto& a : s.interfaces)
      if (a.live && a.link == XT_LINK_IP)
        s.warnings.push_back("the rule for " + name + " sends its drops out " + iface + ", and " + a.ifname +
                             " has no link layer: its packets go out as bare IP, which an Ethernet interface "
                             "takes for frames with garbage addresses");
  }
  return {};
}

// A --scope fleet rule holds the fleet's limit only while serve --cluster
// exchanges with the other hosts: without it each host passes the whole
// limit, N times it in all. Said as a warning (status --check fails), not
// silently.
void fleet_warnings(Status& s) {
  std::string shared;
  for (const auto& e : s.rules)
    if (e.spec.fleet) shared += (shared.empty() ? "" : ", ") + rule_name(e.cidr, e.spec.match);
  s.fleet = read_fleet_health(s.pin_dir);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (s.fleet) s.fleet_age = now - s.fleet->written_unix;
  // serve writes it each second, and removes it when it stops: an old one
  // is a serve that died.
  const bool running = s.fleet && s.fleet_age < 5;
  const std::string each =
      shared.empty() ? std::string() : ": each host enforces the whole limit of " + shared + " (--scope fleet) on its own";
  // Two hosts of one name share nothing, bans and lists included, whether
  // or not a rule is shared.
  if (running && s.fleet->name_taken_unix && now - s.fleet->name_taken_unix < 10)
    s.warnings.push_back("fleet: another host is also called " + s.fleet->host +
                         " in the fleet: each takes the other's use, bans and lists for its own and skips them" + each +
                         "; give each host a --cluster-host of its own");
  if (shared.empty()) return;
  if (!running) {
    s.warnings.push_back("fleet: no serve --cluster is running on " + s.pin_dir + each);
    return;
  }
  for (auto& w : fleet_link_warnings(*s.fleet, now, each)) s.warnings.push_back(std::move(w));
}

// Which part of the state a map of that name is (map_memory's names).
std::string memory_part(const std::string& map) {
  if (map == "xt_buckets" || map.starts_with("xt_bucket_")) return "source_table";
  if (map.starts_with("xt_hot")) return "hot_cache";
  if (map.starts_with("xt_known")) return "known_table";
  if (map.starts_with("xt_block")) return "blocklists";
  return "other";
}

uint64_t kernel_memory_total(const Status& s) {
  uint64_t total = 0;
  for (const auto& [part, bytes] : s.kernel_memory) total += bytes;
  return total;
}

}  // namespace

void count_known(Status& s, const xt_known& e, uint32_t secs, const KnownWindow& window) {
  // Signed, as the data path reads it: a CPU's clock may be a second ahead.
  const int64_t age = static_cast<int32_t>(secs - e.seen);
  const bool proven = e.how == XT_KNOWN_PROVEN;
  // A proof is consulted by a rule with --verify tcp or a --remember (the
  // data path reads the table for either).
  const uint64_t lasts = proven ? ((window.proofs || window.remember) ? XT_PROOF_SECONDS : 0) : window.remember;
  if (age >= static_cast<int64_t>(lasts)) {
    // Behaved too long ago, but proved its address since: admitted as
    // proven for the proof's own time (known.bpf.h, xt_proof_recent).
    const uint32_t since_proof = secs - (e.seen + e.proven - 1u);
    if (!proven && e.proven && (window.proofs || window.remember) && since_proof + 2 < XT_PROOF_SECONDS + 2) {
      s.known_sources++;
      s.known_proven++;
      return;
    }
    s.known_expired++;
    return;
  }
  s.known_sources++;
  if (proven) s.known_proven++;
}

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
  for (const auto& r : *counted) s.rules.push_back({r.cidr, r.rule, r.spec});
  auto ifaces = attachments(*state);
  if (!ifaces) return std::unexpected(ifaces.error());
  s.interfaces = std::move(*ifaces);
  tell_elsewhere(s, map_id(state->rules_fd()));
  auto cfg = state->config();
  if (!cfg) return std::unexpected(cfg.error());
  s.max_sources = cfg->max_sources;
  if (auto id = state_identity(*state)) s.state_id = *id;
  s.table_slots = table_slots(*cfg);
  s.idle_seconds = idle_seconds_of(*cfg);
  s.hz = cfg->hz;
  for (const auto& [name, bytes] : state->map_memory()) s.kernel_memory[memory_part(name)] += bytes;
  s.bytes_per_source = s.kernel_memory["source_table"] / cfg->max_sources;
  auto sources = state->count_sources();
  if (!sources) return std::unexpected(sources.error());
  s.tracked_sources = sources->tracked;
  s.idle_sources = sources->idle;
  auto counters = state->counters();
  if (!counters) return std::unexpected(counters.error());
  s.table_full_drops = (*counters)[XT_DROP_NO_STATE].packets;
  s.sources_admitted = (*counters)[XT_SOURCES_ADMITTED].packets;
  s.sources_evicted = (*counters)[XT_SOURCES_EVICTED].packets;
  s.sources_evicted_active = (*counters)[XT_SOURCES_EVICTED_ACTIVE].packets;
  KnownWindow v4, v6;
  for (const auto& r : s.rules) {
    if (r.rule.action != XT_ACT_LIMIT) continue;
    KnownWindow& w = r.cidr.family == XT_FAMILY_V4 ? v4 : v6;
    w.remember = std::max<uint64_t>(w.remember, r.rule.remember);
    w.proofs = w.proofs || (r.rule.flags & XT_RULE_VERIFY_TCP);
  }
  // The program's clock, to tell which entries still count; without it
  // (its program would not load) every entry is counted, and status says so.
  auto now = state->now();
  if (!now) s.notes.push_back("known sources counted without their age: " + now.error().message);
  const uint32_t secs = now && cfg->hz ? static_cast<uint32_t>(*now / cfg->hz) : 0;
  auto known = state->for_each_known([&](const xt_known& e) {
    if (now)
      count_known(s, e, secs, e.family == XT_FAMILY_V4 ? v4 : v6);
    else
      count_known(s, e, e.seen, {.remember = 1, .proofs = true});
  });
  if (!known) return std::unexpected(known.error());
  s.known_recorded = (*counters)[XT_KNOWN_RECORDED].packets;
  s.known_max = state->known_capacity();
  s.known_bytes = s.known_max * sizeof(xt_known) + s.known_max / XT_KNOWN_WAYS * sizeof(xt_known_tags);
  s.proofs_sent = (*counters)[XT_PROOFS_SENT].packets;
  s.proofs_passed = (*counters)[XT_PROOFS_PASSED].packets;
  s.admitted_by_proof = (*counters)[XT_ADMITTED_BY_PROOF].packets;
  s.admitted_by_memory = (*counters)[XT_ADMITTED_BY_MEMORY].packets;
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
    } else if (auto file = applied_file(*bytes, s.config_path, on_disk, cfg->hz)) {
      // The file is what was applied; are the rules still what it says, or
      // did `rule add`/`rule del` change them since?
      auto diff = diff_rules(*state, *file);
      s.rules_drifted = diff && !diff->empty();
      if (s.rules_drifted)
        s.config_warnings.push_back(
            "the live rules differ from " + s.config_path + " (changed by rule add/del or blocklist load/del since it was applied: " +
            std::to_string(diff->add.size() + diff->change.size()) + " rule(s) missing or different, " +
            std::to_string(diff->remove.size()) + " extra; " + std::to_string(diff->lists_add.size()) +
            " blocklist(s) missing, " + std::to_string(diff->lists_remove.size()) +
            " extra); `xthrottle apply --dry-run` shows how");
    }
  }

  const bool attached = std::ranges::any_of(s.interfaces, &Attachment::live);
  if (!attached && s.elsewhere.empty())
    s.warnings.push_back("not protecting: not attached to any interface in this network namespace");
  for (const auto& a : s.interfaces) {
    if (!a.live) {
      const uint32_t now_index = if_nametoindex(a.ifname.c_str());
      const std::string was = a.ifname + ": attached by xthrottle (prog id " + std::to_string(a.prog_id) + ")";
      char renamed[IF_NAMESIZE] = {};
      // Its index has another name: renamed, or deleted and the index given
      // to a new interface (explicitly, or one moved in from another
      // namespace), which nothing here tells apart. Both ways out are said.
      if (now_index != a.ifindex && if_indextoname(a.ifindex, renamed))
        s.warnings.push_back(was + ", but its index is " + renamed + "'s now (renamed, or a new interface given the "
                             "index), which runs no xthrottle: `xthrottle attach " + renamed + "` if it is the same "
                             "one, else `xthrottle detach " + a.ifname + "` forgets it");
      else if (!now_index)
        s.warnings.push_back(was + ", but the interface is gone, and the program with it (`xthrottle detach " +
                             a.ifname + "` forgets it)");
      else if (now_index != a.ifindex)
        s.warnings.push_back(was + ", but the interface was made again since and runs no xthrottle (`xthrottle "
                             "attach " + a.ifname + "` protects it)");
      else
        s.warnings.push_back(was + " but the program is gone from the interface (`xthrottle attach " + a.ifname +
                             "` puts it back)");
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
    if (e.spec.dry_run) dry += (dry.empty() ? "" : ", ") + rule_name(e.cidr, e.spec.match);
  if (!dry.empty()) s.warnings.push_back("dry-run on: " + dry + " count what they would drop but drop nothing");
  for (const auto& gap : port_rule_gaps(s.rules)) s.warnings.push_back(gap);
  if (auto ok = redirect_warnings(*state, s); !ok) return std::unexpected(ok.error());
  // New-source budgets admit sources into the table; if together they can
  // turn it over faster than the idle window, quiet established sources can
  // be evicted by a flood's newcomers.
  double admissions = 0;
  for (const auto& e : s.rules)
    if (e.spec.action == XT_ACT_LIMIT) {
      const Rate budget = limits_of(e.spec).new_rate;
      admissions += static_cast<double>(budget.count) * kNsPerSec / static_cast<double>(budget.period_ns);
    }
  if (admissions > 0 && s.max_sources / admissions < s.idle_seconds)
    s.warnings.push_back(fmt("new-source budgets (%.0f/s in all) can turn the source table (%u) over in %.0f s, "
                             "less than the %u s that keeps a quiet source established: raise --max-sources or "
                             "lower --new-rate",
                             admissions, s.max_sources, s.max_sources / admissions, s.idle_seconds));
  // A window longer than that: a quiet source's bucket is kept while the
  // table has room, but once the budgets can turn the table over within
  // the window, a source quiet for longer than the idle window may be
  // evicted, and come back to full windows. A note, not a warning: with a
  // day window no table is that large, and the budget is the protection.
  if (admissions > 0)
    for (const auto& e : s.rules) {
      if (e.spec.action != XT_ACT_LIMIT) continue;
      for (const Window& w : limits_of(e.spec).windows) {
        const double period = static_cast<double>(w.period_ns) / kNsPerSec;
        if (period <= s.idle_seconds || s.max_sources / admissions >= period) continue;
        s.notes.push_back(fmt("%s: the window %s outlasts what the source table keeps of a quiet source: the "
                                 "new-source budgets (%.0f/s in all) can turn the table (%u) over in %.0f s, so a "
                                 "source quiet for more than %u s may be evicted and come back to a full window; "
                                 "raise --max-sources or lower --new-rate to keep it",
                                 rule_name(e.cidr, e.spec.match).c_str(), window_name(w).c_str(), admissions,
                                 s.max_sources, s.max_sources / admissions, s.idle_seconds));
        break;
      }
    }
  // What the warning above foresees, seen: newcomers took the slots of
  // sources still sending. A note, since the count is since the state was
  // made; the metric's rate says whether it goes on.
  if (s.sources_evicted_active)
    s.notes.push_back(fmt("%llu times since the state was made, a newcomer took the slot of a source still sending "
                          "(used within the last %s): the newcomer's set of the source table and the next were "
                          "full of sources in use; the evicted source is untracked, and starts over with a fresh "
                          "bucket if let back in, so its limit no longer holds; if "
                          "xthrottle_sources_evicted_active_total keeps rising, raise --max-sources (now %u)",
                          (unsigned long long)s.sources_evicted_active, format_duration(s.idle_seconds).c_str(),
                          s.max_sources));
  fleet_warnings(s);
  // A race, not a full table (which evicts its least recently used
  // source): no reason to call the host unprotected, for good, after one.
  if (s.table_full_drops)
    s.notes.push_back(std::to_string(s.table_full_drops) +
                      " packets of new sources were dropped since the state was made because another CPU claimed "
                      "the same way of the source table in the same instant (table_full); each source's next "
                      "packet is tried again");
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
  size_t dry = std::ranges::count_if(s.rules, [](const RuleEntry& e) { return e.spec.dry_run; });
  return {{"pin_dir", s.pin_dir},
          {"state", s.state},
          {"protected", s.warnings.empty()},
          {"rules", s.rules.size()},
          {"dry_run_rules", dry},
          {"tracked_sources", s.tracked_sources},
          {"idle_sources", s.idle_sources},
          {"sources_admitted", s.sources_admitted},
          {"sources_evicted", s.sources_evicted},
          {"sources_evicted_active", s.sources_evicted_active},
          {"state_id", s.state_id},
          {"max_sources", s.max_sources},
          {"table_slots", s.table_slots},
          {"bytes_per_source", s.bytes_per_source},
          {"kernel_memory_bytes", kernel_memory_total(s)},
          {"kernel_memory", s.kernel_memory},
          {"idle_seconds", s.idle_seconds},
          {"hz", s.hz},
          {"new_source_dropped_packets", s.new_source_drops},
          {"new_source_saturated", saturated},
          {"known_sources", s.known_sources},
          {"known_proven", s.known_proven},
          {"known_expired", s.known_expired},
          {"known_recorded", s.known_recorded},
          {"known_max", s.known_max},
          {"known_bytes", s.known_bytes},
          {"proofs_sent", s.proofs_sent},
          {"proofs_passed", s.proofs_passed},
          {"admitted_by_proof", s.admitted_by_proof},
          {"admitted_by_memory", s.admitted_by_memory},
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
          {"fleet", s.fleet ? [&] {
             json f = s.fleet->json();
             f["age_seconds"] = s.fleet_age;
             return f;
           }()
                            : json(nullptr)},
          {"notes", s.notes}};
}

std::string status_text(const Status& s) {
  std::string out;
  if (s.state) {
    out += fmt("state:   %s: %zu rules, %llu sources tracked, room for %llu (--max-sources %u, %llu bytes each; "
               "untracked after %s quiet), clock %u Hz\n",
               s.pin_dir.c_str(), s.rules.size(), (unsigned long long)s.tracked_sources,
               (unsigned long long)s.table_slots, s.max_sources, (unsigned long long)s.bytes_per_source,
               format_duration(s.idle_seconds).c_str(), s.hz);
    if (s.idle_sources)
      out += fmt("         %llu more quiet past that: their buckets are kept until their slots are needed\n",
                 (unsigned long long)s.idle_sources);
    if (s.sources_evicted)
      out += fmt("         %llu sources admitted, %llu evicted for newcomers (%llu of them while still sending)\n",
                 (unsigned long long)s.sources_admitted, (unsigned long long)s.sources_evicted,
                 (unsigned long long)s.sources_evicted_active);
    if (s.new_source_drops)
      out += fmt("         %llu packets from untracked sources dropped over new-source budgets\n",
                 (unsigned long long)s.new_source_drops);
    if (const uint64_t total = kernel_memory_total(s)) {
      auto mib = [](uint64_t b) { return static_cast<double>(b) / (1 << 20); };
      const auto part = [&](const char* p) { return s.kernel_memory.contains(p) ? s.kernel_memory.at(p) : 0; };
      out += fmt("memory:  %.1f MiB of kernel memory, used or not: source table %.1f, hot cache %.1f, known table "
                 "%.1f, blocklists %.1f, the rest %.1f\n",
                 mib(total), mib(part("source_table")), mib(part("hot_cache")), mib(part("known_table")),
                 mib(part("blocklists")), mib(part("other")));
    }
    out += fmt("known:   %llu of %llu sources (%llu proved their address; %llu more expired; %llu bytes), admitted "
               "%llu by proof and %llu by memory; proofs %llu sent, %llu passed\n",
               (unsigned long long)s.known_sources, (unsigned long long)s.known_max,
               (unsigned long long)s.known_proven, (unsigned long long)s.known_expired,
               (unsigned long long)s.known_bytes,
               (unsigned long long)s.admitted_by_proof, (unsigned long long)s.admitted_by_memory,
               (unsigned long long)s.proofs_sent, (unsigned long long)s.proofs_passed);
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
    out += (sat.dry_run ? "UNDER A FLOOD (dry-run): " : "UNDER A FLOOD: ") + saturation_text(sat) + "\n";
  if (s.fleet && s.fleet_age < 5) {
    const FleetHealth& h = *s.fleet;
    out += fmt("fleet:   %s as %s: %s; sent %llu packets' use, took %llu from %llu sources (%llu refused); bans "
               "%llu sent, %llu put; blocklists %llu sent, %llu loaded\n",
               h.url.c_str(), h.host.c_str(), h.connected ? "up" : ("DOWN: " + h.error).c_str(),
               (unsigned long long)h.sent_packets, (unsigned long long)h.applied_packets,
               (unsigned long long)h.applied_sources, (unsigned long long)h.refused_sources,
               (unsigned long long)h.sent_bans, (unsigned long long)h.applied_bans,
               (unsigned long long)h.sent_lists, (unsigned long long)h.applied_lists);
  }
  for (const auto& n : s.notes) out += "note: " + n + "\n";
  for (const auto& w : s.config_warnings) out += "WARNING (config): " + w + "\n";
  for (const auto& w : s.warnings) out += "WARNING: " + w + "\n";
  if (s.warnings.empty()) out += "protected\n";
  return out;
}

}  // namespace xt
