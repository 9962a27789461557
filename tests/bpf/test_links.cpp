// SPDX-License-Identifier: MIT
// What an interface hands the program, through the real object: frames with
// no link layer (tun, WireGuard), and super-packets (generic XDP sees a TCP
// sender's 64 KB segments whole) counted as the wire packets they stand for.
#include <gtest/gtest.h>

#include "program.h"
#include "rules.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;

// Issue 9.3: on a device without a link layer the frame is the IP packet.
// Read as Ethernet it was "non-IP" and passed, 1000 of 1000 under 100/s.
TEST_F(Program, PacketsWithoutALinkLayerAreLimited) {
  load(XT_MIN_MAX_SOURCES, false, XT_LINK_IP);
  rule("198.18.0.0/15", "10/s", 5);
  rule("2001:db8::/32", "10/s", 5);
  EXPECT_EQ(passed(Packet().no_link().ipv4("198.18.1.1").build(), 20), 5);
  EXPECT_EQ(passed(Packet().no_link().ipv6("2001:db8::1").build(), 20), 5);
  EXPECT_EQ(counter(XT_DROP_LIMIT), 30u);
  EXPECT_EQ(counter(XT_PASS_NON_IP), 0u);
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_bytes, 5u * Packet().no_link().ipv4("198.18.1.1").build().size());
  EXPECT_EQ(run(std::vector<uint8_t>(40, 0x10)), XDP_PASS) << "neither IPv4 nor IPv6";
  EXPECT_EQ(counter(XT_PASS_NON_IP), 1u);
}

// Without a link layer an IPv4 packet can be 20 bytes, not the 34 of an
// Ethernet frame: a source held by its byte limit is held only until the
// smallest such packet fits. (Held for the Ethernet frame's 34 bytes, a
// 28-byte packet that fitted at 28 ms was dropped until 34 ms.)
TEST_F(Program, WithoutALinkLayerTheHoldIsForTheSmallestIPPacket) {
  load(XT_MIN_MAX_SOURCES, false, XT_LINK_IP);
  rule("198.18.0.0/15", "1000/s", 1000, [](RuleSpec& s) {
    s.bandwidths = {*parse_bandwidth("8kbit/s")};  // 1000 bytes/s: a byte a tick
    s.burst_bytes = {100};
  });
  const auto big = Packet().no_link().ipv4("198.18.1.1").size(100).build();
  const auto small = Packet().no_link().ipv4("198.18.1.1").size(28).build();
  ASSERT_EQ(run(big, 0), XDP_PASS) << "the byte burst, all of it";
  ASSERT_EQ(run(small, 0), XDP_DROP);
  EXPECT_EQ(run(small, 28), XDP_PASS) << "28 bytes refilled by 28 ms";
}

// Issue 9.4: a TCP super-packet of 29 full segments counts as 29 packets and
// their 29 wire frames' bytes against the limits, in the counters too.
TEST_F(Program, SuperPacketsCountAsTheirWirePackets) {
  set_mtu(1500);
  load(XT_MIN_MAX_SOURCES, /*frags=*/true);  // frames beyond a page need the multi-buffer program
  rule("198.18.0.0/15", "10/s", 100);
  const size_t payload = 29 * 1448;  // TCP with timestamps: 20 + 32 bytes of headers a segment
  const auto super = Packet().ipv4("198.18.0.1").tcp(8).total_length(20 + 32 + payload).size(14 + 20 + 32 + payload).build();
  EXPECT_EQ(passed(super, 4), 3) << "3 x 29 = 87 of a burst of 100; 29 more do not fit";
  const xt_rule_stats s = rule_stats("198.18.0.0/15");
  EXPECT_EQ(s.passed_packets, 87u);
  EXPECT_EQ(s.passed_bytes, 87u * 1514);
  EXPECT_EQ(s.dropped_packets, 29u);
  EXPECT_EQ(counter(XT_PASS_LIMIT), 87u);
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").tcp(8).size(1514).build(), 20), 13) << "what is left of the burst";
}

// The count follows the interface's MTU as it is now, not as it was when
// the program was loaded: the same frame is one packet at an MTU it fits.
TEST_F(Program, SuperPacketsAreCountedAtTheMtuOfNow) {
  set_mtu(1500);
  load(XT_MIN_MAX_SOURCES, /*frags=*/true);
  rule("198.18.0.0/15", "10/s", 1000);
  const size_t payload = 5 * 1448;
  const auto frame = Packet().ipv4("198.18.0.1").tcp(8).total_length(20 + 32 + payload).size(14 + 20 + 32 + payload).build();
  EXPECT_EQ(run(frame), XDP_PASS);
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 5u);
  set_mtu(9000);
  EXPECT_EQ(run(frame), XDP_PASS);
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 6u) << "a jumbo frame is one packet";
}

}  // namespace
}  // namespace xt
