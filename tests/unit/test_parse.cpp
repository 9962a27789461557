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
  p.result = xt_parse(frame.data(), frame.data() + frame.size(), &p.pkt);
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

}  // namespace
}  // namespace xt
