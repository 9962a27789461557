// SPDX-License-Identifier: MIT
// The namespace lab of tools/lab/lab.sh, for e2e tests and benchmarks: xthrottle on the
// receiving end (dut0), floodgen on the sending end (gen0), nftables counting
// on dut0's ingress what XDP let through, and a private bpffs for the pins.
//
// Tags are unique per process and lab; the destructor removes everything,
// and the CTest fixture e2e.cleanup sweeps leftovers of a crashed run.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace xt::test {

struct Outcome {
  int rc = -1;
  std::string out, err;
};

// Runs argv, waits, captures stdout and stderr.
Outcome run(const std::vector<std::string>& argv);

// A process left running in the background. wait() waits for it; the
// destructor (a test that failed half-way) terminates it first.
class Background {
 public:
  explicit Background(const std::vector<std::string>& argv);
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  ~Background();
  void signal(int sig) const;
  Outcome wait();
  // Until what it wrote to stderr so far holds `text` (a tool's "listening
  // on"), for up to `seconds`; false if it never did, or it ended.
  bool wait_for_err(const std::string& text, double seconds = 10) const;
  // Until what it wrote to stdout so far satisfies `done`, for up to
  // `seconds`; false if it never did, or it ended.
  bool wait_for_out(const std::function<bool(const std::string&)>& done, double seconds = 10) const;

 private:
  int pid_ = -1;
  std::string out_path_, err_path_;
};

struct Flood {
  uint64_t sent = 0;
  double seconds = 0;
  // Frames the veth itself dropped before dut0's XDP could see them (its
  // ring was full while softirq work was deferred): they reached neither
  // xthrottle nor anything behind it.
  uint64_t lost = 0;
  // How floodgen sent: "live frames" (from the kernel), or "packet socket"
  // (from user space, where the kernel refuses live frames: slower, and
  // the receiving XDP program runs on the sender's CPU).
  std::string sender;
  uint64_t arrived() const { return sent - lost; }
};

class Lab {
 public:
  // Namespaces TAG-gen and TAG-dut, TAG = prefix-PID-N.
  explicit Lab(const std::string& prefix = "xte2e");
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;
  ~Lab();

  const std::string& pin_dir() const { return pin_dir_; }
  const std::string& dut_ns() const { return dut_; }
  const std::string& gen_ns() const { return gen_; }
  const std::string& dut_mac() const { return dut_mac_; }
  // Runs a command inside the receiving (dut) or the sending (gen) namespace.
  Outcome in_dut(const std::vector<std::string>& argv) const { return in_ns(dut_, argv); }
  Outcome in_gen(const std::vector<std::string>& argv) const { return in_ns(gen_, argv); }

  // xthrottle ARGS... in the receiving namespace, on the lab's pins.
  Outcome xthrottle(const std::vector<std::string>& args) const;
  std::vector<std::string> xthrottle_argv(const std::vector<std::string>& args) const;
  // The same, expecting success and JSON on stdout.
  nlohmann::json xthrottle_json(const std::vector<std::string>& args) const;

  // floodgen ARGS... out of gen0 towards dut0 (adds --dev, --dst-mac, --json).
  Flood flood(const std::vector<std::string>& args) const;
  std::vector<std::string> flood_argv(const std::vector<std::string>& args) const;
  // From now on, flood() sends nothing: floodgen runs dut0's XDP program
  // on each frame itself (floodgen --straight), for the program's own cost
  // where the kernel refuses live frames; dut0 must run one at each flood.
  // What flood_argv starts (a client in the background) still sends.
  void flood_straight() { straight_ = true; }
  // The id of the XDP program on dut0, or 0 if it runs none.
  uint32_t dut_xdp_prog() const;

  // Packets nftables saw on dut0's ingress, i.e. that XDP passed, from
  // sources in 198.18.0.0/15 (v4) or 2001:db8::/32 (v6).
  uint64_t received_v4() const { return nft_counter("v4"); }
  uint64_t received_v6() const { return nft_counter("v6"); }
  // Puts an XDP program on gen0, so that what xthrottle sends back from
  // XDP (its TCP proofs) reaches gen's stack, as a NIC would put it on the
  // wire (a veth hands such frames only to a peer running XDP). It passes
  // what is for the lab's clients (198.18.0.0/24, and anything not IPv4)
  // and drops the answers to spoofed addresses (xdp_pass.bpf.c).
  void receive_xdp_on_gen() const;
  // Addresses for TCP and UDP clients of the kernel's own stack: dut0
  // 198.18.0.2/24, gen0 198.18.0.1/24 and each of `clients` (in that /24),
  // neighbours fixed both ways (no ARP to lose in a flooded ring), and
  // receive_xdp_on_gen. Throws on failure.
  void add_clients(const std::vector<std::string>& clients) const;
  // A third namespace behind a second interface of dut's, scrub0, for
  // what xthrottle sends out there (--over redirect:scrub0): its far side
  // counts what arrives from the lab's sources. Throws on failure.
  void add_scrubber() const;
  const std::string& scrubber_ns() const { return scr_; }
  // A fourth namespace whose cli0 reaches dut0 over a path of `ms`
  // milliseconds' round trip (tools/lab/delay.py in the gen namespace,
  // running `seconds` at most), for TCP clients with a real RTT; cli0
  // gets `cli_addr`, dut0 `dut_addr` (both /24). Throws on failure.
  void add_delay(int ms, int seconds, const std::string& cli_addr, const std::string& dut_addr) const;
  const std::string& cli_ns() const { return cli_; }
  Outcome in_cli(const std::vector<std::string>& argv) const { return in_ns(cli_, argv); }
  uint64_t scrubbed() const;
  // Frames each of dut0's receive queues ran XDP on so far.
  std::vector<uint64_t> dut_queue_xdp_packets() const;
  void reset_received() const;

 private:
  Outcome in_ns(const std::string& ns, const std::vector<std::string>& argv) const;
  uint64_t nft_counter(const std::string& name) const;
  uint64_t veth_xmit_errors() const;
  std::map<std::string, uint64_t> ethtool_stats(const std::string& ns, const std::string& dev) const;
  void teardown();

  std::string tag_, gen_, dut_, scr_, cli_, pin_dir_, dut_mac_;
  bool straight_ = false;
};

}  // namespace xt::test
