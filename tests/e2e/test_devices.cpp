// SPDX-License-Identifier: MIT
// Interfaces other than a native-mode Ethernet link, with traffic the
// kernel's own stack makes: a tun device (no link layer), and generic (skb)
// mode, where a TCP sender's 64 KB segments reach the program whole.
#include <bpf/bpf.h>
#include <xthrottle/abi.h>

#include "operate_test.h"

namespace xt::test {
namespace {

class Devices : public LabTest {
 protected:
  std::string script(const std::string& name) { return std::string(XT_E2E_SCRIPTS) + "/" + name; }
  std::vector<std::string> python(const std::string& ns, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"ip", "netns", "exec", ns, "/usr/bin/python3"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // Packets from 198.18.0.0/15 that nftables counted on dev's ingress, i.e.
  // that XDP passed.
  void count_on(const std::string& dev) {
    ASSERT_EQ(lab_->in_dut({"nft", "add table netdev count; add counter netdev count v4; add chain netdev count in "
                                   "{ type filter hook ingress device \"" + dev + "\" priority -500; }; add rule "
                                   "netdev count in ip saddr 198.18.0.0/15 counter name v4"})
                  .rc,
              0);
  }
  uint64_t counted() {
    Outcome r = lab_->in_dut({"nft", "-j", "list", "counter", "netdev", "count", "v4"});
    const json j = json::parse(r.out);
    for (const auto& item : j["nftables"])
      if (item.contains("counter")) return item["counter"]["packets"].get<uint64_t>();
    return 0;
  }
};

// Issue 9.3: on a tun device (frames start at the IP header) a 100/s rule
// let 1000 of 1000 packets through as "non-IP", and status said protected.
TEST_F(Devices, ATunDeviceIsLimitedLikeAnyOther) {
  ASSERT_EQ(lab_->in_dut({"ip", "tuntap", "add", "mode", "tun", "name", "xtun0"}).rc, 0);
  ASSERT_EQ(lab_->in_dut({"ip", "addr", "add", "198.18.77.2/24", "dev", "xtun0"}).rc, 0);
  ASSERT_EQ(lab_->in_dut({"ip", "link", "set", "xtun0", "up"}).rc, 0);
  count_on("xtun0");
  Outcome a = lab_->xthrottle({"attach", "xtun0"});
  ASSERT_EQ(a.rc, 0) << a.err;
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  Outcome sent = run(python(lab_->dut_ns(), {script("tun_flood.py"), "xtun0", "198.18.1.1", "198.18.77.2", "1000"}));
  ASSERT_EQ(sent.rc, 0) << sent.err;
  const double seconds = std::stod(sent.out);
  const json s = stats();
  EXPECT_EQ(s["reasons"]["non_ip"]["packets"], 0) << "read as Ethernet, they were all non-IP";
  const uint64_t passed = counted();
  std::printf("[ measure  ] tun: %llu of 1000 passed in %.2f s under 100/s burst 100\n", (unsigned long long)passed,
              seconds);
  EXPECT_LE(static_cast<double>(passed), 100 + 100 * (seconds + 0.1));
  EXPECT_GE(passed, 100u);
  EXPECT_EQ(s["reasons"]["within_limit"]["packets"].get<uint64_t>(), passed);
  EXPECT_EQ(s["reasons"]["over_limit"]["packets"].get<uint64_t>(), 1000 - passed);

  Outcome status = lab_->xthrottle({"status", "--check", "--json"});
  EXPECT_EQ(status.rc, 0) << "generic mode is the only way on tun, not a fallback to warn about: " << status.out;
  const json st = json::parse(status.out);
  ASSERT_EQ(st["interfaces"].size(), 1u);
  EXPECT_EQ(st["interfaces"][0]["link"], "ip");
  EXPECT_EQ(st["interfaces"][0]["mode"], "skb") << "tun has native XDP only for TAP frames";
}

// A link type xthrottle cannot read (here InfiniBand, set on a tun device)
// is refused with the reason, before anything is created.
TEST_F(Devices, ALinkTypeItCannotReadIsRefused) {
  ASSERT_EQ(lab_->in_dut({"ip", "tuntap", "add", "mode", "tun", "name", "xib0"}).rc, 0);
  ASSERT_EQ(run(python(lab_->dut_ns(), {script("tun_link.py"), "xib0", "32"})).rc, 0);
  Outcome r = lab_->xthrottle({"attach", "xib0"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("link type (32"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(lab_->pin_dir() + "/" + XT_MAP_RULES)) << "nothing was created";
}

// An attach that fails takes the state it made with it: a retry with
// other table settings is not refused as a resize.
TEST_F(Devices, AFailedAttachLeavesNoStateBehind) {
  ASSERT_EQ(lab_->in_dut({"ip", "link", "add", "xd0", "type", "ifb"}).rc, 0);
  Outcome r = lab_->xthrottle({"attach", "xd0", "--mode", "native", "--max-sources", "4096"});
  EXPECT_EQ(r.rc, 1) << "an ifb has no native XDP: " << r.out;
  EXPECT_FALSE(std::filesystem::exists(lab_->pin_dir() + "/" + XT_MAP_RULES)) << "nothing was left";
  Outcome retry = lab_->xthrottle({"attach", "xd0", "--mode", "skb", "--max-sources", "8192"});
  EXPECT_EQ(retry.rc, 0) << retry.err;
  EXPECT_EQ(lab_->xthrottle_json({"status", "--json"})["max_sources"], 8192) << "made by the retry";
  // A state that was there before stays when an attach fails.
  EXPECT_EQ(lab_->xthrottle({"attach", "xd0", "--mode", "native", "--replace"}).rc, 1);
  EXPECT_TRUE(std::filesystem::exists(lab_->pin_dir() + "/" + XT_MAP_RULES));
  ok({"detach", "xd0"});
}

// A command that found the state and waits for its lock while a failed
// attach removes that state (under the lock) must say there is no state
// once it holds the lock. It used the state it no longer had (an empty
// optional: undefined; here it said "cannot inspect the rule table: File
// descriptor in bad state").
TEST_F(Devices, ACommandWaitingForTheLockOfAStateRemovedMeanwhileSaysSo) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  const std::string dir = lab_->pin_dir();
  // Holds the lock as a failed attach does, removes the pins, lets go.
  const std::string script =
      "import fcntl, os, subprocess, sys, time\n"
      "d = sys.argv[1]\n"
      "fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)\n"
      "fcntl.flock(fd, fcntl.LOCK_EX)\n"
      "p = subprocess.Popen([sys.argv[2], '--pin-dir', d, 'rule', 'del', '198.18.0.0/15'],\n"
      "                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)\n"
      "time.sleep(0.5)\n"
      "for n in os.listdir(d): os.unlink(os.path.join(d, n))\n"
      "fcntl.flock(fd, fcntl.LOCK_UN)\n"
      "out, err = p.communicate(timeout=20)\n"
      "print(p.returncode)\n"
      "print(err)\n";
  Outcome r = lab_->in_dut({"python3", "-c", script, dir, XT_BIN});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "1") << "a refusal, not a signal: " << r.out;
  EXPECT_NE(r.out.find("no xthrottle state"), std::string::npos) << r.out;
}

// An interface with no native XDP: attach's auto mode falls back to
// generic mode, and status warns of it (--check exits 3). The operator
// accepts it with `attach IF --mode skb`, which said "already attached"
// and recorded nothing: status warned, and --check exited 3, for good.
TEST_F(Devices, AcceptingGenericModeOnAnAttachedInterfaceEndsTheWarning) {
  ASSERT_EQ(lab_->in_dut({"ip", "link", "add", "xd0", "type", "ifb"}).rc, 0);
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  ok({"attach", "xd0"});
  Outcome fallback = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(fallback.rc, 3) << "generic mode, not asked for: " << fallback.out;
  Outcome accept = lab_->xthrottle({"attach", "xd0", "--mode", "skb"});
  EXPECT_EQ(accept.rc, 0) << accept.err;
  EXPECT_NE(accept.out.find("already attached to xd0"), std::string::npos) << accept.out;
  Outcome now = lab_->xthrottle({"status", "--check", "--json"});
  EXPECT_EQ(now.rc, 0) << now.out;
  const json st = json::parse(now.out);
  ASSERT_EQ(st["interfaces"].size(), 1u);
  EXPECT_EQ(st["interfaces"][0]["requested_mode"], "skb");
  ok({"detach", "xd0"});
}

// A state shared by network namespaces records each attach, XT_MAX_ATTACH
// at most. The records of namespaces deleted since, their interfaces and
// programs with them, stayed: once 256 had come and gone, every attach put
// its program on and then failed ("cannot record it", exit 1). They now
// make room; a record of another namespace whose program still runs stays.
TEST_F(Devices, NamespacesThatAreGoneLeaveRoomInTheAttachTable) {
  ok({"attach", "dut0"});
  const json before = lab_->xthrottle_json({"status", "--json"});
  ASSERT_EQ(before["interfaces"].size(), 1u);
  const uint32_t live_prog = before["interfaces"][0]["prog_id"];
  const int fd = bpf_obj_get((lab_->pin_dir() + "/" + XT_MAP_ATTACH).c_str());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  auto put = [&](uint32_t ifindex, uint32_t prog_id) {
    xt_attach_key key{};
    key.netns_ino = 1;  // no namespace has inode 1 (the gone ones' stand-in)
    key.ifindex = ifindex;
    xt_attach_info info{};
    std::strncpy(info.ifname, "gone0", sizeof(info.ifname) - 1);
    info.prog_id = prog_id;
    return bpf_map_update_elem(fd, &key, &info, BPF_NOEXIST);
  };
  ASSERT_EQ(put(1, live_prog), 0) << "elsewhere, its program still running";
  for (uint32_t i = 2; i < XT_MAX_ATTACH; i++)
    ASSERT_EQ(put(i, 0x7ff00000 + i), 0) << "a program that is gone, record " << i;
  ASSERT_NE(put(XT_MAX_ATTACH, 0x7ff00000), 0) << "the table is full";

  ASSERT_EQ(lab_->in_dut({"ip", "link", "add", "xd1", "type", "ifb"}).rc, 0);
  Outcome r = lab_->xthrottle({"attach", "xd1", "--mode", "skb"});
  EXPECT_EQ(r.rc, 0) << r.err;
  const json after = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(after["interfaces"].size(), 2u) << after.dump();
  for (const auto& i : after["interfaces"]) EXPECT_NE(i["requested_mode"], "unknown") << "recorded: " << i;

  std::vector<uint32_t> left;
  xt_attach_key key{}, next{};
  for (int err = bpf_map_get_next_key(fd, nullptr, &next); !err; err = bpf_map_get_next_key(fd, &key, &next)) {
    key = next;
    if (key.netns_ino == 1) left.push_back(key.ifindex);
  }
  close(fd);
  EXPECT_EQ(left, std::vector<uint32_t>{1}) << "the gone namespaces' records forgotten, the live one's kept";
  ok({"detach", "xd1"});
}

// Issue 9.4: in generic (skb) mode a packet limit counted super-packets: 20 MB
// of TCP through 100/s burst 100 passed as 472 "packets" of ~42 KB.
TEST_F(Devices, SkbModeCountsASuperPacketAsItsWirePackets) {
  ASSERT_EQ(lab_->in_dut({"ip", "addr", "add", "198.18.0.2/24", "dev", "dut0"}).rc, 0);
  ASSERT_EQ(lab_->in_gen({"ip", "addr", "add", "198.18.0.1/24", "dev", "gen0"}).rc, 0);
  Outcome a = lab_->xthrottle({"attach", "dut0", "--mode", "skb"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_NE(a.err.find("wire packets"), std::string::npos) << "attach --mode skb says how it counts: " << a.err;
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s", "--burst", "100"});
  Background receiver(python(lab_->dut_ns(), {script("tcp_stream.py"), "serve", "198.18.0.2", "5201", "4"}));
  std::this_thread::sleep_for(300ms);
  // Nothing from the sender can pass before this, nor after the stats below
  // are read: burst + rate x that span is what may pass (plus a tick).
  const auto first = std::chrono::steady_clock::now();
  Outcome sender = run(python(lab_->gen_ns(), {script("tcp_stream.py"), "send", "198.18.0.2", "5201", "3"}));
  Outcome got = receiver.wait();
  ASSERT_EQ(got.rc, 0) << got.err;
  const double bytes = std::stod(got.out);
  const json s = stats();
  const double span = std::chrono::duration<double>(std::chrono::steady_clock::now() - first).count() + 0.01;
  const uint64_t passed = s["rules"]["198.18.0.0/15"]["passed_packets"];
  const double allowed = 100 + 100 * span;
  std::printf("[ measure  ] skb mode: %.0f bytes of TCP delivered; %llu wire packets passed, %.0f allowed\n", bytes,
              (unsigned long long)passed, allowed);
  EXPECT_LE(static_cast<double>(passed), allowed);
  EXPECT_LE(bytes, allowed * 1448) << "more TCP payload than the wire packets allowed can carry";
  EXPECT_GT(s["rules"]["198.18.0.0/15"]["dropped_packets"].get<uint64_t>(), 0u);

  Outcome status = lab_->xthrottle({"status"});
  EXPECT_NE(status.out.find("super-packets"), std::string::npos) << status.out;
}

}  // namespace
}  // namespace xt::test
