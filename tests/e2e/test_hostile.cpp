// SPDX-License-Identifier: MIT
// Hostile conditions end to end: docs/hostile-input.md's frames as scapy
// builds them, sent by tcpreplay; jumbo frames on a jumbo-MTU link; and state
// that an unprivileged user can neither read nor change.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "lab_test.h"

namespace xt::test {
namespace {

using nlohmann::json;

class Hostile : public LabTest {
 protected:
  void must(const Outcome& r, const std::string& what) { ASSERT_EQ(r.rc, 0) << what << ": " << r.err; }

  // 10 echo requests of 9000-byte IP packets from gen0 against a rule of
  // three 9014-byte frames a second: exactly 3 pass, 7 are dropped, and the
  // bytes counted are whole frames, not the first buffer's.
  void expect_jumbo_frames_metered_whole() {
    must(lab_->in_gen({"ip", "addr", "add", "198.18.0.1/24", "dev", "gen0"}), "gen0 address");
    must(lab_->in_dut({"ip", "addr", "add", "198.18.0.2/24", "dev", "dut0"}), "dut0 address");
    // Neighbour resolution first, with a small ping before any rule.
    must(lab_->in_gen({"ping", "-c", "1", "-W", "2", "-s", "8", "198.18.0.2"}), "small ping");
    lab_->reset_received();
    ok({"rule", "add", "198.18.0.0/15", "--bandwidth", "27042B/s"});
    lab_->in_gen({"ping", "-c", "10", "-i", "0.01", "-W", "1", "-M", "do", "-s", "8972", "198.18.0.2"});
    EXPECT_EQ(lab_->received_v4(), 3u) << "the burst is three jumbo frames: whole lengths counted";
    const json rule = stats()["rules"]["198.18.0.0/15"];
    EXPECT_EQ(rule["passed_packets"], 3u);
    EXPECT_EQ(rule["passed_bytes"], 3u * 9014);
    EXPECT_EQ(rule["dropped_packets"], 7u);
    EXPECT_EQ(rule["dropped_bytes"], 7u * 9014);
  }
};

// docs/hostile-input.md's verdict table, frame by frame, with tools the
// project did not write: scapy builds each kind of frame (so not our own
// packet builder, which could share a misreading with the parser),
// tcpreplay sends them into the live program, and nftables behind XDP counts,
// by each kind's Ethernet source, what passed. Every kind gets the table's
// verdict, counted under its reason, and `replay` of the same capture says
// the same.
TEST_F(Hostile, ScapyFramesGetTheTablesVerdicts) {
  const ScratchDir dir("hostile");
  const std::string rules = dir.file("rules.toml"), pcap = dir.file("hostile.pcap");
  std::ofstream(rules) << R"([[rule]]
cidr = "198.18.0.0/15"
proto = "udp"
port = 53
action = "deny"
[[rule]]
cidr = "198.18.0.0/15"
rate = "1000/s"
[[rule]]
cidr = "2001:db8::/32"
proto = "udp"
port = 53
action = "deny"
[[rule]]
cidr = "2001:db8::/32"
rate = "1000/s"
)";
  ok({"attach", "dut0"});
  ok({"apply", rules});
  constexpr int kEach = 5;
  const Outcome made = run({"/usr/bin/python3", std::string(XT_E2E_SCRIPTS) + "/hostile_frames.py", pcap,
                            lab_->dut_mac(), std::to_string(kEach)});
  ASSERT_EQ(made.rc, 0) << made.err;
  struct Kind {
    std::string name, mac, verdict, reason;
  };
  std::vector<Kind> kinds;
  std::istringstream lines(made.out);
  for (std::string line; std::getline(lines, line);) {
    const json k = json::parse(line);
    kinds.push_back({k["kind"], k["mac"], k["verdict"], k["reason"]});
  }
  ASSERT_GE(kinds.size(), 20u) << made.out;

  // A counter for each kind's source, on dut0's ingress (behind XDP).
  std::string nft = "add table netdev hostile; add chain netdev hostile in { type filter hook ingress device dut0 "
                    "priority 0; }; ";
  for (size_t i = 0; i < kinds.size(); i++)
    nft += "add counter netdev hostile k" + std::to_string(i) + "; add rule netdev hostile in ether saddr " +
           kinds[i].mac + " counter name k" + std::to_string(i) + "; ";
  must(lab_->in_dut({"nft", nft}), "nft counters");
  const Outcome sent = lab_->in_gen({"tcpreplay", "-i", "gen0", "--pps", "2000", pcap});
  ASSERT_EQ(sent.rc, 0) << sent.out << sent.err;
  const std::string all = std::to_string(kinds.size() * kEach);
  EXPECT_NE(sent.out.find("Successful packets:        " + all), std::string::npos) << sent.out;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  const Outcome listed = lab_->in_dut({"nft", "-j", "list", "counters", "table", "netdev", "hostile"});
  ASSERT_EQ(listed.rc, 0) << listed.err;
  std::map<std::string, uint64_t> passed;
  const json counters = json::parse(listed.out);
  for (const auto& item : counters["nftables"])
    if (item.contains("counter"))
      passed[item["counter"]["name"].get<std::string>()] = item["counter"]["packets"].get<uint64_t>();
  std::map<std::string, uint64_t> by_reason;
  for (size_t i = 0; i < kinds.size(); i++) {
    EXPECT_EQ(passed["k" + std::to_string(i)], kinds[i].verdict == "pass" ? kEach : 0) << kinds[i].name;
    by_reason[kinds[i].reason] += kEach;
  }
  const json live = stats();
  const json replayed = lab_->xthrottle_json({"replay", rules, pcap, "--json"});
  EXPECT_EQ(replayed["replayed"], kinds.size() * kEach);
  for (const auto& [reason, packets] : by_reason) {
    EXPECT_EQ(live["reasons"][reason]["packets"], packets) << reason << ": " << live["reasons"];
    EXPECT_EQ(replayed["reasons"][reason], packets) << "replay: " << reason << ": " << replayed["reasons"];
  }
  for (const auto& [name, rule] : replayed["rules"].items()) {
    EXPECT_EQ(rule["passed_packets"], live["rules"][name]["passed_packets"]) << name;
    EXPECT_EQ(rule["dropped_packets"], live["rules"][name]["dropped_packets"]) << name;
  }
}

// On a 9000-byte MTU link the program is attached natively (as a multi-buffer
// program) and meters jumbo frames by their whole length.
TEST_F(Hostile, JumboFramesOnAJumboLink) {
  must(lab_->in_gen({"ip", "link", "set", "gen0", "mtu", "9000"}), "gen0 mtu");
  must(lab_->in_dut({"ip", "link", "set", "dut0", "mtu", "9000"}), "dut0 mtu");
  ok({"attach", "dut0", "--mode", "native"});
  expect_jumbo_frames_metered_whole();
}

// Attached at MTU 1500, then the MTU raised: `attach` again (what the
// systemd unit's restart does) sees the live program no longer fits the MTU
// and swaps in the multi-buffer one in one step; once it fits, `attach` is a
// no-op. (The tag alone cannot tell the two apart: it does not cover the
// read-only settings.) On veth the kernel keeps the peer's MTU capped by the
// first program until it is detached; drivers check the program in place.
TEST_F(Hostile, AttachAgainAfterRaisingTheMtuSwapsInTheMultiBufferProgram) {
  ok({"attach", "dut0", "--mode", "native"});
  Outcome same = lab_->xthrottle({"attach", "dut0"});
  EXPECT_NE(same.out.find("already attached"), std::string::npos) << same.out;
  must(lab_->in_dut({"ip", "link", "set", "dut0", "mtu", "9000"}), "dut0 mtu");
  Outcome again = lab_->xthrottle({"attach", "dut0"});
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_NE(again.out.find("upgraded dut0"), std::string::npos) << again.out;
  same = lab_->xthrottle({"attach", "dut0"});
  EXPECT_NE(same.out.find("already attached"), std::string::npos) << same.out;
  must(lab_->in_dut({"ip", "link", "set", "dut0", "mtu", "1500"}), "dut0 mtu back");
  again = lab_->xthrottle({"attach", "dut0"});
  EXPECT_NE(again.out.find("upgraded dut0"), std::string::npos) << "back to the single-buffer program: " << again.out;
}

// Pins are reachable by root only: the directory is 0700 even when it was
// made looser first, each pin 0600 even under umask 000, and nobody, going
// around the CLI with bpftool, can neither read nor change a rule.
TEST_F(Hostile, StateIsLockedDown) {
  const std::string dir = lab_->pin_dir();
  std::filesystem::create_directories(dir);
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  auto loosely = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"sh", "-c", "umask 000; exec \"$@\"", "sh"};
    const auto xt = lab_->xthrottle_argv(args);
    argv.insert(argv.end(), xt.begin(), xt.end());
    Outcome r = run(argv);
    ASSERT_EQ(r.rc, 0) << r.err;
  };
  loosely({"attach", "dut0"});
  loosely({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});

  struct stat st{};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u) << "pin directory";
  EXPECT_EQ(st.st_uid, 0u);
  size_t pins = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    ASSERT_EQ(stat(entry.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 077, 0u) << entry.path() << " is open to group or others";
    EXPECT_EQ(st.st_uid, 0u) << entry.path();
    pins++;
  }
  EXPECT_GE(pins, 10u) << "every map is pinned";

  // The directory's mode is what keeps them out wherever unprivileged BPF
  // is allowed (here kernel.unprivileged_bpf_disabled would stop bpftool
  // below anyway): nobody cannot even look a pin up by its path.
  Outcome look = as_nobody({"stat", dir + "/xt_rules"});
  EXPECT_NE(look.rc, 0) << "nobody can reach the pins: " << look.out;
  EXPECT_NE(look.err.find("Permission denied"), std::string::npos) << look.err;

  const std::string before = lab_->xthrottle({"rule", "list", "--json"}).out;
  const std::string rules = dir + "/xt_rules";
  Outcome dump = as_nobody({"bpftool", "map", "dump", "pinned", rules});
  EXPECT_NE(dump.rc, 0) << "nobody read the rules: " << dump.out;
  Outcome del = as_nobody({"bpftool", "map", "delete", "pinned", rules, "key", "hex", "00", "00", "00", "00"});
  EXPECT_NE(del.rc, 0);
  Outcome cli = as_nobody({XT_BIN, "--pin-dir", dir, "rule", "del", "198.18.0.0/15"});
  EXPECT_EQ(cli.rc, 1);
  EXPECT_NE(cli.err.find("needs root"), std::string::npos) << cli.err;
  EXPECT_EQ(lab_->xthrottle({"rule", "list", "--json"}).out, before);
}

// A pin directory someone else owns is refused: they could swap a pin. So
// is one holding anything but our own pins: a link planted in it (to a map
// of someone else's) would otherwise be followed.
TEST_F(Hostile, APinDirectoryOthersCouldHaveTamperedWithIsRefused) {
  const std::string dir = lab_->pin_dir();
  std::filesystem::create_directories(dir);
  ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  Outcome r = lab_->xthrottle({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("belongs to uid 65534"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir)) << "nothing pinned";

  ASSERT_EQ(chown(dir.c_str(), 0, 0), 0);
  std::filesystem::create_symlink("/run/elsewhere/xt_rules", dir + "/xt_rules");
  r = lab_->xthrottle({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("is not a pin"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_symlink(dir + "/xt_rules"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1) << "nothing pinned";
}

// floodgen sends spoofed floods: only in a namespace of its own and only to
// test addresses, whatever it is told. Both refused before anything is sent.
TEST_F(Hostile, FloodgenRefusesTheHostsNamespaceAndRealAddresses) {
  const Outcome host = run({XT_FLOODGEN, "--dev", "lo", "--count", "1"});
  EXPECT_EQ(host.rc, 2) << host.err;
  EXPECT_NE(host.err.find("not a network namespace of ip netns add's"), std::string::npos) << host.err;
  const Outcome not_veth = lab_->in_gen({XT_FLOODGEN, "--dev", "lo", "--count", "1"});
  EXPECT_EQ(not_veth.rc, 2) << not_veth.err;
  EXPECT_NE(not_veth.err.find("is not a veth"), std::string::npos) << not_veth.err;
  for (const std::string dst : {"192.0.2.1", "2001:db9::1", "198.20.0.1"}) {
    const std::string src = dst.find(':') != std::string::npos ? "2001:db8:4000::1" : "198.18.0.9";
    auto argv = lab_->flood_argv({"--src", src, "--dst", dst, "--count", "1"});
    const Outcome r = run(argv);
    EXPECT_EQ(r.rc, 2) << dst << ": " << r.err;
    EXPECT_NE(r.err.find("floods only test addresses"), std::string::npos) << r.err;
  }
  lab_->reset_received();
  EXPECT_EQ(lab_->flood({"--src", "198.18.0.9", "--dst", "198.19.255.1", "--count", "5"}).sent, 5u)
      << "the whole of 198.18.0.0/15 is a test address";
}

}  // namespace
}  // namespace xt::test
