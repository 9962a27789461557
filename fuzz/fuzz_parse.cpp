// SPDX-License-Identifier: MIT
// The packet parser (bpf/parse.h), fed any bytes. The frame is copied into a
// buffer of exactly its size, so AddressSanitizer stops any read past its
// end; the verdict and source must equal those of an independent, plainly
// written parser of the same rules (docs/hostile-input.md). Each input is
// parsed as an Ethernet frame and as an IP packet without a link layer, as
// a frame of its own length and as the first buffer of a longer one; and,
// where it is IP, counted in wire packets (xt_wire_packets) at an MTU taken
// from its bytes, against a plain reference too.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "parse.h"

namespace {

struct Verdict {
  int result;
  xt_pkt pkt;
};

uint16_t be16(const uint8_t* f, size_t at) { return static_cast<uint16_t>(f[at] << 8 | f[at + 1]); }

// The rules, one by one, with offsets rather than pointers.
Verdict reference(const uint8_t* f, size_t size, uint64_t frame_len, bool ip_link) {
  Verdict v{};
  size_t off = 0;
  uint16_t type = 0;
  if (ip_link) {
    if (size < 1) return {XT_PARSE_MALFORMED, {}};
    type = f[0] >> 4 == 4 ? 0x0800 : f[0] >> 4 == 6 ? 0x86DD : 0;
  } else {
    if (size < 14) return {XT_PARSE_MALFORMED, {}};
    off = 14;
    type = be16(f, 12);
    for (int tags = 0; type == 0x8100 || type == 0x88A8; tags++) {
      if (tags == 2) return {XT_PARSE_MALFORMED, {}};  // a third tag
      if (size < off + 4) return {XT_PARSE_MALFORMED, {}};
      type = be16(f, off + 2);
      off += 4;
    }
  }
  v.pkt.l3_off = static_cast<uint16_t>(off);
  if (type == 0x0800) {
    if (size < off + 20) return {XT_PARSE_MALFORMED, {}};
    const unsigned version = f[off] >> 4, header = (f[off] & 0xfu) * 4u, total = be16(f, off + 2);
    // A total of 0: a super-packet over 64 KB says its length is the frame's.
    const bool big = total == 0 && frame_len > off + 65535;
    if (version != 4 || header < 20 || size < off + header || (total < header && !big))
      return {XT_PARSE_MALFORMED, {}};
    v.result = XT_PARSE_IP;
    v.pkt.family = XT_FAMILY_V4;
    std::memcpy(v.pkt.addr, f + off + 12, 4);
    return v;
  }
  if (type == 0x86DD) {
    if (size < off + 40 || f[off] >> 4 != 6) return {XT_PARSE_MALFORMED, {}};
    // A payload length of 0 as IPv4's total length of 0: only over 64 KB.
    if (be16(f, off + 4) == 0 && frame_len <= off + 40 + 65535) return {XT_PARSE_MALFORMED, {}};
    v.result = XT_PARSE_IP;
    v.pkt.family = XT_FAMILY_V6;
    std::memcpy(v.pkt.addr, f + off + 8, 16);
    return v;
  }
  return {XT_PARSE_NON_IP, {}};
}

// Wire packets a frame stands for, plainly: one unless it is longer than
// the MTU allows, else its payload over what one packet with the same
// headers carries at that MTU, rounded up.
uint64_t reference_wire(const uint8_t* f, size_t size, const xt_pkt& pkt, uint64_t frame_len, uint32_t mtu,
                        uint64_t* wire_len) {
  *wire_len = frame_len;
  const size_t l3 = pkt.l3_off;
  if (mtu == 0 || frame_len <= l3 + mtu) return 1;
  size_t l3_len, proto;
  if (pkt.family == XT_FAMILY_V4) {
    if (size < l3 + 20) return 1;
    l3_len = (f[l3] & 0xfu) * 4u;
    proto = f[l3 + 9];
  } else {
    if (size < l3 + 40) return 1;
    l3_len = 40;
    proto = f[l3 + 6];
  }
  size_t l4_len = 0;
  if (proto == 6) {
    if (size < l3 + l3_len + 20) return 1;  // a whole TCP header
    l4_len = (f[l3 + l3_len + 12] >> 4) * 4u;
  } else if (proto == 17) {
    l4_len = 8;
  }
  if (l3_len + l4_len >= mtu) return 1;
  const uint64_t headers = l3 + l3_len + l4_len;
  if (frame_len <= headers) return 1;
  const uint64_t per = mtu - l3_len - l4_len;
  const uint64_t n = (frame_len - headers + per - 1) / per;
  *wire_len = frame_len + (n - 1) * headers;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<uint8_t[]> frame(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(frame.get(), data, size);
  for (const bool ip_link : {false, true}) {
    for (const uint64_t extra : {uint64_t{0}, uint64_t{70000}}) {
      const uint64_t frame_len = size + extra;
      xt_pkt pkt{};
      const int result =
          xt_parse(frame.get(), frame.get() + size, frame_len, ip_link ? XT_LINK_IP : XT_LINK_ETHER, &pkt);
      const Verdict want = reference(frame.get(), size, frame_len, ip_link);
      if (result != want.result) std::abort();
      if (result != XT_PARSE_IP) continue;
      if (pkt.family != want.pkt.family || pkt.l3_off != want.pkt.l3_off ||
          std::memcmp(pkt.addr, want.pkt.addr, sizeof(pkt.addr)) != 0)
        std::abort();
      const uint32_t mtu = size >= 2 ? static_cast<uint32_t>(be16(frame.get(), size - 2)) % 9001 : 1500;
      __u64 wire = 0;
      uint64_t want_wire = 0;
      const uint32_t packets = xt_wire_packets(frame.get(), frame.get() + size, &pkt, frame_len, mtu, &wire);
      if (packets != reference_wire(frame.get(), size, pkt, frame_len, mtu, &want_wire) || wire != want_wire)
        std::abort();
    }
  }
  return 0;
}
