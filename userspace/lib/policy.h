// SPDX-License-Identifier: MIT
// The policy model in userspace: parsing what the operator writes (rates,
// bandwidths, CIDRs) and compiling a rule into the exact integer form the XDP
// program meters with. Pure: no kernel, no I/O, unit-tested on the host.
#pragma once

#include <xthrottle/abi.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace xt {

inline constexpr uint64_t kNsPerSec = 1'000'000'000ULL;

// N packets per period_ns nanoseconds: "100/s", "6000/min", "1000/day".
struct Rate {
  uint64_t count = 0;
  uint64_t period_ns = 0;
};
Result<Rate> parse_rate(std::string_view text);
std::string format_rate(uint64_t count, uint64_t period_ns);

// Bits per second: "10Mbit/s", "500kbit/s", "2MB/s" (SI prefixes, bit or byte units).
struct Bandwidth {
  uint64_t bits_per_sec = 0;
  bool byte_unit = false;  // written in bytes: listed back in bytes
};
Result<Bandwidth> parse_bandwidth(std::string_view text);
std::string format_bandwidth(uint64_t bits_per_sec, bool byte_unit);

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
};
inline int family_bits(uint8_t family) { return family == XT_FAMILY_V4 ? 32 : 128; }
// "198.18.0.0/15", "2001:db8::/32", or a bare address (a host prefix).
Result<Cidr> parse_cidr(std::string_view text);
std::string format_addr(uint8_t family, const uint8_t* addr);
std::string format_cidr(const Cidr& cidr);
xt_rule_key rule_key(const Cidr& cidr);
Cidr cidr_of(const xt_rule_key& key);

// A rule as given on the command line (or, later, in a config file).
struct RuleSpec {
  Cidr cidr;
  xt_action action = XT_ACT_LIMIT;
  std::optional<int> per;
  std::optional<Rate> rate;
  std::optional<uint64_t> burst;
  std::optional<Bandwidth> bandwidth;
  std::optional<uint64_t> burst_bytes;
  std::optional<Rate> new_rate;  // default: XT_DEFAULT_NEW_RATE per second
  bool dry_run = false;
};

// The exact limit for `count` units per `ticks` kernel ticks (of hz per
// second) with a burst of `burst` units (see struct xt_limit). `what` names
// the option in messages.
Result<xt_limit> make_limit(uint64_t count, uint64_t ticks, uint64_t burst, uint32_t hz, std::string_view what);

// Validate a spec and compile it into the map value for a kernel running at
// `hz` ticks per second. id and gen are left for the state layer to assign.
Result<xt_rule> compile_rule(const RuleSpec& spec, uint32_t hz);

// What a compiled rule will do that its author may not expect, one warning
// a line for `rule add` and `apply` (empty: nothing to say). Tokens arrive
// once a kernel tick, so a burst below a tick's worth (plus one packet)
// caps the rate below what was asked; and a byte burst below a quarter of a
// second's worth starves a TCP flow (README, "Sizing a byte burst for TCP").
std::vector<std::string> rule_warnings(const xt_rule& rule, uint32_t hz);

const char* action_name(uint8_t action);
// One line describing a rule's limits: "100/s burst 100, 10Mbit/s burst 1250000B".
std::string describe_limits(const xt_rule& rule);

}  // namespace xt
