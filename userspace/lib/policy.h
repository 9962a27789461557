// SPDX-License-Identifier: MIT
// The words of the policy: parsing and printing what the operator writes
// (rates, bandwidths, CIDRs, counts) and making the exact integer limit the
// XDP program meters with. Whole rules are rules.h's. Pure: no kernel, no
// I/O, unit-tested and fuzzed on the host.
#pragma once

#include <xthrottle/abi.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error.h"

namespace xt {

inline constexpr uint64_t kNsPerSec = 1'000'000'000ULL;

// N packets per period_ns nanoseconds: "100/s", "6000/min", "1000/day".
struct Rate {
  uint64_t count = 0;
  uint64_t period_ns = 0;
};
// A bandwidth given instead is refused, naming bandwidth_option, the option
// that takes one in its place (empty: none does).
Result<Rate> parse_rate(std::string_view text,
                        std::string_view bandwidth_option = "--bandwidth (bandwidth = in a config file)");
std::string format_rate(uint64_t count, uint64_t period_ns);

// Bits per period: "10Mbit/s", "500kbit/s", "2MB/s", and byte quotas over
// longer windows, "1GB/day", "100MB/hour" (SI prefixes, bit or byte units,
// the units of rates).
struct Bandwidth {
  uint64_t bits = 0;
  uint64_t period_ns = kNsPerSec;
  bool byte_unit = false;  // written in bytes: listed back in bytes
};
Result<Bandwidth> parse_bandwidth(std::string_view text);
std::string format_bandwidth(const Bandwidth& bw);

// A duration in whole seconds: "90s", "30min", "24h", "7d" (the units of
// rates), or "0" / "off" for none. `what` names the option in messages;
// where 0 is no "none" (--ban-after 0 bans at the first drop; --ban-for,
// ban add --for, capture --for refuse it), they do not offer it.
Result<uint64_t> parse_duration(std::string_view what, std::string_view text, bool zero_is_none = true);
std::string format_duration(uint64_t seconds);

// A size in bytes: "256MB", "64KiB", "1GB" (SI or binary prefixes, B for
// bytes; a bare number is bytes).
Result<uint64_t> parse_size(std::string_view what, std::string_view text);

// A positive integer option value; `what` names the option in messages.
Result<uint64_t> parse_positive(std::string_view what, std::string_view text);

// A prefix length option value (0..128; the family's own bound is checked by
// compile_rule, which knows the family).
Result<int> parse_prefix_len(std::string_view what, std::string_view text);

// An address prefix. IPv4 lives in addr[0..3].
struct Cidr {
  uint8_t family = 0;  // XT_FAMILY_V4 or XT_FAMILY_V6
  std::array<uint8_t, 16> addr{};
  uint8_t len = 0;
  bool operator==(const Cidr&) const = default;
  auto operator<=>(const Cidr&) const = default;  // an order, for maps of prefixes
};
inline int family_bits(uint8_t family) { return family == XT_FAMILY_V4 ? 32 : 128; }
// Whether prefix holds address addr (of its family, its first len bits).
inline bool prefix_holds(const Cidr& prefix, const Cidr& addr) {
  if (prefix.family != addr.family) return false;
  for (int b = 0; b < prefix.len; b++)
    if ((prefix.addr[b / 8] ^ addr.addr[b / 8]) & (0x80 >> (b % 8))) return false;
  return true;
}
// Whether no bit of a 16-byte address is set past its first len bits (so,
// for an IPv4 prefix, none past its four bytes either): a prefix as the
// parser makes it. What comes from a file or the wire is checked by this.
inline bool only_prefix_bits(const uint8_t* addr, int len) {
  for (int b = len < 0 ? 0 : len; b < 128; b++)
    if (addr[b / 8] & (0x80 >> (b % 8))) return false;
  return true;
}
// The prefix of `len` bits of addr (the rest zeroed), as the data path
// masks a source into its bucket's prefix (keys.h).
std::array<uint8_t, 16> prefix_of(const std::array<uint8_t, 16>& addr, unsigned len);
// Whether family, addr and len make a prefix: a family, a length it has,
// and no bit past it.
inline bool is_prefix(uint8_t family, const uint8_t* addr, int len) {
  return (family == XT_FAMILY_V4 || family == XT_FAMILY_V6) && len <= family_bits(family) &&
         only_prefix_bits(addr, len);
}
// "198.18.0.0/15", "2001:db8::/32", or a bare address (a host prefix).
Result<Cidr> parse_cidr(std::string_view text);
// The IPv4 form of a prefix longer than ::ffff:0:0/96 and within it: IPv4
// clients as a dual-stack socket names them. Their packets are IPv4 here,
// and never match such a prefix. (::ffff:0:0/96 itself is a filter of IPv6
// packets that carry such sources, a bogon, and is taken as it is.)
std::optional<Cidr> mapped_ipv4(const Cidr& cidr);
// parse_cidr for a source prefix typed on the command line (rule add, ban
// add, blocklist test): one mapped_ipv4 has a form for is refused with it.
// Files (a config's rules, a blocklist) are read with parse_cidr, as they
// were: a rule of one is warned about (rule_warnings), a list's entry is
// inert; and what exists already (a snapshot, a fleet, rule del) too.
Result<Cidr> parse_source_cidr(std::string_view text);
std::string format_addr(uint8_t family, const uint8_t* addr);
std::string format_cidr(const Cidr& cidr);
// What a rule matches besides the source (docs/design.md, "Matches"): an
// IP protocol, a destination port range (TCP, UDP), TCP SYN without ACK.
// A rule is its CIDR and its match.
inline constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;
struct Match {
  std::optional<uint8_t> proto;
  std::optional<std::pair<uint16_t, uint16_t>> ports;  // lo, hi (both in)
  bool syn = false;
  bool operator==(const Match&) const = default;
};
// enum xt_match_level of a match.
uint8_t match_level(const Match& match);
// "tcp", "udp", "icmp", "icmpv6", "sctp", or a number 0..255.
Result<uint8_t> parse_proto(std::string_view text);
std::string format_proto(uint8_t proto);
// "53" or "1024-65535".
Result<std::pair<uint16_t, uint16_t>> parse_ports(std::string_view text);
std::string format_ports(const std::pair<uint16_t, uint16_t>& ports);
// "udp/53", "tcp/1-1023 syn", "tcp syn", "icmp"; "" for no match.
std::string format_match(const Match& match);
// A rule's name where one is printed: "0.0.0.0/0", "0.0.0.0/0 udp/53".
std::string rule_name(const Cidr& cidr, const Match& match);

// The words of a comma-separated list, empty ones kept ("a,,b": three).
std::vector<std::string_view> comma_list(std::string_view text);

xt_rule_key rule_key(const Cidr& cidr, const Match& match = {});
Cidr cidr_of(const xt_rule_key& key);
Match match_of(const xt_rule_key& key);


}  // namespace xt
