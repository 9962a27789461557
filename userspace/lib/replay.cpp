// SPDX-License-Identifier: MIT
#include "replay.h"

#include <bpf/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "apply.h"
#include "fd.h"
#include "format.h"
#include "object.h"
#include "parse.h"
#include "pcap_reader.h"
#include "reasons.h"

namespace xt {
namespace {

// The program's clock at the capture's first frame: any tick will do, but
// not one near 0 (ticks kept in 32 bits use 0 for "never").
constexpr uint64_t kFirstTick = 1'000'000;
// Largest frame BPF_PROG_TEST_RUN takes for the multi-buffer program here.
constexpr uint32_t kMaxFrame = 9216;

// The source address of a frame, read by the data path's own parser
// (parse.h), so a source here is the one the program metered.
std::optional<Cidr> source_of(const std::vector<uint8_t>& f, xt_link link) {
  xt_pkt pkt{};
  if (xt_parse(f.data(), f.data() + f.size(), f.size(), link, &pkt) != XT_PARSE_IP) return std::nullopt;
  Cidr c;
  c.family = pkt.family;
  c.len = static_cast<uint8_t>(family_bits(pkt.family));
  std::memcpy(c.addr.data(), pkt.addr, sizeof(pkt.addr));
  return c;
}

// BPF_PROG_TEST_RUN's frames arrive on the loopback of the caller's network
// namespace, whose MTU the program reads for super-packets (65536: every
// GRO frame one packet). The replay takes a namespace of its own and sets
// its loopback to the capture's MTU; the host's is not touched.
Result<void> take_mtu(uint32_t mtu) {
  if (unshare(CLONE_NEWNET) != 0) return system_error("cannot make a network namespace to replay in", errno);
  Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return system_error("cannot open a socket to set the replay's MTU", errno);
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  req.ifr_mtu = static_cast<int>(mtu);
  if (ioctl(sock.get(), SIOCSIFMTU, &req) != 0)
    return system_error("cannot replay at MTU " + std::to_string(mtu), errno);
  return {};
}

std::string seconds_text(int64_t ns) { return fmt("%.3f", static_cast<double>(ns) / 1e9); }

}  // namespace

Result<ReplayResult> replay_capture(const RulesFile& file, const std::string& capture, const ReplayOptions& o) {
  auto reader = PcapReader::open(capture);
  if (!reader) return std::unexpected(reader.error());
  auto skel = open_object({.pin_dir = std::nullopt,
                           .test_clock = true,
                           .max_sources = o.max_sources,
                           .frags = true,
                           .link = reader->link()});
  if (!skel) return std::unexpected(skel.error());
  if (int err = xthrottle__load(skel->get()); err) return system_error("cannot load the program to replay with", err);
  auto state = State::from_object((*skel)->obj);
  if (!state) return std::unexpected(state.error());
  if (auto ok = state->init_config(o.hz, o.max_sources, o.idle_seconds); !ok) return std::unexpected(ok.error());
  (*skel)->bss->xt_test_now = kFirstTick;
  if (auto ok = apply_rules(*state, file, diff_from_nothing(file)); !ok) return std::unexpected(ok.error());
  // Only the frames in a namespace of its own: the rules went in here,
  // where the interfaces they redirect to are.
  if (o.mtu)
    if (auto ok = take_mtu(o.mtu); !ok) return std::unexpected(ok.error());

  // One CPU throughout: the per-CPU state (hot cache, proofs' budget)
  // then behaves as on one receive queue, not scattered by migrations.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
  (void)sched_setaffinity(0, sizeof(one), &one);

  ReplayResult r;
  r.capture = capture;
  r.hz = o.hz;
  std::map<std::array<uint8_t, 17>, ReplaySource> sources;
  const int prog = bpf_program__fd((*skel)->progs.xthrottle);
  CaptureFrame frame;
  uint64_t tick = kFirstTick;
  for (;;) {
    auto more = reader->next(frame);
    if (!more) return std::unexpected(more.error());
    if (!*more) break;
    if (!r.replayed) r.first_ns = frame.ts_ns;
    r.last_ns = std::max(r.last_ns, frame.ts_ns);
    // The clock follows the capture, and never goes back (a capture's
    // frames can be a little out of order).
    const int64_t since = std::max<int64_t>(0, frame.ts_ns - r.first_ns);
    tick = std::max(tick, kFirstTick + static_cast<uint64_t>(static_cast<__int128>(since) * o.hz / 1'000'000'000));
    // What BPF_PROG_TEST_RUN cannot take: GRO's merged frames over 9216
    // bytes on the wire (capture with GRO off), however short the capture
    // kept them (shorter ones count as their wire packets at o.mtu); and anything under an Ethernet header's 14 bytes,
    // which it refuses whatever the link (a runt of Ethernet, which the
    // data path never sees; one of raw IP, which it would drop as
    // malformed).
    std::vector<uint8_t>& bytes = frame.bytes;
    if (frame.wire_len > kMaxFrame || bytes.size() > kMaxFrame) {
      r.oversize++;
      continue;
    }
    if (std::max<size_t>(frame.wire_len, bytes.size()) < 14u) {
      r.skipped++;
      continue;
    }
    // What the interface received: a frame captured short is padded to its
    // length, so byte limits meter what was on the wire.
    if (frame.wire_len > bytes.size()) bytes.resize(frame.wire_len, 0);
    (*skel)->bss->xt_test_now = tick;
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = bytes.data(), .data_size_in = static_cast<uint32_t>(bytes.size()),
                .repeat = 1);
    if (int err = bpf_prog_test_run_opts(prog, &opts); err)
      return system_error("cannot run the program on frame " + std::to_string(reader->frames()) + " of " + capture, err);
    r.replayed++;
    const auto src = source_of(bytes, reader->link());
    ReplaySource* s = nullptr;
    if (src) {
      std::array<uint8_t, 17> key{};
      key[0] = src->family;
      std::memcpy(key.data() + 1, src->addr.data(), 16);
      s = &sources[key];
      s->source = *src;
      s->packets++;
    }
    if (opts.retval == XDP_PASS) {
      r.passed++;
    } else if (opts.retval == XDP_DROP || opts.retval == XDP_REDIRECT) {
      // Sent out another interface (--over redirect) is dropped here too.
      r.dropped++;
      r.redirected += opts.retval == XDP_REDIRECT;
      if (s && !s->dropped++) s->first_drop_ns = frame.ts_ns;
    } else {
      r.other++;  // XDP_TX: a proof's challenge (--verify tcp)
    }
  }
  r.frames = reader->frames();
  r.skipped += reader->skipped();
  auto rules = state->rule_counters();
  if (!rules) return std::unexpected(rules.error());
  r.rules = std::move(*rules);
  auto reasons = state->counters();
  if (!reasons) return std::unexpected(reasons.error());
  r.reasons = std::move(*reasons);
  for (auto& [key, s] : sources)
    if (s.dropped) r.throttled.push_back(s);
  r.throttled_sources = r.throttled.size();
  std::ranges::sort(r.throttled, [](const ReplaySource& a, const ReplaySource& b) {
    return std::tie(a.first_drop_ns, b.dropped) < std::tie(b.first_drop_ns, a.dropped);
  });
  if (r.throttled.size() > o.limit) r.throttled.resize(o.limit);
  return r;
}

nlohmann::json replay_json(const ReplayResult& r) {
  nlohmann::json rules = nlohmann::json::object();
  for (const auto& rule : r.rules)
    rules[rule_name(rule.cidr, rule.spec.match)] = {{"passed_packets", rule.stats.passed_packets},
                                                    {"dropped_packets", rule.stats.dropped_packets},
                                                    {"dryrun_packets", rule.stats.dryrun_packets},
                                                    {"new_source_dropped_packets", rule.stats.new_source_dropped_packets}};
  nlohmann::json reasons = nlohmann::json::object();
  for (uint32_t i = 0; i < XT_REASONS && i < r.reasons.size(); i++)
    reasons[reason_info(i).key] = r.reasons[i].packets;
  nlohmann::json throttled = nlohmann::json::array();
  for (const auto& s : r.throttled)
    throttled.push_back({{"source", format_cidr(s.source)},
                         {"first_drop_seconds", static_cast<double>(s.first_drop_ns - r.first_ns) / 1e9},
                         {"first_drop_unix_ns", s.first_drop_ns},
                         {"packets", s.packets},
                         {"dropped_packets", s.dropped}});
  return {{"capture", r.capture},
          {"hz", r.hz},
          {"frames", r.frames},
          {"replayed", r.replayed},
          {"skipped", r.skipped},
          {"oversize", r.oversize},
          {"redirected", r.redirected},
          {"seconds", static_cast<double>(r.last_ns - r.first_ns) / 1e9},
          {"passed", r.passed},
          {"dropped", r.dropped},
          {"answered", r.other},
          {"rules", rules},
          {"reasons", reasons},
          {"throttled_sources", r.throttled_sources},
          {"throttled", throttled}};
}

std::string replay_text(const ReplayResult& r) {
  std::string out = r.capture + ": " + std::to_string(r.replayed) + " frames over " +
                    seconds_text(r.last_ns - r.first_ns) + " s replayed (" + std::to_string(r.skipped) +
                    " skipped, " + std::to_string(r.oversize) + " over 9216 bytes); " + std::to_string(r.passed) +
                    " would pass, " + std::to_string(r.dropped) + " would be dropped (" +
                    std::to_string(r.redirected) + " of them redirected), " + std::to_string(r.other) +
                    " answered with a proof's challenge\n";
  out += fmt("%-40s %12s %12s %12s\n", "RULE", "PASSED", "DROPPED", "DRY-RUN");
  for (const auto& rule : r.rules)
    out += fmt("%-40s %12llu %12llu %12llu\n", rule_name(rule.cidr, rule.spec.match).c_str(),
               (unsigned long long)rule.stats.passed_packets, (unsigned long long)rule.stats.dropped_packets,
               (unsigned long long)rule.stats.dryrun_packets);
  out += std::to_string(r.throttled_sources) + " sources throttled";
  if (!r.throttled.empty()) out += fmt(", the first %zu by their first drop:\n", r.throttled.size());
  else out += "\n";
  for (const auto& s : r.throttled)
    out += fmt("  %-40s first drop at +%ss, %llu of %llu packets dropped\n", format_cidr(s.source).c_str(),
               seconds_text(s.first_drop_ns - r.first_ns).c_str(), (unsigned long long)s.dropped,
               (unsigned long long)s.packets);
  return out;
}

}  // namespace xt
