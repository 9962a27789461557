// SPDX-License-Identifier: MIT
// The packet parser (bpf/parse.h), fed any bytes. The frame is copied into a
// buffer of exactly its size, so AddressSanitizer stops any read past its
// end; the verdict and source must equal those of an independent, plainly
// written parser of the same rules (docs/hostile-input.md).
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
Verdict reference(const uint8_t* f, size_t size) {
  Verdict v{};
  if (size < 14) return {XT_PARSE_MALFORMED, {}};
  size_t off = 14;
  uint16_t type = be16(f, 12);
  for (int tags = 0; type == 0x8100 || type == 0x88A8; tags++) {
    if (tags == 2) return {XT_PARSE_MALFORMED, {}};  // a third tag
    if (size < off + 4) return {XT_PARSE_MALFORMED, {}};
    type = be16(f, off + 2);
    off += 4;
  }
  if (type == 0x0800) {
    if (size < off + 20) return {XT_PARSE_MALFORMED, {}};
    const unsigned version = f[off] >> 4, header = (f[off] & 0xfu) * 4u, total = be16(f, off + 2);
    if (version != 4 || header < 20 || size < off + header || total < header) return {XT_PARSE_MALFORMED, {}};
    v.result = XT_PARSE_IP;
    v.pkt.family = XT_FAMILY_V4;
    std::memcpy(v.pkt.addr, f + off + 12, 4);
    return v;
  }
  if (type == 0x86DD) {
    if (size < off + 40 || f[off] >> 4 != 6) return {XT_PARSE_MALFORMED, {}};
    v.result = XT_PARSE_IP;
    v.pkt.family = XT_FAMILY_V6;
    std::memcpy(v.pkt.addr, f + off + 8, 16);
    return v;
  }
  return {XT_PARSE_NON_IP, {}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<uint8_t[]> frame(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(frame.get(), data, size);
  xt_pkt pkt{};
  const int result = xt_parse(frame.get(), frame.get() + size, &pkt);
  const Verdict want = reference(frame.get(), size);
  if (result != want.result) std::abort();
  if (result == XT_PARSE_IP &&
      (pkt.family != want.pkt.family || std::memcmp(pkt.addr, want.pkt.addr, sizeof(pkt.addr)) != 0))
    std::abort();
  return 0;
}
