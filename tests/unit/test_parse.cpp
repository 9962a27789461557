// SPDX-License-Identifier: MIT
// The packet parser (bpf/parse.h) on the host: the same code the XDP program
// runs, over crafted frames, including every truncation.
#include <gtest/gtest.h>

#include "packet.h"
#include "parse.h"
#include "policy.h"

namespace xt {
namespace {

using test::Packet;

struct Parsed {
  int result;
  xt_pkt pkt;
};

Parsed parse(const std::vector<uint8_t>& frame) {
  Parsed p{};
  p.result = xt_parse(frame.data(), frame.data() + frame.size(), frame.size(), XT_LINK_ETHER, &p.pkt);
  return p;
}

std::string source(const Parsed& p) { return format_addr(p.pkt.family, p.pkt.addr); }

TEST(Parse, Sources) {
  struct Case {
    const char* name;
    std::vector<uint8_t> frame;
    int result;
    const char* src;
  } cases[] = {
      {"ipv4", Packet().ipv4("198.18.0.1").build(), XT_PARSE_IP, "198.18.0.1"},
      {"ipv6", Packet().ipv6("2001:db8::7").build(), XT_PARSE_IP, "2001:db8::7"},
      {"802.1Q", Packet().vlan(10).ipv4("198.18.3.4").build(), XT_PARSE_IP, "198.18.3.4"},
      {"QinQ", Packet().vlan(100, 0x88A8).vlan(10).ipv6("2001:db8::1").build(), XT_PARSE_IP, "2001:db8::1"},
      {"ipv4 with options", Packet().ihl(15).ipv4("198.18.9.9").build(), XT_PARSE_IP, "198.18.9.9"},
      {"arp", Packet().ethertype(0x0806).build(), XT_PARSE_NON_IP, nullptr},
      {"lldp", Packet().ethertype(0x88CC).build(), XT_PARSE_NON_IP, nullptr},
      {"arp under QinQ", Packet().vlan(1, 0x88A8).vlan(2).ethertype(0x0806).build(), XT_PARSE_NON_IP, nullptr},
      {"three tags", Packet().vlan(1).vlan(2).vlan(3).ipv4("198.18.0.1").build(), XT_PARSE_MALFORMED, nullptr},
      {"three tags, arp inside", Packet().vlan(1).vlan(2).vlan(3).ethertype(0x0806).build(), XT_PARSE_MALFORMED,
       nullptr},
      {"ipv4 first fragment", Packet().ipv4("198.18.0.5").fragment(0, true).build(), XT_PARSE_IP, "198.18.0.5"},
      {"ipv4 later fragment", Packet().ipv4("198.18.0.5").fragment(185, true).build(), XT_PARSE_IP, "198.18.0.5"},
      {"ipv4 last fragment", Packet().ipv4("198.18.0.5").fragment(370, false).build(), XT_PARSE_IP, "198.18.0.5"},
      {"ipv4 total length past the frame (multi-buffer)", Packet().ipv4("198.18.0.6").total_length(9000).build(),
       XT_PARSE_IP, "198.18.0.6"},
      {"ipv4 total length below the header", Packet().ipv4("198.18.0.6").total_length(19).build(),
       XT_PARSE_MALFORMED, nullptr},
      {"ipv4 total length below the options", Packet().ihl(6).ipv4("198.18.0.6").total_length(20).build(),
       XT_PARSE_MALFORMED, nullptr},
      {"ipv6 hop-by-hop, routing, destination options, fragment",
       Packet().ipv6("2001:db8::8").ext(0).ext(43).ext(60).ext(44).build(), XT_PARSE_IP, "2001:db8::8"},
      {"ipv6 chain of 40 extension headers", [] {
         Packet p;
         p.ipv6("2001:db8::9");
         for (int i = 0; i < 40; i++) p.ext(60);
         return p.build();
       }(), XT_PARSE_IP, "2001:db8::9"},
      {"ipv6 fragment header cut off", Packet().ipv6("2001:db8::a").ext(44).size(14 + 40 + 3).build(), XT_PARSE_IP,
       "2001:db8::a"},
      {"minimum frame (60 bytes)", Packet().ipv4("198.18.0.7").size(60).build(), XT_PARSE_IP, "198.18.0.7"},
      {"jumbo frame (9000 bytes)", Packet().ipv6("2001:db8::b").size(9014).build(), XT_PARSE_IP, "2001:db8::b"},
      {"ihl 4", Packet().ihl(4).ipv4("198.18.0.1").build(), XT_PARSE_MALFORMED, nullptr},
      {"version 6 in ipv4", Packet().ip_version(6).ipv4("198.18.0.1").build(), XT_PARSE_MALFORMED, nullptr},
      {"version 4 in ipv6", Packet().ip_version(4).ipv6("2001:db8::1").build(), XT_PARSE_MALFORMED, nullptr},
      {"runt", Packet().ipv4("198.18.0.1").size(13).build(), XT_PARSE_MALFORMED, nullptr},
  };
  for (const auto& c : cases) {
    Parsed p = parse(c.frame);
    EXPECT_EQ(p.result, c.result) << c.name;
    if (c.src) {
      EXPECT_EQ(source(p), c.src) << c.name;
    }
  }
}

// Every prefix of a valid frame that cuts into the L2 or IP header is
// malformed; one that keeps the whole IP header parses to the same source.
// Each cut is its own allocation, so ASan catches a read past its end.
TEST(Parse, EveryTruncation) {
  struct Frame {
    std::vector<uint8_t> bytes;
    size_t ip_end;  // where the IP header the parser needs ends
  } frames[] = {
      {Packet().ipv4("198.18.0.1").build(), 14 + 20},
      {Packet().ihl(8).ipv4("198.18.0.1").build(), 14 + 32},
      {Packet().ipv6("2001:db8::1").build(), 14 + 40},
      {Packet().vlan(7).vlan(8, 0x8100).ipv6("2001:db8::1").build(), 22 + 40},
      {Packet().vlan(7, 0x88A8).ipv4("198.18.0.1").fragment(185, false).build(), 18 + 20},
      {Packet().ipv6("2001:db8::1").ext(0).ext(44).build(), 14 + 40},
  };
  for (const auto& [full, ip_end] : frames) {
    const Parsed whole = parse(full);
    ASSERT_EQ(whole.result, XT_PARSE_IP);
    for (size_t len = 0; len <= full.size(); len++) {
      std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<long>(len));
      Parsed p = parse(cut);
      if (len < ip_end) {
        EXPECT_EQ(p.result, XT_PARSE_MALFORMED) << "length " << len;
      } else {
        ASSERT_EQ(p.result, XT_PARSE_IP) << "length " << len;
        EXPECT_EQ(source(p), source(whole)) << "length " << len;
      }
    }
  }
}

// The transport protocol, which decides who may prove its address
// (prove.bpf.h): IPv4's protocol, IPv6's first next header.
TEST(Parse, Protocol) {
  EXPECT_EQ(parse(Packet().ipv4("198.18.0.1").tcp().build()).pkt.proto, XT_IPPROTO_TCP);
  EXPECT_EQ(parse(Packet().ipv4("198.18.0.1").build()).pkt.proto, 17);
  EXPECT_EQ(parse(Packet().vlan(7).ipv6("2001:db8::1").tcp().build()).pkt.proto, XT_IPPROTO_TCP);
  EXPECT_EQ(parse(Packet().ipv6("2001:db8::1").build()).pkt.proto, 17);
  EXPECT_EQ(parse(Packet().ipv6("2001:db8::1").ext(44).tcp().build()).pkt.proto, 44) << "a fragment header first";
}

// Devices without a link layer (tun, WireGuard): the frame is the IP packet.
TEST(Parse, PacketsWithoutALinkLayer) {
  auto parse_ip = [](const std::vector<uint8_t>& frame) {
    Parsed p{};
    p.result = xt_parse(frame.data(), frame.data() + frame.size(), frame.size(), XT_LINK_IP, &p.pkt);
    return p;
  };
  Parsed v4 = parse_ip(Packet().no_link().ipv4("198.18.1.1").build());
  ASSERT_EQ(v4.result, XT_PARSE_IP);
  EXPECT_EQ(source(v4), "198.18.1.1");
  EXPECT_EQ(v4.pkt.l3_off, 0);
  Parsed v6 = parse_ip(Packet().no_link().ipv6("2001:db8::5").build());
  ASSERT_EQ(v6.result, XT_PARSE_IP);
  EXPECT_EQ(source(v6), "2001:db8::5");
  EXPECT_EQ(parse_ip({0x15, 0, 0, 0}).result, XT_PARSE_NON_IP) << "neither version 4 nor 6";
  EXPECT_EQ(parse_ip({}).result, XT_PARSE_MALFORMED);
  EXPECT_EQ(parse_ip(Packet().no_link().ipv4("198.18.1.1").size(19).build()).result, XT_PARSE_MALFORMED);
  // The same bytes read as Ethernet are what an Ethernet parser made of a
  // tun device's packets: nonsense (here "non-IP", so they would pass).
  EXPECT_NE(parse(Packet().no_link().ipv4("198.18.1.1").build()).result, XT_PARSE_IP);
}

// A GSO/GRO super-packet over 64 KB ("BIG TCP", which generic XDP sees)
// has an IPv4 total length (IPv6: payload length) of 0: its length is the
// frame's. A short frame saying 0 is still malformed.
TEST(Parse, BigTcpTotalLengthZero) {
  const auto big = Packet().ipv4("198.18.0.9").tcp().total_length(0).size(14 + 100000).build();
  Parsed p{};
  p.result = xt_parse(big.data(), big.data() + big.size(), big.size(), XT_LINK_ETHER, &p.pkt);
  EXPECT_EQ(p.result, XT_PARSE_IP);
  EXPECT_EQ(source(p), "198.18.0.9");
  const auto small = Packet().ipv4("198.18.0.9").tcp().total_length(0).size(1514).build();
  EXPECT_EQ(parse(small).result, XT_PARSE_MALFORMED);
  // The first buffer of a multi-buffer frame: the whole frame's length decides.
  const auto head = Packet().ipv4("198.18.0.9").tcp().total_length(0).size(4096).build();
  p.result = xt_parse(head.data(), head.data() + head.size(), 100000, XT_LINK_ETHER, &p.pkt);
  EXPECT_EQ(p.result, XT_PARSE_IP);
  // IPv6's payload length says the same with 0, and the same holds. A short
  // frame saying 0 was taken for one whose length is the frame's: a SYN in
  // its padding matched the port and was answered with a proof, where the
  // kernel trims the packet to its 40-byte header (ip6_rcv_core).
  const auto big6 = Packet().ipv6("2001:db8::9").tcp().total_length(0).size(14 + 100000).build();
  p.result = xt_parse(big6.data(), big6.data() + big6.size(), big6.size(), XT_LINK_ETHER, &p.pkt);
  EXPECT_EQ(p.result, XT_PARSE_IP);
  EXPECT_EQ(parse(Packet().ipv6("2001:db8::9").tcp().flags(0x02).ports(1, 22).total_length(0).build()).result,
            XT_PARSE_MALFORMED);
  const auto head6 = Packet().ipv6("2001:db8::9").tcp().total_length(0).size(4096).build();
  p.result = xt_parse(head6.data(), head6.data() + head6.size(), 100000, XT_LINK_ETHER, &p.pkt);
  EXPECT_EQ(p.result, XT_PARSE_IP);
}

// A frame longer than the MTU allows is a super-packet: it counts as the
// wire packets it stands for, each with its own copy of the headers.
TEST(Parse, SuperPacketsCountAsTheirWirePackets) {
  struct Case {
    const char* name;
    std::vector<uint8_t> frame;
    uint32_t mtu;
    uint32_t packets;
    uint64_t wire_len;
  } cases[] = {
      // 29 segments of 1448 bytes behind IPv4 (20) and TCP with timestamps (32).
      {"tcp, 29 full segments", Packet().ipv4("198.18.0.1").tcp(8).size(14 + 20 + 32 + 29 * 1448).build(), 1500,
       29, 29u * 1514},
      {"tcp, last segment short", Packet().ipv4("198.18.0.1").tcp(8).size(14 + 20 + 32 + 28 * 1448 + 100).build(),
       1500, 29, 28u * 1514 + 14 + 20 + 32 + 100},
      {"ipv6 tcp", Packet().ipv6("2001:db8::1").tcp(8).size(14 + 40 + 32 + 10 * 1428).build(), 1500, 10,
       10u * 1514},
      {"udp", Packet().ipv4("198.18.0.1").size(14 + 28 + 5 * 1472).build(), 1500, 5, 5u * 1514},
      {"fits the mtu", Packet().ipv4("198.18.0.1").tcp(8).size(1514).build(), 1500, 1, 1514},
      {"jumbo mtu", Packet().ipv4("198.18.0.1").tcp(8).size(9014).build(), 9000, 1, 9014},
      {"mtu unknown", Packet().ipv4("198.18.0.1").tcp(8).size(14 + 20 + 32 + 29 * 1448).build(), 0, 1,
       14 + 20 + 32 + 29 * 1448},
      {"no link layer", Packet().no_link().ipv4("198.18.0.1").tcp(8).size(20 + 32 + 3 * 1448).build(), 1500, 3,
       3u * 1500},
  };
  for (const auto& c : cases) {
    xt_pkt pkt{};
    const int link = c.frame[0] >> 4 == 4 ? XT_LINK_IP : XT_LINK_ETHER;
    ASSERT_EQ(xt_parse(c.frame.data(), c.frame.data() + c.frame.size(), c.frame.size(), link, &pkt), XT_PARSE_IP)
        << c.name;
    __u64 wire = 0;
    EXPECT_EQ(xt_wire_packets(c.frame.data(), c.frame.data() + c.frame.size(), &pkt, c.frame.size(), c.mtu, &wire),
              c.packets)
        << c.name;
    EXPECT_EQ(wire, c.wire_len) << c.name;
  }
}

// What rules with a match see (xt_parse_l4): the protocol past IPv6's
// extension headers, the destination port where the transport header is in
// reach, and a SYN without ACK.
Parsed parse_l4(const std::vector<uint8_t>& frame) {
  Parsed p = parse(frame);
  EXPECT_EQ(p.result, XT_PARSE_IP);
  xt_parse_l4(frame.data(), frame.data() + frame.size(), &p.pkt);
  return p;
}

TEST(Parse, TransportPortsAndSyn) {
  struct Case {
    const char* name;
    std::vector<uint8_t> frame;
    int proto, l4, dport;
  } cases[] = {
      {"udp", Packet().ipv4("198.18.0.1").ports(1, 53).build(), 17, XT_L4_PORT, 53},
      {"tcp ack", Packet().ipv4("198.18.0.1").tcp().ports(1, 443).build(), 6, XT_L4_PORT, 443},
      {"tcp syn", Packet().ipv4("198.18.0.1").tcp().flags(0x02).ports(1, 22).build(), 6, XT_L4_PORT | XT_L4_SYN, 22},
      {"tcp syn-ack", Packet().ipv4("198.18.0.1").tcp().flags(0x12).ports(1, 22).build(), 6, XT_L4_PORT, 22},
      {"tcp behind ip options", Packet().ihl(15).ipv4("198.18.0.1").tcp().flags(0x02).ports(1, 25).build(), 6,
       XT_L4_PORT | XT_L4_SYN, 25},
      {"icmp", Packet().ipv4("198.18.0.1").proto(1).build(), 1, 0, 0},
      {"first fragment", Packet().ipv4("198.18.0.1").ports(1, 53).fragment(0, true).build(), 17, XT_L4_PORT, 53},
      {"later fragment", Packet().ipv4("198.18.0.1").ports(1, 53).fragment(185, false).build(), 17, 0, 0},
      {"tcp cut short", Packet().ipv4("198.18.0.1").tcp().ports(1, 80).size(14 + 20 + 19).build(), 6, 0, 0},
      // Bytes past the IP packet's own length (an Ethernet trailer) are
      // no header of it: a tiny first fragment cannot borrow its flags.
      {"tcp past the ip length", Packet().ipv4("198.18.0.1").tcp().flags(0x02).ports(1, 22).total_length(20 + 8).build(),
       6, 0, 0},
      {"udp past the ip length", Packet().ipv4("198.18.0.1").ports(1, 53).total_length(20 + 7).build(), 17, 0, 0},
      {"ipv6 udp", Packet().ipv6("2001:db8::1").ports(1, 53).build(), 17, XT_L4_PORT, 53},
      {"ipv6 behind a vlan tag", Packet().vlan(7).ipv6("2001:db8::1").tcp().flags(0x02).ports(1, 22).build(), 6,
       XT_L4_PORT | XT_L4_SYN, 22},
      {"ipv6 after four headers", Packet().ipv6("2001:db8::1").ext(0).ext(43).ext(60).ext(60).ports(1, 53).build(),
       17, XT_L4_PORT, 53},
      {"ipv6 first fragment", Packet().ipv6("2001:db8::1").ext(44).ports(1, 53).build(), 17, XT_L4_PORT, 53},
      {"ipv6 later fragment", Packet().ipv6("2001:db8::1").ext(44).ext_fragment_offset(9).ports(1, 53).build(), 17, 0,
       0},
      {"ipv6 after five headers", Packet().ipv6("2001:db8::1").ext(0).ext(43).ext(60).ext(60).ext(60).build(), 60, 0,
       0},
      {"ipv6 chain cut short", Packet().ipv6("2001:db8::1").ext(0).ext(43).size(14 + 40 + 12).build(), 43, 0, 0},
      {"ipv6 udp past the payload length", Packet().ipv6("2001:db8::1").ports(1, 53).total_length(4).build(), 17, 0,
       0},
  };
  for (const auto& c : cases) {
    const Parsed p = parse_l4(c.frame);
    EXPECT_EQ(p.pkt.proto, c.proto) << c.name;
    EXPECT_EQ(p.pkt.l4, c.l4) << c.name;
    EXPECT_EQ(p.pkt.dport, c.dport) << c.name;
  }
}

// Every truncation of a frame with a transport header: the parser reads
// nothing past the end (AddressSanitizer watches) and finds a port only
// where the whole header is there.
TEST(Parse, TransportHeadersCutAnywhere) {
  const auto tcp = Packet().ipv6("2001:db8::1").ext(0).ext(60).tcp().flags(0x02).ports(1, 22).build();
  const size_t header_end = 14 + 40 + 16 + 20;
  for (size_t n = 14 + 40; n <= tcp.size(); n++) {
    std::vector<uint8_t> cut(tcp.begin(), tcp.begin() + static_cast<long>(n));
    cut.shrink_to_fit();
    const Parsed p = parse_l4(cut);
    EXPECT_EQ(p.pkt.l4 != 0, n >= header_end) << n << " bytes";
  }
}

}  // namespace
}  // namespace xt
