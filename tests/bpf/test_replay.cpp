// SPDX-License-Identifier: MIT
// `xthrottle replay` over captures of every kind it reads, written here
// byte by byte so each case is exact: the clock follows the timestamps
// (nanosecond pcap), Linux cooked captures (SLL, SLL2; what the host sent
// skipped) and raw IP give the Ethernet capture's verdicts, and a frame
// captured short is metered at its wire length.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "packet.h"
#include "require.h"
#include "replay.h"
#include "rules_file.h"

namespace xt {
namespace {

using test::Packet;

constexpr int kEther = 1, kSll = 113, kSll2 = 276, kIpv4 = 228;

// A pcap file with nanosecond timestamps (magic 0xa1b23c4d).
class Capture {
 public:
  explicit Capture(int linktype) {
    put32(0xa1b23c4d);
    put16(2);
    put16(4);
    put32(0);
    put32(0);
    put32(65535);
    put32(static_cast<uint32_t>(linktype));
  }
  void frame(int64_t ns, const std::vector<uint8_t>& bytes, uint32_t wire_len = 0) {
    put32(static_cast<uint32_t>(ns / 1'000'000'000));
    put32(static_cast<uint32_t>(ns % 1'000'000'000));
    put32(static_cast<uint32_t>(bytes.size()));
    put32(wire_len ? wire_len : static_cast<uint32_t>(bytes.size()));
    out_.insert(out_.end(), bytes.begin(), bytes.end());
  }
  std::string write(const std::string& path) const {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(out_.data()), out_.size());
    return path;
  }

 private:
  void put16(uint16_t v) { out_.insert(out_.end(), {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)}); }
  void put32(uint32_t v) {
    put16(static_cast<uint16_t>(v));
    put16(static_cast<uint16_t>(v >> 16));
  }
  std::vector<uint8_t> out_;
};

// An Ethernet frame as the other link types carry it.
std::vector<uint8_t> cooked(const std::vector<uint8_t>& ether, bool v2, uint16_t pkttype) {
  std::vector<uint8_t> out(v2 ? 20 : 16, 0);
  if (v2) {
    out[0] = ether[12], out[1] = ether[13];
    out[10] = static_cast<uint8_t>(pkttype);
    out[11] = 6;
    std::memcpy(out.data() + 12, ether.data() + 6, 6);
  } else {
    out[1] = static_cast<uint8_t>(pkttype);
    out[5] = 6;
    std::memcpy(out.data() + 6, ether.data() + 6, 6);
    out[14] = ether[12], out[15] = ether[13];
  }
  out.insert(out.end(), ether.begin() + 14, ether.end());
  return out;
}

class Replay : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/xt-replay-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  ReplayResult replay(const std::string& rules, const Capture& capture,
                      uint32_t idle_seconds = XT_DEFAULT_IDLE_SECONDS) {
    std::ofstream(dir_ + "/rules.toml") << rules;
    auto file = load_rules_file(dir_ + "/rules.toml");
    EXPECT_TRUE(file.has_value()) << file.error().message;
    EXPECT_TRUE(compile_rules(*file, 1000).has_value());
    ReplayOptions o;
    o.hz = 1000;
    o.max_sources = XT_MIN_MAX_SOURCES;
    o.idle_seconds = idle_seconds;
    auto r = replay_capture(*file, capture.write(dir_ + "/c.pcap"), o);
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return r.value_or(ReplayResult{});
  }
  static const xt_rule_stats& only_rule(const ReplayResult& r) { return r.rules.at(0).stats; }
  std::string dir_;
};

constexpr const char* kTenASecond = "[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"10/s\"\nburst = 5\n";
constexpr int64_t kMs = 1'000'000;
const int64_t kStart = 1'790'000'000LL * 1'000'000'000;  // some wall-clock time

TEST_F(Replay, TheClockFollowsTheCapture) {
  // 100 frames 10 ms apart, over 0.99 s: 5 of the burst at 0..40 ms, then
  // one each 100 ms as the rate refills, at 100..900 ms.
  Capture c(kEther);
  const auto f = Packet().ipv4("198.18.0.9").build();
  for (int i = 0; i < 100; i++) c.frame(kStart + i * 10 * kMs, f);
  const ReplayResult r = replay(kTenASecond, c);
  EXPECT_EQ(r.replayed, 100u);
  EXPECT_EQ(only_rule(r).passed_packets, 5u + 9u);
  EXPECT_EQ(only_rule(r).dropped_packets, 100u - 14u);
  ASSERT_EQ(r.throttled.size(), 1u);
  EXPECT_EQ(format_cidr(r.throttled[0].source), "198.18.0.9/32");
  EXPECT_EQ(r.throttled[0].first_drop_ns - kStart, 50 * kMs) << "the sixth frame, the burst spent";
}

// The table's idle window (replay --idle) is the one replayed in: a source
// quiet for longer is new again, and a spent new-source budget turns it away
// (nothing remembers it: remember = "0").
TEST_F(Replay, TheIdleWindowIsTheOneAsked) {
  constexpr const char* kOneNewAMinute =
      "[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"10/s\"\nburst = 5\nnew_rate = \"1/min\"\nremember = \"0\"\n";
  Capture c(kEther);
  const auto a = Packet().ipv4("198.18.0.9").build();
  c.frame(kStart, a);                    // admitted: the budget's one
  c.frame(kStart + 10 * kMs, Packet().ipv4("198.18.0.10").build());  // refused: the budget is spent
  c.frame(kStart + 3000 * kMs, a);       // back after 3 s
  const ReplayResult kept = replay(kOneNewAMinute, c);
  EXPECT_EQ(only_rule(kept).passed_packets, 2u) << "within the default 60 s window: still tracked";
  EXPECT_EQ(only_rule(kept).new_source_dropped_packets, 1u);
  const ReplayResult idle = replay(kOneNewAMinute, c, 2);
  EXPECT_EQ(only_rule(idle).passed_packets, 1u) << "past a 2 s window: a new source again";
  EXPECT_EQ(only_rule(idle).new_source_dropped_packets, 2u);
}

TEST_F(Replay, CookedAndRawCapturesGiveTheEthernetVerdicts) {
  const auto f = Packet().ipv4("198.18.0.9").build();
  const auto mine = Packet().ipv4("198.18.0.2", "198.18.0.9").build();  // what the host sent back
  Capture ether(kEther), sll(kSll), sll2(kSll2), raw(kIpv4);
  for (int i = 0; i < 100; i++) {
    const int64_t t = kStart + i * 10 * kMs;
    ether.frame(t, f);
    sll.frame(t, cooked(f, false, 0));
    sll.frame(t, cooked(mine, false, 4));
    sll2.frame(t, cooked(f, true, 0));
    sll2.frame(t, cooked(mine, true, 4));
    raw.frame(t, std::vector<uint8_t>(f.begin() + 14, f.end()));
  }
  const ReplayResult want = replay(kTenASecond, ether);
  for (const auto* c : {&sll, &sll2, &raw}) {
    const ReplayResult got = replay(kTenASecond, *c);
    EXPECT_EQ(got.replayed, 100u) << "what the host sent is skipped";
    EXPECT_EQ(only_rule(got).passed_packets, only_rule(want).passed_packets);
    EXPECT_EQ(only_rule(got).dropped_packets, only_rule(want).dropped_packets);
  }
}

TEST_F(Replay, AFrameCapturedShortIsMeteredAtItsLength) {
  // 2000 bytes of burst: two frames of 1000 bytes on the wire pass, the
  // third does not, though tcpdump kept 42 bytes of each.
  Capture c(kEther);
  const auto f = Packet().ipv4("198.18.0.9").build();
  for (int i = 0; i < 3; i++) c.frame(kStart + i * kMs, f, 1000);
  const ReplayResult r =
      replay("[[rule]]\ncidr = \"198.18.0.0/15\"\nbandwidth = \"8000bit/s\"\nburst_bytes = 2000\n", c);
  EXPECT_EQ(only_rule(r).passed_packets, 2u);
  EXPECT_EQ(only_rule(r).dropped_packets, 1u);
}

// A GRO frame captured short (tcpdump -s 128) is longer on the wire than
// anything the program can be run on: counted as oversize and skipped,
// however few bytes the capture kept. (It was padded to 9216 bytes and
// replayed as one packet: not counted, and metered at a seventh of its
// bytes.) A raw-IP runt under 14 bytes, which BPF_PROG_TEST_RUN refuses,
// is skipped, not the end of the replay.
TEST_F(Replay, AMergedFrameCapturedShortIsSkippedAndARuntDoesNotStopTheReplay) {
  Capture c(kEther), raw(kIpv4);
  const auto f = Packet().ipv4("198.18.0.9").build();
  c.frame(kStart, f, 40000);
  c.frame(kStart + kMs, f);
  raw.frame(kStart, std::vector<uint8_t>(f.begin() + 14, f.begin() + 14 + 10));
  raw.frame(kStart + kMs, std::vector<uint8_t>(f.begin() + 14, f.end()));
  const ReplayResult r = replay(kTenASecond, c);
  EXPECT_EQ(r.oversize, 1u);
  EXPECT_EQ(r.replayed, 1u);
  EXPECT_EQ(only_rule(r).passed_packets, 1u);
  const ReplayResult g = replay(kTenASecond, raw);
  EXPECT_EQ(g.skipped, 1u);
  EXPECT_EQ(g.replayed, 1u);
}

// A frame GRO merged from five full segments, captured with GRO on (the
// default): the live program counts it as the five wire packets at the
// interface's MTU. The replay ran it on the host's loopback (MTU 65536)
// and counted one, so a bulk TCP source the live rule drops "would pass".
// It is counted at --mtu (1500 by default), as at the interface.
TEST_F(Replay, AMergedFrameCountsAsItsWirePacketsAtTheCapturesMtu) {
  Capture c(kEther);
  const size_t payload = 5 * 1448;  // TCP with timestamps: 20 + 32 bytes of headers a segment
  c.frame(kStart, Packet().ipv4("198.18.0.9").tcp(8).total_length(20 + 32 + payload).size(14 + 20 + 32 + payload).build());
  const ReplayResult r = replay("[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"10/s\"\nburst = 100\n", c);
  EXPECT_EQ(r.replayed, 1u);
  EXPECT_EQ(only_rule(r).passed_packets, 5u) << "five wire packets, not one";
  EXPECT_EQ(only_rule(r).passed_bytes, 5u * (14 + 20 + 32 + 1448));
}

// The frames run in a network namespace of their own (for the MTU); the
// rules go in before, where the interfaces they redirect to are. Taken
// first, the namespace had none, and a rule that redirects was refused.
TEST_F(Replay, ARuleThatRedirectsIsReplayedWhereItsInterfaceIs) {
  XT_REQUIRE_ROOT();
  ASSERT_EQ(unshare(CLONE_NEWNET), 0) << std::strerror(errno);  // the test's own, for its interface
  ASSERT_EQ(std::system("ip link add xtrd0 type veth peer name xtrd1"), 0);
  // Held open, as the host's namespace is held by everything else: when the
  // replay leaves it, it is not torn down with its interface (the rule's
  // redirect then emptied, as when an interface goes).
  const int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ns, 0) << std::strerror(errno);
  Capture c(kEther);
  const auto f = Packet().ipv4("198.18.0.9").build();
  for (int i = 0; i < 10; i++) c.frame(kStart + i * kMs, f);
  const ReplayResult r =
      replay("[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"10/s\"\nburst = 5\nover = \"redirect:xtrd0\"\n", c);
  EXPECT_EQ(r.replayed, 10u);
  EXPECT_EQ(r.redirected, 5u) << "what the rule drops, sent to xtrd0";
  close(ns);
}

}  // namespace
}  // namespace xt
