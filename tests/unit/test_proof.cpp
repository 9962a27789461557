// SPDX-License-Identifier: MIT
// The TCP proof on the host: the cookie is SipHash-2-4 (checked against the
// reference vectors), and the SYN-ACK made of a SYN is what a client's
// stack expects: addresses and ports swapped, SYN|ACK, no options, both
// checksums right (summed here independently), never longer than the SYN.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "cookie.h"
#include "packet.h"
#include "parse.h"
#include "proof.h"

namespace {

using xt::test::Packet;

// The SipHash paper's key, 00 01 .. 0f.
const __u64 kKey[2] = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};

TEST(Cookie, IsSipHash24) {
  // The reference vectors (vectors.h of the reference implementation) for
  // the empty message and for 00 01 .. 07.
  xt_sip s;
  xt_sip_init(&s, kKey);
  EXPECT_EQ(xt_sip_final(&s, 0), 0x726fdb47dd0e0e31ULL);
  xt_sip_init(&s, kKey);
  xt_sip_block(&s, 0x0706050403020100ULL);
  EXPECT_EQ(xt_sip_final(&s, 8), 0x93f5f5799a932462ULL);
}

TEST(Cookie, DependsOnEveryInput) {
  uint8_t src[16] = {198, 18, 0, 1};
  const __u64 dst[2] = {0x010013c6, 0};
  const __u64 base = xt_cookie(kKey, XT_FAMILY_V4, src, dst, 1000, 80, 7);
  const __u64 other_key[2] = {kKey[0] + 1, kKey[1]};
  EXPECT_NE(base, xt_cookie(other_key, XT_FAMILY_V4, src, dst, 1000, 80, 7));
  EXPECT_NE(base, xt_cookie(kKey, XT_FAMILY_V6, src, dst, 1000, 80, 7));
  EXPECT_NE(base, xt_cookie(kKey, XT_FAMILY_V4, src, dst, 1001, 80, 7));
  EXPECT_NE(base, xt_cookie(kKey, XT_FAMILY_V4, src, dst, 1000, 81, 7));
  EXPECT_NE(base, xt_cookie(kKey, XT_FAMILY_V4, src, dst, 1000, 80, 8));
  const __u64 dst2[2] = {0x020013c6, 0};
  EXPECT_NE(base, xt_cookie(kKey, XT_FAMILY_V4, src, dst2, 1000, 80, 7));
  src[3] = 2;
  EXPECT_NE(base, xt_cookie(kKey, XT_FAMILY_V4, src, dst, 1000, 80, 7));
}

uint16_t get16(const std::vector<uint8_t>& f, size_t at) { return static_cast<uint16_t>(f[at] << 8 | f[at + 1]); }
uint32_t get32(const std::vector<uint8_t>& f, size_t at) {
  return static_cast<uint32_t>(get16(f, at)) << 16 | get16(f, at + 2);
}
// The Internet checksum over bytes [at, at + n) plus a pseudo-header sum:
// 0 when the checksum field inside is right.
uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
uint32_t sum16(const std::vector<uint8_t>& f, size_t at, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i < n; i += 2) sum += get16(f, at + i);
  return sum;
}

// Parses frame like the program, and rewrites it like the program.
struct Reply {
  int kind = XT_PROOF_OTHER;
  xt_tcp_view view{};
  std::vector<uint8_t> frame;
};
Reply reply_to(std::vector<uint8_t> frame, uint32_t cookie = 0x11223344, uint32_t isn = 0x55667788) {
  Reply r;
  xt_pkt pkt{};
  EXPECT_EQ(xt_parse(frame.data(), frame.data() + frame.size(), frame.size(), XT_LINK_ETHER, &pkt), XT_PARSE_IP);
  r.kind = xt_proof_kind(frame.data(), frame.data() + frame.size(), &pkt, XT_LINK_ETHER, &r.view);
  if (r.kind != XT_PROOF_SYN) return r;
  const uint32_t len = xt_proof_reply(frame.data(), frame.data() + frame.size(), &pkt, XT_LINK_ETHER, cookie, isn);
  EXPECT_GT(len, 0u);
  EXPECT_LE(len, frame.size()) << "a reply longer than the SYN it answers";
  frame.resize(len);
  r.frame = frame;
  return r;
}

TEST(Proof, SynAckOfAnIPv4SynWithOptions) {
  // A Linux SYN: 20 bytes of options (doff 10), 74-byte frame.
  const auto syn = Packet().ipv4("198.18.0.7", "198.18.0.2").tcp(10).flags(0x02).ports(40000, 80).seq(1000).build();
  const Reply r = reply_to(syn);
  ASSERT_EQ(r.kind, XT_PROOF_SYN);
  EXPECT_EQ(r.view.seq, 1000u);
  const auto& f = r.frame;
  ASSERT_EQ(f.size(), 54u);
  EXPECT_TRUE(std::equal(f.begin(), f.begin() + 6, syn.begin() + 6)) << "sent back to the SYN's sender";
  EXPECT_TRUE(std::equal(f.begin() + 6, f.begin() + 12, syn.begin()));
  EXPECT_EQ(f[14], 0x45);
  EXPECT_EQ(get16(f, 16), 40) << "IP total length";
  EXPECT_EQ(f[23], 6);
  EXPECT_TRUE(std::equal(f.begin() + 26, f.begin() + 30, syn.begin() + 30)) << "from the SYN's destination";
  EXPECT_TRUE(std::equal(f.begin() + 30, f.begin() + 34, syn.begin() + 26)) << "to its source";
  EXPECT_EQ(fold(sum16(f, 14, 20)), 0) << "IP header checksum";
  EXPECT_EQ(get16(f, 34), 80);
  EXPECT_EQ(get16(f, 36), 40000);
  EXPECT_EQ(get32(f, 38), 0x55667788u) << "our sequence number";
  EXPECT_EQ(get32(f, 42), 0x11223344u) << "the cookie, where the client expects its ISN + 1";
  EXPECT_EQ(f[46], 5 << 4) << "no options";
  EXPECT_EQ(f[47], 0x12) << "SYN|ACK";
  const uint32_t pseudo = sum16(f, 26, 8) + 6 + 20;
  EXPECT_EQ(fold(pseudo + sum16(f, 34, 20)), 0) << "TCP checksum";
}

TEST(Proof, SynAckOfAnIPv6SynBehindAVlanTag) {
  const auto syn = Packet()
                       .vlan(7)
                       .ipv6("2001:db8::7", "2001:db8::2")
                       .tcp(8)
                       .flags(0x02)
                       .ports(40001, 443)
                       .seq(7)
                       .build();
  const Reply r = reply_to(syn);
  ASSERT_EQ(r.kind, XT_PROOF_SYN);
  const auto& f = r.frame;
  ASSERT_EQ(f.size(), 18u + 40 + 20);
  EXPECT_EQ(get16(f, 14), 7) << "the tag stays";
  EXPECT_EQ(get16(f, 18 + 4), 20) << "payload length";
  EXPECT_TRUE(std::equal(f.begin() + 18 + 8, f.begin() + 18 + 24, syn.begin() + 18 + 24));
  EXPECT_TRUE(std::equal(f.begin() + 18 + 24, f.begin() + 18 + 40, syn.begin() + 18 + 8));
  const uint32_t pseudo = sum16(f, 18 + 8, 32) + 6 + 20;
  EXPECT_EQ(fold(pseudo + sum16(f, 58, 20)), 0) << "TCP checksum";
  EXPECT_EQ(f[58 + 13], 0x12);
}

TEST(Proof, OnlySynsAndRstsTakePart) {
  auto kind = [](uint8_t flags) {
    return reply_to(Packet().ipv4("198.18.0.7").tcp().flags(flags).build()).kind;
  };
  EXPECT_EQ(kind(0x02), XT_PROOF_SYN);
  EXPECT_EQ(kind(0x04), XT_PROOF_RST);
  EXPECT_EQ(kind(0x14), XT_PROOF_RST) << "RST|ACK";
  EXPECT_EQ(kind(0x12), XT_PROOF_OTHER) << "a SYN-ACK";
  EXPECT_EQ(kind(0x10), XT_PROOF_OTHER) << "an ACK";
  EXPECT_EQ(kind(0x03), XT_PROOF_OTHER) << "SYN|FIN";
  EXPECT_EQ(kind(0x06), XT_PROOF_OTHER) << "SYN|RST";
  EXPECT_EQ(reply_to(Packet().ipv4("198.18.0.7").build()).kind, XT_PROOF_OTHER) << "UDP";
  EXPECT_EQ(reply_to(Packet().ipv4("198.18.0.7").ihl(6).tcp().flags(0x02).build()).kind, XT_PROOF_OTHER)
      << "IPv4 options";
  EXPECT_EQ(reply_to(Packet().ipv4("198.18.0.7").fragment(0, true).tcp().flags(0x02).build()).kind, XT_PROOF_OTHER)
      << "a fragment";
  EXPECT_EQ(reply_to(Packet().ipv6("2001:db8::7").ext(0).tcp().flags(0x02).build()).kind, XT_PROOF_OTHER)
      << "an extension header";
  // Cut short: the TCP header is not all there.
  auto cut = Packet().ipv4("198.18.0.7").tcp().flags(0x02).build();
  cut.resize(14 + 20 + 19);
  EXPECT_EQ(reply_to(cut).kind, XT_PROOF_OTHER);
}

}  // namespace
