// SPDX-License-Identifier: MIT
// bench: the benchmark protocol (README, "Figures"; docs/design.md) in one run.
//
//  1. per-packet cost of each program path through BPF_PROG_TEST_RUN;
//  2. whole-path packet rate on the veth lab, floodgen on one core, for one
//     source and for 1k, 1M and 16M spoofed sources, IPv4 and IPv6: a bare
//     XDP_DROP (the limit of the path), xthrottle, iptables hashlimit (raw
//     PREROUTING) and an nftables meter (netdev ingress), each figure also a
//     ratio to the XDP_DROP of the same run;
//  3. loss of a legitimate source (500/s under a 1000/s limit, sending before
//     and during the flood) while 16M spoofed sources flood, for each limiter;
//  4. accuracy: one source flooding from one CPU and from two at once, passed
//     against burst + rate x elapsed;
//  5. attack scale, rule classification, new and returning clients, and
//     totals with fair shares beside what the peers can do (each section's
//     own comment says how).
// Writes DIR/results.json, DIR/results.md, DIR/throughput.dat and, with
// gnuplot, DIR/throughput.png. Needs root; everything runs in labs it makes
// and removes.
#include <CLI/CLI.hpp>
#include <bpf/bpf.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <memory>
#include <span>
#include <thread>

#include "fd.h"
#include "lab.h"
#include "object.h"
#include "packet.h"
#include "policy.h"
#include "rules.h"
#include "state.h"
#include "xdp_drop.skel.h"
#include "xdp_floor.skel.h"

namespace {

using json = nlohmann::json;
using xt::test::Background;
using xt::test::Flood;
using xt::test::Lab;
using xt::test::Outcome;
using xt::test::Packet;
using xt::test::run;

// Throughput runs limit every source to 100/s (burst 100), so that even 1k
// sources are mostly over their limit and what is measured is the limiter,
// not the stack behind it. The legitimate-source runs use 1000/s (burst
// 1000) with the legitimate source sending 500/s.
constexpr uint32_t kThroughputLimit = 100;
constexpr uint32_t kLegitLimit = 1000;
constexpr uint32_t kLegitRate = 500;
const char* kLegitSource = "198.18.2.2";
constexpr uint32_t kSixteenM = 16777216;
const char* kFloodRange = "10.0.0.0/8";  // where 16M spoofed IPv4 sources come from

// Failing throws, so that every Lab on the way out is torn down.
[[noreturn]] void die(const std::string& msg) { throw std::runtime_error(msg); }

void must(const Outcome& r, const std::string& what) {
  if (r.rc != 0) die(what + " failed: " + r.err);
}

// Of an even count, the mean of the two middle values (the upper one alone
// favoured whichever side the faster run was on).
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---------------------------------------------------------------- cost

double test_run_ns(int prog_fd, const std::vector<uint8_t>& frame, uint32_t repeat) {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
              .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) die("BPF_PROG_TEST_RUN failed");
  return opts.duration;
}

json measure_cost(uint32_t repeat) {
  std::cerr << "cost: BPF_PROG_TEST_RUN, " << repeat << " runs a path\n";
  json out = json::array();
  xdp_drop* drop = xdp_drop__open_and_load();
  if (!drop) die("cannot load the XDP_DROP baseline");
  const double base = test_run_ns(bpf_program__fd(drop->progs.xdp_drop), Packet().ipv4("198.18.1.1").build(), repeat);
  xdp_drop__destroy(drop);
  out.push_back({{"path", "bare XDP_DROP"}, {"ns", base}});
  // Floors (xdp_floor.bpf.c): parsing and counting alone, and with one
  // cached line that holds the source, what one heavy source costs at the
  // least, whatever the design.
  {
    xdp_floor* floor = xdp_floor__open();
    if (!floor || xdp_floor__load(floor) != 0)
      die("cannot load the floors (xdp_floor.bpf.c)");
    const auto frame = Packet().ipv4("198.18.1.1").build();
    for (auto [prog, what] : {std::pair(floor->progs.xdp_count, "floor: parse and count, then drop"),
                              std::pair(floor->progs.xdp_cached,
                                        "floor: the same, and one cached line holding the source (clock, hash)")}) {
      test_run_ns(bpf_program__fd(prog), frame, 1000);  // warm: the cached line
      out.push_back({{"path", what}, {"ns", test_run_ns(bpf_program__fd(prog), frame, repeat)}});
    }
    xdp_floor__destroy(floor);
  }

  auto hz = xt::measure_hz();
  if (!hz) die(hz.error().message);
  // The program as attached to a standard-MTU interface, and as loaded for a
  // jumbo MTU (multi-buffer: the frame's length costs a helper call).
  for (bool frags : {false, true}) {
    auto skel = xt::open_object({.pin_dir = std::nullopt, .test_clock = false, .max_sources = 65536, .frags = frags});
    if (!skel || xthrottle__load(skel->get()) != 0) die("cannot load xthrottle");
    auto state = xt::State::from_object((*skel)->obj);
    if (!state || !state->init_config(*hz, 65536)) die("cannot set up xthrottle's maps");
    auto add = [&](const char* cidr, const char* rate, uint64_t burst, const char* new_rate) {
      xt::RuleSpec spec;
      spec.cidr = *xt::parse_cidr(cidr);
      spec.rates = {*xt::parse_rate(rate)};
      spec.bursts = {burst};
      spec.new_rate = *xt::parse_rate(new_rate);
      auto rule = xt::compile_rule(spec, *hz);
      if (!rule || !state->put_rule(spec, *rule)) die(std::string("cannot add rule ") + cidr);
    };
    add("198.18.0.0/15", "1000/s", 10, "1000/s");             // a flooding source: over its limit
    add("198.19.0.0/16", "100000000/s", 100000000, "1000/s");  // a source within its limit
    add("10.0.0.0/8", "1000/s", 10, "1/day");                   // spoofed: the budget is spent at once
    add("2001:db8::/32", "1000/s", 10, "1/day");
    {  // a source within three windows (issue 13): three words to take
      xt::RuleSpec spec;
      spec.cidr = *xt::parse_cidr("198.19.128.0/17");
      spec.rates = {*xt::parse_rate("100000000/s"), *xt::parse_rate("5000000000/min"),
                    *xt::parse_rate("1000000000000/day")};
      spec.bursts = {100000000, 2000000000, 10000000000000};
      auto rule = xt::compile_rule(spec, *hz);
      if (!rule || !state->put_rule(spec, *rule)) die("cannot add the rule of three windows");
    }
    const int fd = bpf_program__fd((*skel)->progs.xthrottle);
    test_run_ns(fd, Packet().ipv4("10.0.0.1").build(), 1);  // takes the one new-source token
    test_run_ns(fd, Packet().ipv6("2001:db8::1").build(), 1);

    struct Path {
      const char* name;
      std::vector<uint8_t> frame;
    };
    std::vector<Path> paths = {
        {"xthrottle: source over its limit (hot cache)", Packet().ipv4("198.18.1.1").build()},
        {"xthrottle: source within its limit (lookup + CAS)", Packet().ipv4("198.19.1.1").build()},
        {"xthrottle: the same, three windows (lookup + 3 CAS)", Packet().ipv4("198.19.128.1").build()},
        {"xthrottle: untracked source over the new-source budget", Packet().ipv4("10.1.1.1").build()},
        {"xthrottle: the same, IPv6", Packet().ipv6("2001:db8:1:2::1").build()},
        {"xthrottle: source no rule covers", Packet().ipv4("192.0.2.1").build()},
        {"xthrottle: not IP (ARP)", Packet().ethertype(0x0806).build()},
    };
    if (frags) paths.resize(2);  // the hot cache and the CAS
    for (const auto& p : paths) {
      test_run_ns(fd, p.frame, 1000);  // warm: the hot cache, the bucket
      const std::string name = std::string(p.name) + (frags ? ", multi-buffer program (jumbo MTU)" : "");
      out.push_back({{"path", name}, {"ns", test_run_ns(fd, p.frame, repeat)}});
    }
    if (frags) continue;
    // Issue 14: a blocklist of 1M addresses (in 100.64.0.0/10, so that
    // every /24 there is partly listed) and a thousand /24s loaded; the
    // paths again, the source not listed, and a listed one.
    add("100.64.0.0/10", "100000000/s", 100000000, "1000/s");
    std::vector<xt::Cidr> entries;
    for (uint32_t i = 0; i < 1000000; i++) {
      // An odd multiplier modulo 2^22: a million distinct addresses, spread.
      const uint32_t a = (100u << 24 | 64u << 16) + ((i * 2654435761u) & ((1u << 22) - 1));
      if (a == (100u << 24 | 64u << 16 | 1u << 8 | 1u)) continue;  // 100.64.1.1 stays out
      entries.push_back(*xt::parse_cidr(std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." +
                                        std::to_string(a >> 8 & 255) + "." + std::to_string(a & 255)));
    }
    for (uint32_t i = 0; i < 1000; i++)
      entries.push_back(*xt::parse_cidr("203." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24"));
    if (auto ok = state->load_blocklist("bench", entries); !ok) die("cannot load the blocklist: " + ok.error().message);
    std::vector<Path> listed = {
        {"xthrottle: source within its limit, 1M-entry blocklist loaded, its /24 not listed",
         Packet().ipv4("198.19.1.1").build()},
        {"xthrottle: the same, its /24 partly listed (bitmap + hash)", Packet().ipv4("100.64.1.1").build()},
        {"xthrottle: source no rule covers, 1M-entry blocklist loaded", Packet().ipv4("192.0.2.1").build()},
        {"xthrottle: blocklisted source", Packet().ipv4("203.0.0.9").build()},
    };
    for (const auto& p : listed) {
      test_run_ns(fd, p.frame, 1000);
      out.push_back({{"path", p.name}, {"ns", test_run_ns(fd, p.frame, repeat)}});
    }
  }
  return out;
}

// ---------------------------------------------------------------- limiters

// Floor: xdp_floor.bpf.c's xdp_cached (a parse, one cached line, a count):
// beside the others in throughput and scale. For one source, what holding
// it over its limit costs at the least; for many, what a cached line a
// packet costs (a bound no correct limiter reaches: results.md says why).
// XdpPass: the baseline of a case whose packets xthrottle passes: what the
// host's stack costs for them, which any limiter that passes them pays too.
enum class Limiter { XdpDrop, Xthrottle, Hashlimit, NftMeter, Floor, XdpPass };
const char* name(Limiter l) {
  switch (l) {
    case Limiter::Floor: return "floor";
    case Limiter::XdpDrop: return "XDP_DROP";
    case Limiter::XdpPass: return "XDP_PASS";
    case Limiter::Xthrottle: return "xthrottle";
    case Limiter::Hashlimit: return "iptables hashlimit";
    case Limiter::NftMeter: return "nft meter";
  }
  return "?";
}

// ---------------------------------------------------------------- classify

// The cost of finding a packet's rule among 4096 rules with matches (issue
// 13): 1024 source prefixes (10.0.0.0/8 cut into /18s), each with a rule
// without a match, one for UDP, one for its own UDP port and one for SYNs
// to TCP 22; all --allow, so that what is measured is the classification
// (and the counters), not a verdict. Beside it the same program with one
// rule and no match, and the bare XDP_DROP; each through BPF_PROG_TEST_RUN,
// over one frame repeated (the per-CPU rule cache answers) and over 65,536
// frames from distinct /18s and ports (it mostly cannot).
json measure_classify(uint32_t repeat) {
  std::cerr << "classify: 4096 rules with matches against one rule, BPF_PROG_TEST_RUN\n";
  constexpr int kPrefixes = 1024;
  auto prefix = [](int i) { return "10." + std::to_string(i >> 2) + "." + std::to_string((i & 3) << 6) + ".0"; };
  std::vector<std::vector<uint8_t>> spread;
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  for (int n = 0; n < 65536; n++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    const int i = static_cast<int>(seed >> 54);  // 0..1023
    const std::string src = "10." + std::to_string(i >> 2) + "." + std::to_string(((i & 3) << 6) | (seed >> 20 & 63)) +
                            "." + std::to_string(seed >> 12 & 255);
    const uint16_t port = (seed >> 8 & 1) ? static_cast<uint16_t>(1000 + i) : 9;
    spread.push_back((seed >> 9 & 3) == 0 ? Packet().ipv4(src).tcp().flags(0x02).ports(40000, 22).build()
                                          : Packet().ipv4(src).ports(40000, port).build());
  }
  // Mean ns a run over `frames`, one run each (the harness's own cost in it,
  // as in the bare drop's figure measured the same way).
  auto spread_ns = [&](int fd) {
    double total = 0;
    for (const auto& f : spread) total += test_run_ns(fd, f, 1);
    return total / static_cast<double>(spread.size());
  };
  const auto one = Packet().ipv4("10.1.64.7").ports(40000, 1005).build();  // prefix 5, its own port
  json out = json::array();
  xdp_drop* drop = xdp_drop__open_and_load();
  if (!drop) die("cannot load the XDP_DROP baseline");
  const int drop_fd = bpf_program__fd(drop->progs.xdp_drop);
  out.push_back({{"config", "bare XDP_DROP"}, {"repeated_ns", test_run_ns(drop_fd, one, repeat)},
                 {"spread_ns", spread_ns(drop_fd)}});
  xdp_drop__destroy(drop);

  auto hz = xt::measure_hz();
  if (!hz) die(hz.error().message);
  for (bool many : {false, true}) {
    auto skel = xt::open_object({.pin_dir = std::nullopt, .test_clock = false, .max_sources = 65536});
    if (!skel || xthrottle__load(skel->get()) != 0) die("cannot load xthrottle");
    auto state = xt::State::from_object((*skel)->obj);
    if (!state || !state->init_config(*hz, 65536)) die("cannot set up xthrottle's maps");
    auto add = [&](const std::string& cidr, xt::Match m) {
      xt::RuleSpec spec;
      spec.cidr = *xt::parse_cidr(cidr);
      spec.match = m;
      spec.action = XT_ACT_ALLOW;
      auto rule = xt::compile_rule(spec, *hz);
      if (!rule) die(rule.error().message);
      if (auto ok = state->put_rule(spec, *rule); !ok) die("cannot add rule " + cidr + ": " + ok.error().message);
    };
    const auto start = std::chrono::steady_clock::now();
    if (!many) add("0.0.0.0/0", {});
    for (int i = 0; many && i < kPrefixes; i++) {
      const std::string cidr = prefix(i) + "/18";
      const uint16_t port = static_cast<uint16_t>(1000 + i);
      add(cidr, {});
      add(cidr, {17, std::nullopt, false});
      add(cidr, {17, std::pair(port, port), false});
      add(cidr, {6, std::pair<uint16_t, uint16_t>(22, 22), true});
    }
    const double setup = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int fd = bpf_program__fd((*skel)->progs.xthrottle);
    test_run_ns(fd, one, 1000);
    const json row = {{"config", many ? "xthrottle, 4096 rules with matches" : "xthrottle, one rule, no match"},
                      {"rules", many ? 4 * kPrefixes : 1},
                      {"setup_seconds", setup},
                      {"repeated_ns", test_run_ns(fd, one, repeat)},
                      {"spread_ns", spread_ns(fd)}};
    std::fprintf(stderr, "%-40s repeated %6.1f ns, spread %6.1f ns (rules added in %.2f s)\n",
                 row["config"].get<std::string>().c_str(), row["repeated_ns"].get<double>(),
                 row["spread_ns"].get<double>(), setup);
    out.push_back(row);
  }
  return out;
}

// Rules in the raw table counting what got past a limiter (a peer's rules
// come first in that table, or in nft's netdev ingress before it), one for
// each source range: raw_counter reads them.
void count_behind(const Lab& lab, std::initializer_list<const char*> sources) {
  for (const char* source : sources)
    must(lab.in_dut({"iptables", "-t", "raw", "-A", "PREROUTING", "-s", source}), "iptables counter");
}

// Loads an nft ruleset into the lab's dut namespace (`nft -f` reads a file).
void nft_load(const Lab& lab, const std::string& rules, const std::string& what) {
  const std::string file = "/tmp/xtbench-" + std::to_string(getpid()) + ".nft";
  std::ofstream(file) << rules;
  Outcome r = lab.in_dut({"nft", "-f", file});
  std::filesystem::remove(file);
  must(r, what);
}

// Every limiter: `limit` packets/s per source (per /64 for IPv6), burst
// `burst` (0: the same as limit), state for 262144 sources. xthrottle also
// gets `extra` rules (`rule add` arguments), before its catch-all ones,
// and `xt_args` on those (say, a new-source budget).
void set_up(const Lab& lab, Limiter l, uint32_t limit, uint32_t burst_packets = 0,
            const std::vector<std::vector<std::string>>& extra = {}, const std::vector<std::string>& xt_args = {}) {
  const std::string per_sec = std::to_string(limit), burst = std::to_string(burst_packets ? burst_packets : limit);
  switch (l) {
    case Limiter::XdpDrop:
    case Limiter::XdpPass:
      must(run({"ip", "-n", lab.dut_ns(), "link", "set", "dut0", "xdp", "obj", XT_DROP_OBJECT, "program",
                l == Limiter::XdpDrop ? "xdp_drop" : "xdp_pass"}),
           std::string("attaching ") + name(l));
      return;
    case Limiter::Floor:
      must(run({"ip", "-n", lab.dut_ns(), "link", "set", "dut0", "xdp", "obj", XT_FLOOR_OBJECT, "program",
                "xdp_cached"}),
           "attaching the floor");
      return;
    case Limiter::Xthrottle:
      must(lab.xthrottle({"attach", "dut0", "--mode", "native"}), "xthrottle attach");
      for (auto args : extra) {
        args.insert(args.begin(), {"rule", "add"});
        must(lab.xthrottle(args), "xthrottle rule add");
      }
      for (const char* all : {"0.0.0.0/0", "::/0"}) {
        std::vector<std::string> args = {"rule", "add", all, "--rate", per_sec + "/s", "--burst", burst};
        args.insert(args.end(), xt_args.begin(), xt_args.end());
        must(lab.xthrottle(args), "xthrottle rule add");
      }
      return;
    case Limiter::Hashlimit:
      for (const char* tool : {"iptables", "ip6tables"}) {
        std::vector<std::string> argv = {tool, "-t", "raw", "-A", "PREROUTING", "-m", "hashlimit",
                                         "--hashlimit-name", std::string("xtb") + tool[2], "--hashlimit-mode",
                                         "srcip", "--hashlimit-above", per_sec + "/sec", "--hashlimit-burst", burst,
                                         "--hashlimit-htable-size", "65536", "--hashlimit-htable-max", "262144"};
        if (tool[2] == '6') argv.insert(argv.end(), {"--hashlimit-srcmask", "64"});
        argv.insert(argv.end(), {"-j", "DROP"});
        must(lab.in_dut(argv), tool);
      }
      // Count what got past the limit.
      count_behind(lab, {kLegitSource, kFloodRange});
      return;
    case Limiter::NftMeter: {
      const std::string rules =
          "table netdev xtb {\n"
          "  chain in {\n"
          "    type filter hook ingress device \"dut0\" priority 0;\n"
          "    meter m4 size 262144 { ip saddr limit rate over " + per_sec + "/second burst " + burst +
          " packets } drop\n"
          "    meter m6 size 262144 { ip6 saddr and ffff:ffff:ffff:ffff:: limit rate over " + per_sec +
          "/second burst " + burst + " packets } drop\n"
          "  }\n"
          "}\n";
      nft_load(lab, rules, "nft meter");
      // What gets past the meter reaches the raw table. (An nft counter would
      // be slower to read: listing anything in nft lists the meters' 262144
      // elements too, for seconds.)
      count_behind(lab, {kLegitSource, kFloodRange});
      return;
    }
  }
}

// What got past the limiter so far: the legitimate source's packets, and the
// flood's.
struct Legit {
  uint64_t delivered = 0;
  uint64_t flood_passed = 0;
};

// The raw table's PREROUTING rules in dut, with their counters.
std::string raw_counters(const Lab& lab) {
  Outcome r = lab.in_dut({"iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n"});
  must(r, "reading iptables counters");
  return r.out;
}

// Packets counted by the counting rule (not the limiter's) for `source` in
// a raw_counters listing.
uint64_t raw_counter(const std::string& listing, const std::string& source) {
  std::istringstream in(listing);
  for (std::string line; std::getline(in, line);) {
    if (line.find(" " + source + " ") == std::string::npos || line.find("limit") != std::string::npos) continue;
    std::istringstream fields(line);
    uint64_t pkts = 0;
    fields >> pkts;
    return pkts;
  }
  die("no iptables counter for " + source);
}

Legit legit_counts(const Lab& lab, Limiter l) {
  if (l == Limiter::Xthrottle) {
    // XDP runs before nft: the lab's counter of 198.18.0.0/15 on dut0 sees
    // what xthrottle passed of the source, the only one in that range.
    const uint64_t delivered = lab.received_v4();
    const json stats = lab.xthrottle_json({"stats", "--json"});
    return {delivered, stats["rules"]["0.0.0.0/0"]["passed_packets"].get<uint64_t>() - delivered};
  }
  // Rules counting each source in the raw table, behind the limiter.
  const std::string listing = raw_counters(lab);
  return {raw_counter(listing, kLegitSource), raw_counter(listing, kFloodRange)};
}

// --straight: floods run each lab's XDP program from floodgen's test run
// instead of sending (Lab::flood_straight), where the kernel refuses live
// frames; the peers, which run none, are left out.
bool g_straight = false;

std::unique_ptr<Lab> bench_lab() {
  auto lab = std::make_unique<Lab>("xtbench");
  if (g_straight) lab->flood_straight();
  return lab;
}

// --prog-time: the kernel's run-time statistics of each XDP program (its
// own ns a run, which the sender's speed does not decide), on for the run.
bool g_prog_time = false;

struct ProgRuns {
  bool found = false;  // dut0 runs an XDP program (the peers' labs run none)
  uint64_t count = 0, ns = 0;
};

// The run count and run time of the XDP program on the lab's dut0.
ProgRuns dut_prog_runs(const Lab& lab) {
  const uint32_t id = lab.dut_xdp_prog();
  if (id == 0) return {};
  const xt::Fd fd(bpf_prog_get_fd_by_id(id));
  if (!fd) die("cannot open program " + std::to_string(id) + " of dut0: " + std::strerror(errno));
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
    die("cannot read program " + std::to_string(id) + "'s statistics: " + std::strerror(errno));
  return {true, info.run_cnt, info.run_time_ns};
}

// Each limiter's runs: their packet rates, and with --prog-time the
// program's own ns a run over each (none for the peers).
struct Runs {
  std::vector<double> pps, prog_ns;
};

// One timed flood of `lab`, its figures added to `runs`.
Flood timed_flood(const Lab& lab, const std::vector<std::string>& args, Runs& runs) {
  const ProgRuns before = g_prog_time ? dut_prog_runs(lab) : ProgRuns{};
  const Flood f = lab.flood(args);
  runs.pps.push_back(static_cast<double>(f.sent) / f.seconds);
  if (before.found) {
    const ProgRuns after = dut_prog_runs(lab);
    if (after.found && after.count > before.count)
      runs.prog_ns.push_back(static_cast<double>(after.ns - before.ns) /
                             static_cast<double>(after.count - before.count));
  }
  return f;
}

// Each limiter's figures from its runs (limiters[0] is the bare drop): the
// median packet rate, its ratio to the drop's, ns a packet above it (what
// carries from one machine to another, where the bare path's own speed
// differs threefold), and the best run; with --prog-time, the program's own
// median ns a run, and above the bare drop's.
void add_figures(json& row, const std::string& label, std::span<const Limiter> limiters,
                 const std::vector<Runs>& runs) {
  const double base = median(runs[0].pps);
  const double prog_base = median(runs[0].prog_ns);
  // Where the packets should pass, each limiter's cost above the bare pass
  // too: what it adds to what the host pays for them anyway.
  const auto pass = std::ranges::find(limiters, Limiter::XdpPass);
  const Runs* pass_runs = pass == limiters.end() ? nullptr : &runs[pass - limiters.begin()];
  const double pass_base = pass_runs ? median(pass_runs->pps) : 0;
  for (size_t i = 0; i < limiters.size(); i++) {
    const double m = median(runs[i].pps);
    const double best = *std::max_element(runs[i].pps.begin(), runs[i].pps.end());
    const double above_ns = 1e9 / m - 1e9 / base;
    json& fig = row[name(limiters[i])];
    fig = {{"mpps", m / 1e6}, {"ratio", m / base}, {"ns_above_drop", above_ns}, {"best_mpps", best / 1e6}};
    std::fprintf(stderr, "%-52.52s %-18s %6.2f Mpps  %.2f of XDP_DROP  %+6.1f ns", label.c_str(), name(limiters[i]),
                 m / 1e6, m / base, above_ns);
    const bool measured = limiters[i] != Limiter::XdpDrop && limiters[i] != Limiter::XdpPass;
    if (pass_base > 0 && measured) {
      const double above_pass = 1e9 / m - 1e9 / pass_base;
      fig["ns_above_pass"] = above_pass;
      std::fprintf(stderr, "  %+6.1f ns above XDP_PASS", above_pass);
    }
    if (!runs[i].prog_ns.empty()) {
      const double prog = median(runs[i].prog_ns);
      fig["prog_ns"] = prog;
      std::fprintf(stderr, "  program %.1f ns a run", prog);
      if (measured && !runs[0].prog_ns.empty()) {
        fig["prog_ns_above_drop"] = prog - prog_base;
        std::fprintf(stderr, " (%+.1f)", prog - prog_base);
      }
      if (measured && pass_runs && !pass_runs->prog_ns.empty())
        fig["prog_ns_above_pass"] = prog - median(pass_runs->prog_ns);
    }
    std::fprintf(stderr, "\n");
  }
}

struct Case {
  bool v6;
  uint32_t sources;
  std::string label() const {
    std::string n = sources == 1 ? "1 source" : sources == 1000 ? "1k" : sources == 1000000 ? "1M" : "16M";
    return std::string(v6 ? "IPv6 " : "IPv4 ") + n;
  }
  // A flood of `frames` from the rotation's step `start` on: each run
  // starts where the one before it stopped, so that over the runs a case
  // of more sources than frames sends each source once (every run would
  // otherwise send the same first `frames` of them, and with --frames
  // 1000000 "1M" and "16M" would be one flood).
  std::vector<std::string> flood_args(uint64_t frames, int cpu, uint64_t start) const {
    std::vector<std::string> a = {"--count", std::to_string(frames), "--cpu", std::to_string(cpu), "--sources",
                                  std::to_string(sources), "--start", std::to_string(start)};
    if (v6)
      a.insert(a.end(), {"--src", "2001:db8:4000::", "--dst", "2001:db8:ffff::1"});
    else
      a.insert(a.end(), {"--src", sources == 1 ? "10.0.0.1" : "10.0.0.0", "--dst", "198.18.0.2"});
    return a;
  }
};

// What the throughput, scale and fair-share sections run: the bare drop
// first (the baseline), xthrottle, then its peers unless --no-peers.
bool g_peers = true;
std::vector<Limiter> compared() {
  if (!g_peers) return {Limiter::XdpDrop, Limiter::Xthrottle};
  return {Limiter::XdpDrop, Limiter::Xthrottle, Limiter::Hashlimit, Limiter::NftMeter};
}
// Throughput and scale add the floor, last.
std::vector<Limiter> compared_with_floor() {
  auto l = compared();
  l.push_back(Limiter::Floor);
  return l;
}

json measure_throughput(uint32_t reps, uint64_t frames) {
  const std::vector<Limiter> limiters = compared_with_floor();
  json out = json::array();
  for (bool v6 : {false, true}) {
    for (uint32_t sources : {1u, 1000u, 1000000u, kSixteenM}) {
      const Case c{v6, sources};
      json row = {{"case", c.label()}, {"family", v6 ? "ipv6" : "ipv4"}, {"sources", sources}};
      // One lab per limiter, all up at once, and the runs interleaved, so
      // that a slow moment of the machine does not land on one limiter only.
      std::vector<std::unique_ptr<Lab>> labs;
      for (Limiter l : limiters) {
        labs.push_back(bench_lab());
        set_up(*labs.back(), l, kThroughputLimit);
      }
      std::vector<Runs> runs(std::size(limiters));
      for (uint32_t r = 0; r < reps; r++)
        for (size_t i = 0; i < std::size(limiters); i++)
          row["sender"] = timed_flood(*labs[i], c.flood_args(frames, 0, r * frames), runs[i]).sender;
      add_figures(row, "throughput: " + c.label(), limiters, runs);
      out.push_back(row);
    }
  }
  return out;
}

// Attack scale: floods that outlast the first second, from sources the
// limiter already tracks. Each case warms every lab with `fill` first (again
// before each run, so what it admitted is always less than a minute old),
// then times `flood`.
struct ScaleCase {
  std::string label;
  uint32_t limit, burst;
  std::vector<std::string> xt_args;               // on xthrottle's catch-all rules
  std::vector<std::vector<std::string>> extra;    // more xthrottle rules
  std::vector<std::string> fill, flood;           // floodgen arguments; the fill's --count included
  uint64_t timed = 0;                              // frames of each timed flood
  double seconds = 0;                              // its time at most, if not 0 (floodgen --for)
  bool legit = false;  // a client 500/s under its own 1000/s rule, through every run
  // xthrottle passes nearly all its packets (the table forgets each source
  // before it comes back): the floor, which drops them all, is no floor of
  // it, and is not run; a bare XDP_PASS is run instead, the host's stack
  // taking every packet.
  bool passes = false;
};

std::vector<ScaleCase> scale_cases(uint64_t frames) {
  const std::vector<std::string> raised = {"--new-rate", "100000000/s"};
  return {
      {"sustained: 16M spoofed, table full of sources admitted in the last minute",
       kThroughputLimit, kThroughputLimit, {},
       {{"172.16.0.0/12", "--rate", "100/s", "--new-rate", "100000000/s"}},
       {"--sources", "1048576", "--src", "172.16.0.0", "--count", "1048576"},
       {"--sources", std::to_string(kSixteenM), "--src", "10.0.0.0"}, frames},
      // Two packets from each source before the timed flood: the first
      // passes (tracked), the second is its first drop (over its limit).
      // With one, each source's first timed packet was that first drop:
      // 200k decisions on its bucket in each run's frames, the first
      // packets of a botnet rather than the flood that lasts. And the
      // flood is timed over three seconds (at most 100 x --frames), so
      // that each source's token, 1/s, comes back in it twice or three
      // times, as it does every second of a flood that lasts: the pass and
      // the first drop after it that each return costs are in the figure.
      {"botnet: 200k real sources, all tracked, each over 1/s", 1, 1, raised, {},
       {"--sources", "200000", "--src", "10.0.0.0", "--count", "400000"},
       {"--sources", "200000", "--src", "10.0.0.0"}, 100 * frames, 3.0},
      {"botnet: 1M real sources cycling over the 262k-source table", 1, 1, raised,
       {{std::string(kLegitSource) + "/32", "--rate", std::to_string(kLegitLimit) + "/s"}},
       {"--sources", "1000000", "--src", "10.0.0.0", "--count", "1000000"},
       {"--sources", "1000000", "--src", "10.0.0.0"}, frames, 0, true, true},
      // The same botnet where the operator left the new-source budget as
      // it is: it turns the botnet away at the budget, the table untouched.
      {"botnet: 1M real sources cycling, the default new-source budget", 1, 1, {},
       {{std::string(kLegitSource) + "/32", "--rate", std::to_string(kLegitLimit) + "/s"}},
       {"--sources", "1000000", "--src", "10.0.0.0", "--count", "1000000"},
       {"--sources", "1000000", "--src", "10.0.0.0"}, frames, 0, true},
  };
}

json measure_scale(uint32_t reps, uint64_t frames) {
  json out = json::array();
  for (const ScaleCase& c : scale_cases(frames)) {
    std::vector<Limiter> limiters = compared_with_floor();
    if (c.passes) limiters.back() = Limiter::XdpPass;
    json row = {{"case", c.label}};
    std::vector<std::unique_ptr<Lab>> labs;
    for (Limiter l : limiters) {
      labs.push_back(bench_lab());
      set_up(*labs.back(), l, c.limit, c.burst, c.extra, c.xt_args);
    }
    Lab& xt_lab = *labs[1];
    std::unique_ptr<Background> legit;
    if (c.legit) {
      const uint64_t count = 600 * kLegitRate;  // bounded: ten minutes at most
      legit = std::make_unique<Background>(xt_lab.flood_argv({"--src", kLegitSource, "--dst", "198.18.0.2",
                                                                "--rate", std::to_string(kLegitRate), "--count",
                                                                std::to_string(count), "--cpu", "1"}));
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // established before the botnet
    }
    const auto evicted_active = [&xt_lab] {
      return xt_lab.xthrottle_json({"status", "--json"}).value("sources_evicted_active", uint64_t{0});
    };
    // What xthrottle's lab met while it was flooded, and only then: the
    // client's packets delivered and the seconds they were sent over (the
    // other labs' floods and every start-up between would water a loss
    // down), and the evictions of sources still sending that its timed
    // floods made (not the fill's, which push the table's sources out by
    // design).
    uint64_t delivered_flooded = 0;
    double flooded_seconds = 0;
    uint64_t evicted = 0;
    std::vector<Runs> runs(std::size(limiters));
    for (uint32_t r = 0; r < reps; r++)
      for (size_t i = 0; i < std::size(limiters); i++) {
        std::vector<std::string> fill = c.fill, flood = c.flood;
        for (auto* a : {&fill, &flood}) a->insert(a->end(), {"--cpu", "0", "--dst", "198.18.0.2"});
        flood.insert(flood.end(), {"--count", std::to_string(c.timed), "--start", std::to_string(r * c.timed)});
        if (c.seconds > 0) flood.insert(flood.end(), {"--for", std::to_string(c.seconds)});
        const bool xt = labs[i].get() == &xt_lab;
        // Runs one flood, adding what the client got through meanwhile
        // and for how long to delivered_flooded and flooded_seconds, when it is
        // xthrottle's lab (the reads of status between are left out).
        // Each count is taken as of the middle of the nft call that reads
        // it (a process start: milliseconds, a packet or so of the client's).
        const auto flooded = [&](const auto& send) {
          if (!xt || !legit) return send();
          const auto read = [&xt_lab](uint64_t* n) {
            const auto before = std::chrono::steady_clock::now();
            *n = xt_lab.received_v4();
            return before + (std::chrono::steady_clock::now() - before) / 2;
          };
          uint64_t from = 0, to = 0;
          const auto t0 = read(&from);
          send();
          const auto t1 = read(&to);
          flooded_seconds += std::chrono::duration<double>(t1 - t0).count();
          delivered_flooded += to - from;
        };
        flooded([&] { labs[i]->flood(fill); });
        const uint64_t evicted_before = xt ? evicted_active() : 0;
        flooded([&] { row["sender"] = timed_flood(*labs[i], flood, runs[i]).sender; });
        if (xt) evicted += evicted_active() - evicted_before;
      }
    if (legit) {
      legit->signal(SIGTERM);
      legit->wait();
      const uint64_t arrived = static_cast<uint64_t>(kLegitRate * flooded_seconds + 0.5);
      const uint64_t delivered = delivered_flooded;
      const double loss = arrived ? std::max(0.0, 1.0 - static_cast<double>(delivered) / arrived) : 1.0;
      row["legit"] = {{"arrived", arrived}, {"delivered", delivered}, {"loss", loss}};
      std::fprintf(stderr,
                   "scale: legit client through it while flooded: %llu arrived, %llu delivered, loss %.2f%%\n",
                   (unsigned long long)arrived, (unsigned long long)delivered, 100 * loss);
    }
    const json tracked = xt_lab.xthrottle_json({"status", "--json"});
    row["xthrottle_tracked"] = tracked.value("tracked_sources", json());
    // Evictions of sources still sending, by the timed floods: the table
    // too small for the case (the cycling botnet's), their limits no
    // longer holding.
    row["xthrottle_evicted_active"] = evicted;
    add_figures(row, "scale: " + c.label, limiters, runs);
    out.push_back(row);
  }
  return out;
}

// The same 4096 rules on the whole path, as --deny (so each flood packet is
// classified, dropped, and its source remembered in the hot cache, which a
// 16M-source flood never hits again), against one deny rule without a match
// and the bare drop: a UDP flood (to port 9: the rules' protocol level,
// then none) and a SYN flood to 22 (the --syn --port rules), each of
// `frames` sources counted up from 10.0.0.0 (4M by default: 245 of the
// /18 rules, 16,384 frames in a row from each).
json measure_classify_path(uint32_t reps, uint64_t frames) {
  const std::string file = "/tmp/xtbench-" + std::to_string(getpid()) + "-rules.toml";
  {
    std::ofstream out(file);
    for (int i = 0; i < 1024; i++) {
      const std::string cidr =
          "cidr = \"10." + std::to_string(i >> 2) + "." + std::to_string((i & 3) << 6) + ".0/18\"\naction = \"deny\"\n";
      out << "[[rule]]\n" << cidr << "\n[[rule]]\n" << cidr << "proto = \"udp\"\n\n[[rule]]\n" << cidr
          << "proto = \"udp\"\nport = " << 1000 + i << "\n\n[[rule]]\n" << cidr << "proto = \"tcp\"\nport = 22\nsyn = true\n\n";
    }
  }
  std::vector<std::unique_ptr<Lab>> labs;
  for (int i = 0; i < 3; i++) labs.push_back(bench_lab());
  set_up(*labs[0], Limiter::XdpDrop, 1);
  must(labs[1]->xthrottle({"attach", "dut0", "--mode", "native"}), "xthrottle attach");
  must(labs[1]->xthrottle({"rule", "add", "0.0.0.0/0", "--deny"}), "xthrottle rule add");
  must(labs[2]->xthrottle({"attach", "dut0", "--mode", "native"}), "xthrottle attach");
  const auto start = std::chrono::steady_clock::now();
  must(labs[2]->xthrottle({"apply", file}), "xthrottle apply");
  const double apply_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::filesystem::remove(file);
  std::fprintf(stderr, "classify: apply of 4096 rules took %.2f s\n", apply_seconds);
  json out = json::array();
  for (bool syn : {false, true}) {
    std::vector<std::string> flood = {"--src", "10.0.0.0", "--sources", std::to_string(kSixteenM), "--count",
                                      std::to_string(frames), "--cpu", "0", "--dst", "198.18.0.2"};
    if (syn) flood.insert(flood.end(), {"--syn", "22"});
    std::vector<std::vector<double>> pps(3);
    for (uint32_t r = 0; r < reps; r++)
      for (size_t i = 0; i < 3; i++) {
        const Flood f = labs[i]->flood(flood);
        pps[i].push_back(f.sent / f.seconds);
      }
    const std::string label = syn ? "SYN flood to tcp/22, 16M sources" : "UDP flood to port 9, 16M sources";
    json row = {{"case", label}, {"apply_seconds", apply_seconds}};
    const double base = median(pps[0]);
    const char* names[] = {"XDP_DROP", "one rule", "4096 rules"};
    for (size_t i = 0; i < 3; i++) {
      const double m = median(pps[i]);
      row[names[i]] = {{"mpps", m / 1e6}, {"ratio", m / base}, {"ns_above_drop", 1e9 / m - 1e9 / base}};
      std::fprintf(stderr, "classify: %-34s %-10s %6.2f Mpps  %.2f of XDP_DROP  %+6.1f ns\n", label.c_str(), names[i],
                   m / 1e6, m / base, 1e9 / m - 1e9 / base);
    }
    out.push_back(row);
  }
  return out;
}

json measure_legit_loss(uint64_t frames) {
  json out = json::array();
  for (Limiter l : {Limiter::Xthrottle, Limiter::Hashlimit, Limiter::NftMeter}) {
    Lab lab("xtbench");
    set_up(lab, l, kLegitLimit);
    const Case flood{false, kSixteenM};
    // Time the flood first so the legitimate source can outlast it.
    const double est = lab.flood(flood.flood_args(frames / 4, 0, 0)).seconds * 4;
    const double warmup = 1.5, tail = 1.0;
    const uint64_t legit_count = static_cast<uint64_t>((warmup + est * 1.5 + tail + 2) * kLegitRate);
    Background legit(lab.flood_argv({"--src", kLegitSource, "--dst", "198.18.0.2", "--rate",
                                     std::to_string(kLegitRate), "--count", std::to_string(legit_count), "--cpu",
                                     "1"}));
    std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
    const Legit before = legit_counts(lab, l);
    const auto t0 = std::chrono::steady_clock::now();
    const Flood f = lab.flood(flood.flood_args(frames, 0, frames / 4));
    const auto t1 = std::chrono::steady_clock::now();
    const Legit after = legit_counts(lab, l);
    legit.signal(SIGTERM);
    legit.wait();
    // Packets the source sent meanwhile: its pacing over the window (exact
    // on this path, checked with nothing else running).
    const double window = std::chrono::duration<double>(t1 - t0).count();
    const uint64_t arrived = static_cast<uint64_t>(kLegitRate * window + 0.5);
    const uint64_t delivered = after.delivered - before.delivered;
    const double loss = arrived ? std::max(0.0, 1.0 - static_cast<double>(delivered) / arrived) : 1.0;
    const uint64_t flood_passed = after.flood_passed - before.flood_passed;
    out.push_back({{"limiter", name(l)},
                   {"flood_seconds", f.seconds},
                   {"flood_mpps", f.sent / f.seconds / 1e6},
                   {"flood_sent", f.sent},
                   {"flood_passed", flood_passed},
                   {"legit_arrived", arrived},
                   {"legit_delivered", delivered},
                   {"loss", loss}});
    std::fprintf(stderr,
                 "legit loss: %-18s flood %.2f Mpps for %.2f s, %llu let through: legit %llu arrived, %llu "
                 "delivered, loss %.2f%%\n",
                 name(l), f.sent / f.seconds / 1e6, f.seconds, (unsigned long long)flood_passed,
                 (unsigned long long)arrived, (unsigned long long)delivered, 100 * loss);
  }
  return out;
}

// New and returning clients during a spoofed flood of 16M sources at
// floodgen's full speed, for each limiter (every source limited to 100/s):
// 30 new TCP clients (the kernel's stack) connecting to a listener behind
// it, each within 3 s; and 30 clients that talked two minutes before, then
// went quiet, sending 30 packets each. All three labs up at once, so the
// two minutes pass once.
constexpr int kClients = 30;
std::string bench_client(int i) { return "198.18.0." + std::to_string(100 + i); }      // new clients
std::string returning_client(int i) { return "198.18.0." + std::to_string(150 + i); }  // returning ones

// The clients' addresses (Lab::add_clients), and a counter behind the
// peers' limiters of what 198.18.0.0/24 passed.
void set_up_clients(const Lab& lab, Limiter l) {
  std::vector<std::string> clients;
  for (int i = 0; i < kClients; i++) clients.insert(clients.end(), {bench_client(i), returning_client(i)});
  lab.add_clients(clients);
  if (l != Limiter::Xthrottle) count_behind(lab, {"198.18.0.0/24"});
}

// Packets from 198.18.0.0/24 that got past the limiter so far.
uint64_t clients_passed(const Lab& lab, Limiter l) {
  if (l == Limiter::Xthrottle) return lab.received_v4();  // the flood is 10.0.0.0/8: the lab counter sees clients only
  return raw_counter(raw_counters(lab), "198.18.0.0/24");
}

std::vector<std::string> full_speed_flood(const Lab& lab, bool syn) {
  std::vector<std::string> a = {"--src", "10.0.0.0", "--sources", std::to_string(kSixteenM), "--count", "200000000",
                                "--cpu", "0", "--dst", "198.18.0.2"};
  if (syn) a.insert(a.end(), {"--syn", "8080"});
  return lab.flood_argv(a);
}

json measure_clients() {
  const std::vector<Limiter> limiters = {Limiter::Xthrottle, Limiter::Hashlimit, Limiter::NftMeter};
  std::vector<std::unique_ptr<Lab>> labs;
  for (Limiter l : limiters) {
    labs.push_back(bench_lab());
    set_up(*labs.back(), l, kThroughputLimit);
    set_up_clients(*labs.back(), l);
  }
  // The returning clients talk first: 20 packets each.
  for (auto& lab : labs)
    for (int i = 0; i < kClients; i++)
      lab->flood({"--src", returning_client(i), "--count", "20", "--rate", "1000", "--cpu", "1"});
  const auto talked = std::chrono::steady_clock::now();

  json out = json::array();
  for (size_t n = 0; n < limiters.size(); n++) {
    const Lab& lab = *labs[n];
    const Limiter l = limiters[n];
    // New TCP clients during a SYN flood.
    Background server({"ip", "netns", "exec", lab.dut_ns(), "/usr/bin/python3", XT_CLIENTS_SCRIPT, "serve",
                       "198.18.0.2", "8080", "30"});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Background flood(full_speed_flood(lab, true));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    // What of the flood the limiter let through to the host meanwhile.
    const uint64_t flood_before = legit_counts(lab, l).flood_passed;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> argv = {"ip", "netns", "exec", lab.gen_ns(), "taskset", "-c", "1", "/usr/bin/python3",
                                     XT_CLIENTS_SCRIPT, "connect", "198.18.0.2", "8080", "3"};
    for (int i = 0; i < kClients; i++) argv.push_back(bench_client(i));
    Outcome r = run(argv);
    // Over the clients' whole 3 s, however soon they connected: a rate
    // over a tenth of a second would be mostly the budget's burst.
    std::this_thread::sleep_until(t0 + std::chrono::seconds(3));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flood_pps = static_cast<double>(legit_counts(lab, l).flood_passed - flood_before) / seconds;
    flood.signal(SIGTERM);
    flood.wait();
    server.signal(SIGTERM);
    server.wait();
    must(r, "tcp clients");
    const json c = json::parse(r.out);
    out.push_back({{"limiter", name(l)}, {"new_connected", c["connected"]}, {"new_seconds", c["seconds"]},
                   {"flood_passed_pps", flood_pps}});
    std::fprintf(stderr,
                 "clients: %-18s %d of %d new TCP clients connected within 3 s during a SYN flood, which reached the "
                 "host at %.0f SYNs/s\n",
                 name(l), c["connected"].get<int>(), kClients, flood_pps);
  }
  // Two minutes after the returning clients talked, each sends 30 packets
  // during a flood (UDP: nothing answers it).
  std::this_thread::sleep_until(talked + std::chrono::seconds(120));
  for (size_t n = 0; n < limiters.size(); n++) {
    const Lab& lab = *labs[n];
    Background flood(full_speed_flood(lab, false));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const uint64_t before = clients_passed(lab, limiters[n]);
    for (int i = 0; i < kClients; i++)
      lab.flood({"--src", returning_client(i), "--count", "30", "--rate", "1000", "--cpu", "1"});
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const uint64_t passed = clients_passed(lab, limiters[n]) - before;
    flood.signal(SIGTERM);
    flood.wait();
    out[n]["returning_sent"] = kClients * 30;
    out[n]["returning_passed"] = passed;
    std::fprintf(stderr, "clients: %-18s returning clients, 2 min idle: %llu of %d packets through a flood\n",
                 name(limiters[n]), (unsigned long long)passed, kClients * 30);
  }
  return out;
}

// ---------------------------------------------------------------- fleet

// A fleet (issue 15): two hosts (labs) with a --scope fleet rule (1/s a
// source, burst 1; a new-source budget large enough to admit them all),
// one redis-server on a unix socket, serve --cluster on each every 100 ms.
// Host A is flooded at full speed from `sources` spoofed sources, each
// passing one packet a second (so that every source is active, published
// once a second, while what passes to the host's stack stays small and
// alike in both runs); host B takes A's use. Measured: A's packet rate with and without the
// serves running (the fleet's cost on the data path: the table walk and
// the charges compete for the same memory), the bytes A sends to
// Redis a second, the exchanges A keeps a second, and what B takes.
std::string redis_cli(const std::string& sock, std::vector<std::string> args) {
  args.insert(args.begin(), {"redis-cli", "-s", sock});
  const Outcome r = run(args);
  must(r, "redis-cli " + args[3]);
  return r.out;
}

uint64_t redis_stat(const std::string& sock, const std::string& field) {
  const std::string info = redis_cli(sock, {"INFO", "stats"});
  const auto at = info.find(field + ":");
  if (at == std::string::npos) throw std::runtime_error("redis INFO stats has no " + field);
  return std::stoull(info.substr(at + field.size() + 1));
}

json measure_fleet(uint64_t frames) {
  const std::string dir = "/tmp/xtbench-fleet-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string sock = dir + "/redis.sock";
  json out = json::array();
  try {
    for (uint32_t sources : {10000u, 1000000u}) {
      Background redis({"taskset", "-c", "1", "redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "",
                        "--appendonly", "no", "--dir", dir});
      for (int i = 0; i < 100 && run({"redis-cli", "-s", sock, "ping"}).out != "PONG\n"; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      Lab a("xtbench"), b("xtbench");
      for (const Lab* lab : {&a, &b}) {
        must(lab->xthrottle({"attach", "dut0", "--mode", "native", "--max-sources", "2097152"}), "xthrottle attach");
        must(lab->xthrottle({"rule", "add", "0.0.0.0/0", "--rate", "1/s", "--burst", "1", "--new-rate",
                             "100000000/s", "--scope", "fleet"}),
             "xthrottle rule add");
      }
      const std::vector<std::string> args = {"--src", "10.0.0.0", "--sources", std::to_string(sources), "--count",
                                             std::to_string(frames), "--cpu", "0", "--dst", "198.18.0.2"};
      a.flood(args);  // every source admitted and tracked
      std::vector<double> off, on;
      const Flood alone = a.flood(args);
      off.push_back(alone.sent / alone.seconds);
      // The serves and Redis on the CPU floodgen (and the data path it
      // drives) is not on, as an operator would keep them off the NIC's.
      auto serve = [&](const Lab& lab) {
        std::vector<std::string> argv = lab.xthrottle_argv(
            {"serve", "--metrics", "127.0.0.1:9431", "--cluster", "unix://" + sock, "--cluster-every", "100ms"});
        argv.insert(argv.begin(), {"taskset", "-c", "1"});
        return std::make_unique<Background>(argv);
      };
      auto sa = serve(a), sb = serve(b);
      auto health = [](const Lab& lab) { return lab.xthrottle_json({"status", "--json"})["fleet"]; };
      for (int i = 0; i < 100; i++) {
        const json ha = health(a), hb = health(b);
        if (ha.is_object() && hb.is_object() && ha["exchanges"].get<uint64_t>() > 2 &&
            hb["exchanges"].get<uint64_t>() > 2)
          break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      redis_cli(sock, {"CONFIG", "RESETSTAT"});
      const json a0 = health(a), b0 = health(b);
      const auto t0 = std::chrono::steady_clock::now();
      const Flood shared = a.flood(args);
      on.push_back(shared.sent / shared.seconds);
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the last exchanges
      const double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const json a1 = health(a), b1 = health(b);
      const uint64_t bytes = redis_stat(sock, "total_net_input_bytes");
      sa->signal(SIGTERM);
      sb->signal(SIGTERM);
      sa->wait();
      sb->wait();
      const Flood after = a.flood(args);  // the serves gone again: is the machine where it was?
      off.push_back(after.sent / after.seconds);
      const double pps_off = median(off), pps_on = on[0];
      const double exchanges = static_cast<double>(a1["exchanges"].get<uint64_t>() - a0["exchanges"].get<uint64_t>());
      json row = {{"sources", sources},
                  {"pps_alone", pps_off},
                  {"pps_fleet", pps_on},
                  {"ns_added", 1e9 / pps_on - 1e9 / pps_off},
                  {"seconds", window},
                  {"redis_bytes_per_second", static_cast<double>(bytes) / window},
                  {"exchanges_per_second", exchanges / window},
                  {"last_exchange_seconds", a1["exchange_seconds"]},
                  {"sent_packets", a1["sent_packets"].get<uint64_t>() - a0["sent_packets"].get<uint64_t>()},
                  {"taken_packets", b1["applied_packets"].get<uint64_t>() - b0["applied_packets"].get<uint64_t>()},
                  {"taken_sources", b1["applied_sources"].get<uint64_t>() - b0["applied_sources"].get<uint64_t>()},
                  {"refused_sources", b1["refused_sources"].get<uint64_t>() - b0["refused_sources"].get<uint64_t>()}};
      std::fprintf(stderr,
                   "fleet: %u sources: %.2f Mpps alone, %.2f Mpps with the fleet (%+.1f ns a packet); %.1f MB/s to "
                   "Redis, %.1f exchanges/s (the last took %.3f s); B took %llu packets from %llu sources\n",
                   sources, pps_off / 1e6, pps_on / 1e6, row["ns_added"].get<double>(),
                   row["redis_bytes_per_second"].get<double>() / 1e6, row["exchanges_per_second"].get<double>(),
                   row["last_exchange_seconds"].get<double>(), (unsigned long long)row["taken_packets"].get<uint64_t>(),
                   (unsigned long long)row["taken_sources"].get<uint64_t>());
      out.push_back(row);
    }
  } catch (...) {
    std::filesystem::remove_all(dir);
    throw;
  }
  std::filesystem::remove_all(dir);
  return out;
}

// Totals with fair shares (issue 13): 10,000 heavy sources (198.18.16.1
// up), each well within a 10,000/s limit at 50/s but together ten times
// over a 50,000/s total, and 1000 light sources (198.19.0.1 up) at 0.5/s,
// a tenth of the fair share, for 10 s from two floodgen runs at once. The
// peers do what they can: a per-source limit, then one limit shared by
// every source that got past it (iptables: hashlimit by source, then
// hashlimit without a mode, since `-m limit` stops at 10,000/s; nft: a
// meter, then a `limit` statement); that is first-come sharing. Counted
// behind each limiter by rules in the raw table. Then the heavy sources
// unpaced, on the same labs and the bare drop's: what the total costs when
// it drops nearly everything.
constexpr double kFairTotal = 50000, kFairSeconds = 10;
constexpr uint32_t kFairPerSource = 10000;
constexpr int kFairHeavy = 10000, kFairLight = 1000;
const char* kHeavyRange = "198.18.0.0/16";
const char* kLightRange = "198.19.0.0/16";
// The heavy sources' frames go out 10 at a time, every 20 us (as finely as
// floodgen keeps 500k/s beside a peer here), not in 1 ms chunks: after a
// chunk, the peers' shared limits refill for the rest of the gap, and the
// light sources' packets, which mostly arrive then, find tokens that traffic
// interleaved packet by packet would not leave them. How much the peers
// lose of the light sources depends on that pattern (the nft meter: 1.5% with
// 1 ms chunks, 47% with 20 us ones; first-come sharing of perfectly
// interleaved traffic, ten times over, loses 90%); xthrottle's does not.
const char* kFairPaceUs = "20";

void set_up_total(const Lab& lab, Limiter l) {
  const std::string per_source = std::to_string(kFairPerSource), total = std::to_string(int(kFairTotal));
  switch (l) {
    case Limiter::XdpDrop:
    case Limiter::XdpPass:
    case Limiter::Floor:
      set_up(lab, l, 1);
      return;
    case Limiter::Xthrottle:
      must(lab.xthrottle({"attach", "dut0", "--mode", "native"}), "xthrottle attach");
      must(lab.xthrottle({"rule", "add", "198.18.0.0/15", "--rate", per_source + "/s", "--new-rate", "100000/s",
                          "--total", total + "/s"}),
           "xthrottle rule add");
      break;
    case Limiter::Hashlimit:
      for (const char* mode : {"srcip", ""}) {
        std::vector<std::string> argv = {"iptables", "-t", "raw", "-A", "PREROUTING", "-m", "hashlimit",
                                         "--hashlimit-name", *mode ? "xtbsrc" : "xtbtotal", "--hashlimit-above",
                                         (*mode ? per_source : total) + "/sec", "--hashlimit-burst",
                                         *mode ? per_source : total, "--hashlimit-htable-max", "262144"};
        if (*mode) argv.insert(argv.end(), {"--hashlimit-mode", mode});
        argv.insert(argv.end(), {"-j", "DROP"});
        must(lab.in_dut(argv), "iptables hashlimit");
      }
      break;
    case Limiter::NftMeter:
      nft_load(lab,
               "table netdev xtb {\n  chain in {\n    type filter hook ingress device \"dut0\" priority 0;\n"
               "    meter m4 size 262144 { ip saddr limit rate over " + per_source + "/second burst " + per_source +
                   " packets } drop\n"
                   "    limit rate over " + total + "/second burst " + total + " packets drop\n  }\n}\n",
               "nft meter and limit");
      break;
  }
  count_behind(lab, {kHeavyRange, kLightRange});
}

json measure_fair_share(uint32_t reps, uint64_t frames) {
  const std::vector<Limiter> limiters = compared();
  std::vector<std::unique_ptr<Lab>> labs;
  for (Limiter l : limiters) {
    labs.push_back(bench_lab());
    set_up_total(*labs.back(), l);
  }
  const double heavy_rate = 10 * kFairTotal, light_rate = kFairLight * (kFairTotal / kFairHeavy) / 10;
  json rows = json::array();
  for (size_t n = 1; n < limiters.size(); n++) {  // one at a time: the floods take both CPUs' time
    const Lab& lab = *labs[n];
    Background light(lab.flood_argv({"--src", "198.19.0.1", "--sources", std::to_string(kFairLight), "--rate",
                                     std::to_string(light_rate), "--count",
                                     std::to_string(int(light_rate * (kFairSeconds + 5))), "--cpu", "1", "--dst",
                                     "198.18.0.2"}));
    Background heavy(lab.flood_argv({"--src", "198.18.16.1", "--sources", std::to_string(kFairHeavy), "--rate",
                                     std::to_string(heavy_rate), "--count",
                                     std::to_string(int(heavy_rate * kFairSeconds)), "--cpu", "0", "--dst",
                                     "198.18.0.2", "--pace-us", kFairPaceUs}));
    // The total's first burst (a second's worth) is spent, and the fair
    // share settled, within two seconds; from then on, the rate.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    // Each read of the counters takes a while (a process in the lab): its
    // middle is when they were read. The heavy sources stop at their end;
    // the light ones go on until the second read.
    using Clock = std::chrono::steady_clock;
    auto read = [&](Clock::time_point* at) {
      const auto from = Clock::now();
      std::string listing = raw_counters(lab);
      *at = from + (Clock::now() - from) / 2;
      return listing;
    };
    Clock::time_point t0, t1;
    const std::string before = read(&t0);
    // The share in force in the window (xthrottle's claims a second each
    // source may make; not total / sources, which the light rate is set by).
    const double share = limiters[n] == Limiter::Xthrottle
                             ? lab.xthrottle_json({"stats", "--json"})["rules"]["198.18.0.0/15"].value(
                                   "fair_share_per_second", 0.0)
                             : 0.0;
    const Outcome h = heavy.wait();
    const double heavy_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const std::string after = read(&t1);
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    light.signal(SIGTERM);
    light.wait();
    if (h.rc != 0) die("floodgen: " + h.err);
    auto passed = [&](const char* range) { return raw_counter(after, range) - raw_counter(before, range); };
    const uint64_t heavy_passed = passed(kHeavyRange), light_passed = passed(kLightRange);
    // What the heavy sources sent in the window: at the rate floodgen kept
    // (it falls behind if its chunks cost more than their time).
    const json sent = json::parse(h.out);
    const double heavy_pps = sent["sent"].get<double>() / sent["seconds"].get<double>();
    if (heavy_pps < 0.95 * heavy_rate)
      std::fprintf(stderr, "fair share: the heavy sources sent %.0f/s only, not %.0f/s\n", heavy_pps, heavy_rate);
    const double light_sent = light_rate * seconds, heavy_sent = heavy_pps * heavy_seconds;
    // What passed while the heavy sources sent: all of theirs, and the
    // light sources' share of that time.
    const double rate =
        (static_cast<double>(heavy_passed) + static_cast<double>(light_passed) * heavy_seconds / seconds) /
        heavy_seconds;
    json row = {{"limiter", name(limiters[n])},
                {"seconds", heavy_seconds},
                {"heavy_sent_per_second", heavy_pps},
                {"passed_per_second", rate},
                {"error", rate / kFairTotal - 1},
                {"light_sent", std::llround(light_sent)},
                {"light_passed", light_passed},
                {"light_loss", std::max(0.0, 1 - static_cast<double>(light_passed) / light_sent)},
                {"heavy_passed_share", static_cast<double>(heavy_passed) / heavy_sent}};
    if (limiters[n] == Limiter::Xthrottle) row["fair_share_per_second"] = share;
    std::fprintf(stderr,
                 "fair share: %-18s %.0f/s passed of a %.0f/s total (%+.1f%%); light sources lost %.2f%% (%llu of "
                 "%.0f passed); heavy sources passed %.1f%%\n",
                 name(limiters[n]), rate, kFairTotal, 100 * (rate / kFairTotal - 1),
                 100 * row["light_loss"].get<double>(), (unsigned long long)light_passed, light_sent,
                 100 * row["heavy_passed_share"].get<double>());
    rows.push_back(row);
  }
  // The cost: the heavy sources unpaced, each lab in turn.
  std::vector<Runs> runs(std::size(limiters));
  for (uint32_t r = 0; r < reps; r++)
    for (size_t i = 0; i < std::size(limiters); i++)
      timed_flood(*labs[i],
                  {"--src", "198.18.16.1", "--sources", std::to_string(kFairHeavy), "--count",
                   std::to_string(frames), "--cpu", "0", "--dst", "198.18.0.2"},
                  runs[i]);
  json cost = {{"case", "10k sources unpaced, each within its own limit, against the total"}};
  add_figures(cost, "fair share: cost", limiters, runs);
  return {{"total_per_second", kFairTotal}, {"light_sources", kFairLight}, {"heavy_sources", kFairHeavy},
          {"limiters", rows}, {"cost", cost}};
}

json measure_accuracy(uint64_t frames) {
  json out = json::array();
  for (int threads : {1, 2}) {
    Lab lab("xtbench");
    must(lab.xthrottle({"attach", "dut0", "--mode", "native"}), "xthrottle attach");
    must(lab.xthrottle({"rule", "add", "198.18.0.0/15", "--rate", "10000/s", "--burst", "1000"}), "rule add");
    const Flood f = lab.flood({"--src", "198.18.3.3", "--count", std::to_string(frames), "--threads",
                               std::to_string(threads)});
    const double expected = 1000 + 10000 * f.seconds;
    const uint64_t passed = lab.received_v4();
    out.push_back({{"cpus", threads},
                   {"mpps", f.sent / f.seconds / 1e6},
                   {"seconds", f.seconds},
                   {"passed", passed},
                   {"expected", expected},
                   {"ratio", passed / expected}});
    std::fprintf(stderr, "accuracy: %d CPU(s), %.2f Mpps for %.3f s: passed %llu of %.1f expected (%.4f)\n", threads,
                 f.sent / f.seconds / 1e6, f.seconds, (unsigned long long)passed, expected, passed / expected);
  }
  return out;
}

// ---------------------------------------------------------------- output

// A table row of one case: the bare drop's rate, then each limiter's ratio,
// ns a packet above the drop and rate.
std::string limiters_row(const json& row, bool floor_column = true) {
  char buf[128];
  std::string out = "| " + row["case"].get<std::string>() + " | ";
  std::snprintf(buf, sizeof(buf), "%.2f Mpps", row["XDP_DROP"]["mpps"].get<double>());
  out += buf;
  if (row["XDP_DROP"].contains("prog_ns")) {
    std::snprintf(buf, sizeof(buf), " (program %.0f ns)", row["XDP_DROP"]["prog_ns"].get<double>());
    out += buf;
  }
  for (const char* l : {"xthrottle", "iptables hashlimit", "nft meter", "floor"}) {
    if (!floor_column && std::string_view(l) == "floor") continue;
    if (!row.contains(l)) {
      out += " | —";
      continue;
    }
    std::snprintf(buf, sizeof(buf), " | %.2f, %+.0f ns (%.2f Mpps", row[l]["ratio"].get<double>(),
                  row[l].value("ns_above_drop", 0.0), row[l]["mpps"].get<double>());
    out += buf;
    if (row[l].contains("prog_ns_above_drop")) {
      std::snprintf(buf, sizeof(buf), "; program %+.0f ns", row[l]["prog_ns_above_drop"].get<double>());
      out += buf;
    }
    out += ")";
  }
  return out + " |\n";
}

std::string markdown(const json& r) {
  std::ostringstream md;
  char buf[512];
  md << "Whole-path packet rate, every source limited to " << kThroughputLimit << "/s (median of "
     << r["reps"].get<int>() << " interleaved runs of " << r["frames"].get<uint64_t>()
     << " frames; ratio to the bare XDP_DROP of the same case, and ns a packet above it). The floor is "
        "tools/bench/xdp_floor.bpf.c: a parse, the clock, a hash, one line of a 1 MiB-a-CPU two-way cache that "
        "holds the source, a count, and the drop. For one source it is what holding a source over its limit costs at "
        "the least; for many, what one cached line a packet costs, a bound no correct limiter reaches (it forgets the "
        "sources it has no room for, and drops every packet; not run where the packets should pass):\n\n";
  if (r.contains("throughput") && !r["throughput"].empty() &&
      r["throughput"][0].value("sender", "live frames") != "live frames")
    md << "**floodgen sent from user space here** (the kernel refused live frames: tools/floodgen/README.md): "
          "every rate below includes its sending on the receiver's CPU, so they are not comparable with a run "
          "of live frames, and the sender's own cost is larger than most differences between limiters: "
          "`--prog-time` measures the programs' own time beside it.\n\n";
  if (r.value("prog_time", false))
    md << "Run with `--prog-time`: \"program\" is the XDP program's own time a packet by the kernel's run-time "
          "statistics (`BPF_ENABLE_STATS`: run_time_ns over run_cnt, median of the runs), the bare drop's in its "
          "column and each limiter's above it; the statistics' own clock reads add to every XDP program's rate "
          "alike, and nothing to the peers', which run no XDP program.\n\n";
  md << "| case | XDP_DROP | xthrottle | iptables hashlimit | nft meter | floor |\n|---|---|---|---|---|---|\n";
  for (const auto& row : r["throughput"]) {
    md << limiters_row(row);
  }
  if (r.contains("scale")) {
    md << "\nAttack scale (each case refilled before every run, so what it admitted is less than a minute old; "
          "the held botnet's floods timed over three seconds or 100 x --frames, whichever ends first, so that "
          "each source's token comes back within them at --frames 2000000; "
          "same runs and medians as above):\n\n";
    md << "| case | XDP_DROP | xthrottle | iptables hashlimit | nft meter | floor |\n|---|---|---|---|---|---|\n";
    // What a case adds below the table, after it (a paragraph between two
    // rows would end the table).
    std::string notes;
    for (const auto& row : r["scale"]) {
      md << limiters_row(row);
      const std::string which = "\"" + row["case"].get<std::string>() + "\"";
      if (row.contains("XDP_PASS")) {
        std::snprintf(buf, sizeof(buf), "\nxthrottle passes nearly every packet of %s: its table forgets each "
                      "source before it comes back. A bare XDP_PASS, the host's stack taking every packet, ran at "
                      "%.2f Mpps; above it: xthrottle %+.0f ns",
                      which.c_str(), row["XDP_PASS"]["mpps"].get<double>(), row["xthrottle"]["ns_above_pass"].get<double>());
        notes += buf;
        for (const char* l : {"iptables hashlimit", "nft meter"})
          if (row.contains(l)) {
            std::snprintf(buf, sizeof(buf), ", %s %+.0f ns", l, row[l]["ns_above_pass"].get<double>());
            notes += buf;
          }
        notes += " (the peers pass what their own tables let through; how much is not counted here).\n";
      }
      if (row.contains("legit")) {
        std::snprintf(buf, sizeof(buf), "\nAn established client, 500/s under its own 1000/s rule, through every run of "
                      "%s: %llu of %llu delivered, loss %.2f%%.\n",
                      which.c_str(), (unsigned long long)row["legit"]["delivered"].get<uint64_t>(),
                      (unsigned long long)row["legit"]["arrived"].get<uint64_t>(), 100 * row["legit"]["loss"].get<double>());
        notes += buf;
      }
    }
    md << notes;
  }
  md << "\nLegitimate source (" << kLegitRate << "/s under a " << kLegitLimit
     << "/s limit, established before the flood) during a 16M-source spoofed flood:\n\n";
  md << "(the legitimate source's packets in the window: its pacing over the flood's window)\n\n";
  md << "| limiter | flood | flood let through | legit packets arrived | delivered | loss |\n"
        "|---|---|---|---|---|---|\n";
  for (const auto& row : r["legit_loss"]) {
    std::snprintf(buf, sizeof(buf), "| %s | %.2f Mpps for %.2f s | %llu of %llu | %llu | %llu | %.2f%% |\n",
                  row["limiter"].get<std::string>().c_str(), row["flood_mpps"].get<double>(),
                  row["flood_seconds"].get<double>(), (unsigned long long)row["flood_passed"].get<uint64_t>(),
                  (unsigned long long)row["flood_sent"].get<uint64_t>(),
                  (unsigned long long)row["legit_arrived"].get<uint64_t>(),
                  (unsigned long long)row["legit_delivered"].get<uint64_t>(), 100 * row["loss"].get<double>());
    md << buf;
  }
  md << "\nPer-packet cost through BPF_PROG_TEST_RUN (each includes the harness's own cost, which is what the bare XDP_DROP row measures):\n\n";
  md << "| path | ns/packet |\n|---|---|\n";
  for (const auto& row : r["cost"]) {
    std::snprintf(buf, sizeof(buf), "| %s | %.0f |\n", row["path"].get<std::string>().c_str(), row["ns"].get<double>());
    md << buf;
  }
  if (r.contains("classify")) {
    md << "\nFinding a packet's rule (BPF_PROG_TEST_RUN; all rules --allow, so this is classification and counting): "
          "one frame repeated (the per-CPU rule cache answers), and 65,536 frames from distinct /18s, half to their "
          "prefix's own UDP port, a quarter SYNs to TCP 22 (it mostly cannot):\n\n";
    md << "| program | repeated frame, ns | spread frames, ns | rules added in |\n|---|---|---|---|\n";
    for (const auto& row : r["classify"]) {
      std::snprintf(buf, sizeof(buf), "| %s | %.0f | %.0f | %s |\n", row["config"].get<std::string>().c_str(),
                    row["repeated_ns"].get<double>(), row["spread_ns"].get<double>(),
                    row.contains("setup_seconds") ? (std::to_string(row["setup_seconds"].get<double>()).substr(0, 4) + " s").c_str() : "-");
      md << buf;
    }
  }
  if (r.contains("classify_path")) {
    md << "\nThe same 4096 rules on the whole path, each `--deny` (applied from a file in "
       << std::to_string(r["classify_path"][0]["apply_seconds"].get<double>()).substr(0, 4)
       << " s), against one `--deny` rule without a match; Mpps, and ns a packet above the bare drop:\n\n";
    md << "| flood | XDP_DROP | one rule | 4096 rules |\n|---|---|---|---|\n";
    for (const auto& row : r["classify_path"]) {
      std::snprintf(buf, sizeof(buf), "| %s | %.2f | %.2f (%+.0f ns) | %.2f (%+.0f ns) |\n",
                    row["case"].get<std::string>().c_str(), row["XDP_DROP"]["mpps"].get<double>(),
                    row["one rule"]["mpps"].get<double>(), row["one rule"]["ns_above_drop"].get<double>(),
                    row["4096 rules"]["mpps"].get<double>(), row["4096 rules"]["ns_above_drop"].get<double>());
      md << buf;
    }
  }
  if (r.contains("fair_share")) {
    const json& f = r["fair_share"];
    md << "\nTotals with fair shares: " << f["heavy_sources"].get<int>()
       << " sources at 50/s each (within a 10,000/s per-source limit, together ten times over a total of "
       << f["total_per_second"].get<double>() << "/s) and " << f["light_sources"].get<int>()
       << " light sources at 0.5/s each (a tenth of the fair share), 10 s; the peers with a per-source limit and "
          "then one shared limit (iptables: hashlimit by source, then hashlimit without a mode; nft: a meter, then "
          "a `limit` statement). Counted behind each limiter, after the first 2 s:\n\n";
    md << "| limiter | passed a second | off the total | light sources lost | heavy sources passed |\n"
          "|---|---|---|---|---|\n";
    for (const auto& row : f["limiters"]) {
      std::snprintf(buf, sizeof(buf), "| %s | %.0f | %+.1f%% | %.2f%% (%llu of %llu passed) | %.1f%% |\n",
                    row["limiter"].get<std::string>().c_str(), row["passed_per_second"].get<double>(),
                    100 * row["error"].get<double>(), 100 * row["light_loss"].get<double>(),
                    (unsigned long long)row["light_passed"].get<uint64_t>(),
                    (unsigned long long)row["light_sent"].get<uint64_t>(), 100 * row["heavy_passed_share"].get<double>());
      md << buf;
    }
    md << "\nThe same heavy sources unpaced, against the total (median of " << r["reps"].get<int>()
       << " interleaved runs):\n\n| case | XDP_DROP | xthrottle | iptables hashlimit | nft meter |\n|---|---|---|---|---|\n"
       << limiters_row(f["cost"], false);
  }
  if (r.contains("clients")) {
    md << "\nNew and returning clients during a 16M-source spoofed flood at full speed (every source limited to "
       << kThroughputLimit << "/s): " << kClients << " new TCP clients (the kernel's stack) connecting within 3 s "
       << "during a SYN flood; " << kClients << " clients idle for two minutes sending 30 packets each during a UDP "
       << "flood:\n\n";
    md << "| limiter | new clients connected | the SYN flood reaching the host meanwhile | returning clients' packets "
          "passed |\n|---|---|---|---|\n";
    for (const auto& row : r["clients"]) {
      std::snprintf(buf, sizeof(buf), "| %s | %d of %d | %.0f SYNs/s | %llu of %llu |\n",
                    row["limiter"].get<std::string>().c_str(), row["new_connected"].get<int>(), kClients,
                    row["flood_passed_pps"].get<double>(),
                    (unsigned long long)row["returning_passed"].get<uint64_t>(),
                    (unsigned long long)row["returning_sent"].get<uint64_t>());
      md << buf;
    }
  }
  if (r.contains("fleet")) {
    md << "\nA fleet of two hosts (one redis-server on a unix socket, serve --cluster every 100 ms), host A flooded at "
          "full speed from N sources, each limited to 1/s by a --scope fleet rule (every source active, each published "
          "once a second); host B takes A's use:\n\n";
    md << "| sources | A alone | A in the fleet | ns a packet added | A to Redis | exchanges a second (the last "
          "took) | B took |\n|---|---|---|---|---|---|---|\n";
    for (const auto& row : r["fleet"]) {
      std::snprintf(buf, sizeof(buf), "| %u | %.2f Mpps | %.2f Mpps | %+.1f | %.1f MB/s | %.1f (%.3f s) | %llu packets, "
                    "%llu sources |\n",
                    row["sources"].get<uint32_t>(), row["pps_alone"].get<double>() / 1e6,
                    row["pps_fleet"].get<double>() / 1e6, row["ns_added"].get<double>(),
                    row["redis_bytes_per_second"].get<double>() / 1e6, row["exchanges_per_second"].get<double>(),
                    row["last_exchange_seconds"].get<double>(),
                    (unsigned long long)row["taken_packets"].get<uint64_t>(),
                    (unsigned long long)row["taken_sources"].get<uint64_t>());
      md << buf;
    }
  }
  md << "\nAccuracy: one source flooding a 10000/s, burst 1000 rule:\n\n";
  md << "| CPUs sending and metering | rate | passed | burst + rate × elapsed | ratio |\n|---|---|---|---|---|\n";
  for (const auto& row : r["accuracy"]) {
    std::snprintf(buf, sizeof(buf), "| %d | %.2f Mpps for %.3f s | %llu | %.1f | %.4f |\n", row["cpus"].get<int>(),
                  row["mpps"].get<double>(), row["seconds"].get<double>(),
                  (unsigned long long)row["passed"].get<uint64_t>(), row["expected"].get<double>(),
                  row["ratio"].get<double>());
    md << buf;
  }
  return md.str();
}

void write_plot_data(const json& r, const std::string& dir) {
  std::ofstream dat(dir + "/throughput.dat");
  dat << "# case xthrottle hashlimit nft (ratio to XDP_DROP)\n";
  for (const auto& row : r["throughput"]) {
 dat << '"' << row["case"].get<std::string>() << "\" " << row["xthrottle"]["ratio"].get<double>() << " "
        << row["iptables hashlimit"]["ratio"].get<double>() << " " << row["nft meter"]["ratio"].get<double>() << "\n";
  }
}

int run_bench(const std::string& out_dir, uint32_t reps, uint64_t frames, const std::vector<std::string>& only);

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir = "docs/bench";
  uint32_t reps = 5;
  uint64_t frames = 4000000;
  bool quick = false;
  std::vector<std::string> only;
  CLI::App app{"bench: xthrottle against XDP_DROP, iptables hashlimit and an nft meter", "bench"};
  app.add_option("--out", out_dir, "Directory for results.json, results.md, throughput.dat/.png")
      ->capture_default_str();
  app.add_option("--reps", reps, "Runs per throughput figure (the median is kept)")->capture_default_str();
  app.add_option("--frames", frames, "Frames per throughput run")->capture_default_str();
  app.add_flag("--quick", quick, "One run of 1M frames per figure: for trying things, not for figures");
  app.add_option("--only", only,
                 "Run only these sections: cost, classify, throughput, scale, legit, accuracy, fair, clients, fleet "
                 "(no files written)")
      ->check(CLI::IsMember({"cost", "classify", "throughput", "scale", "legit", "accuracy", "fair", "clients", "fleet"}));
  bool no_peers = false;
  app.add_flag("--no-peers", no_peers,
               "Throughput, scale and fair: xthrottle against the bare drop only (with --only: for trying things)")
      ->needs("--only");
  app.add_flag("--prog-time", g_prog_time,
               "Throughput, scale and fair: also each XDP program's own ns a run, by the kernel's run-time "
               "statistics (on for the run; they slow every XDP program alike)");
  app.add_flag("--straight", g_straight,
               "Throughput and scale: send nothing; floodgen runs each lab's XDP program on every frame itself "
               "(where the kernel refuses live frames: the programs' own cost, without a sender; no peers)")
      ->needs("--only")
      ->excludes("--prog-time");  // the statistics count floodgen's program, not the one it tail-calls
  CLI11_PARSE(app, argc, argv);
  g_peers = !no_peers && !g_straight;
  if (g_straight && std::ranges::any_of(only, [](const std::string& s) { return s != "throughput" && s != "scale"; })) {
    std::cerr << "bench: --straight measures the throughput and scale sections only\n";
    return 2;
  }
  if (geteuid() != 0) {
    std::cerr << "bench: needs root: it loads BPF programs and builds network namespaces\n";
    return 1;
  }
  if (quick) {
    reps = 1;
    frames = 1000000;
  }
  xt::set_library_logging(false);
  std::filesystem::create_directories(out_dir);
  // Interrupted (or its output closed): replace this process with a sweep of its labs (execve is
  // safe in a signal handler; destructors would not run).
  static std::string sweep_prefix = "xtbench-" + std::to_string(getpid()) + "-";
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE})
    std::signal(sig, [](int) { execl("/bin/sh", "sh", XT_LAB, "sweep", sweep_prefix.c_str(), nullptr); });

  try {
    // The statistics stay on while this fd is open, and go off with it
    // (unless something else holds them on too).
    xt::Fd stats;
    if (g_prog_time) {
      stats = xt::Fd(bpf_enable_stats(BPF_STATS_RUN_TIME));
      if (!stats) die(std::string("cannot turn on the kernel's BPF run-time statistics: ") + std::strerror(errno));
    }
    return run_bench(out_dir, reps, frames, only);
  } catch (const std::exception& e) {
    std::cerr << "bench: " << e.what() << "\n";
    // Labs tear themselves down as the exception unwinds; sweep in case a
    // teardown itself failed.
    run({XT_LAB, "sweep", sweep_prefix});
    return 1;
  }
}

namespace {

int run_bench(const std::string& out_dir, uint32_t reps, uint64_t frames, const std::vector<std::string>& only) {
  json results = {{"reps", reps}, {"frames", frames}, {"prog_time", g_prog_time}, {"straight", g_straight}};
  auto wanted = [&](const char* section) { return only.empty() || std::ranges::count(only, section) > 0; };
  if (wanted("cost")) results["cost"] = measure_cost(5000000);
  if (wanted("classify")) {
    results["classify"] = measure_classify(5000000);
    results["classify_path"] = measure_classify_path(reps, frames);
  }
  if (wanted("throughput")) results["throughput"] = measure_throughput(reps, frames);
  if (wanted("scale")) results["scale"] = measure_scale(reps, frames);
  if (wanted("legit")) results["legit_loss"] = measure_legit_loss(frames * 2);
  if (wanted("accuracy")) results["accuracy"] = measure_accuracy(frames * 3 / 2);
  if (wanted("fair")) results["fair_share"] = measure_fair_share(reps, frames);
  if (wanted("clients")) results["clients"] = measure_clients();
  if (wanted("fleet")) results["fleet"] = measure_fleet(frames);
  if (!only.empty()) {
    std::cout << results.dump(2) << "\n";
    return 0;
  }

  std::ofstream(out_dir + "/results.json") << results.dump(2) << "\n";
  const std::string md = markdown(results);
  std::ofstream(out_dir + "/results.md") << md;
  write_plot_data(results, out_dir);
  const std::string plot = "gnuplot -e \"dir='" + out_dir + "'\" " + XT_PLOT_SCRIPT;
  if (std::system(plot.c_str()) != 0) std::cerr << "bench: gnuplot failed; no throughput.png\n";
  std::cout << md;
  return 0;
}

}  // namespace
