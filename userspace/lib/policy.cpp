// SPDX-License-Identifier: MIT
#include "policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <numeric>

namespace xt {
namespace {

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Digits only: no sign, no fraction, no spaces.
Result<uint64_t> parse_u64(std::string_view what, std::string_view full, std::string_view digits) {
  if (digits.empty() || !std::ranges::all_of(digits, [](unsigned char c) { return std::isdigit(c); }))
    return usage_error("bad " + std::string(what) + " " + quoted(full) + ": " + quoted(digits) +
                       " is not a whole number");
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || ptr != digits.data() + digits.size())
    return usage_error("bad " + std::string(what) + " " + quoted(full) + ": " + quoted(digits) +
                       " is too large");
  return value;
}

struct TimeUnit {
  const char* names[4];
  uint64_t ns;
  const char* canonical;
};
constexpr TimeUnit kTimeUnits[] = {
    {{"s", "sec", "second", "seconds"}, kNsPerSec, "s"},
    {{"m", "min", "minute", "minutes"}, 60 * kNsPerSec, "min"},
    {{"h", "hour", "hours", nullptr}, 3600 * kNsPerSec, "hour"},
    {{"d", "day", "days", nullptr}, 86400 * kNsPerSec, "day"},
};

std::optional<uint64_t> time_unit_ns(std::string_view unit) {
  std::string u = lower(unit);
  for (const auto& tu : kTimeUnits)
    for (const char* name : tu.names)
      if (name && u == name) return tu.ns;
  return std::nullopt;
}

struct SiPrefix {
  char letter;
  uint64_t mult;
};
constexpr SiPrefix kSiPrefixes[] = {
    {'k', 1'000ULL}, {'M', 1'000'000ULL}, {'G', 1'000'000'000ULL}, {'T', 1'000'000'000'000ULL}};

}  // namespace

Result<Rate> parse_rate(std::string_view text) {
  // "10Mbit/s" where packets were meant: say which option takes it.
  if (parse_bandwidth(text))
    return usage_error("bad rate " + quoted(text) + ": that is a bandwidth, which --bandwidth takes (bandwidth = in "
                       "a config file); a rate counts packets, e.g. 100/s or 6000/min");
  auto slash = text.find('/');
  if (slash == std::string_view::npos)
    return usage_error("bad rate " + quoted(text) + ": expected N/UNIT, e.g. 100/s or 6000/min");
  auto count = parse_u64("rate", text, text.substr(0, slash));
  if (!count) return std::unexpected(count.error());
  if (*count == 0) return usage_error("bad rate " + quoted(text) + ": the rate must be above zero");
  std::string_view unit = text.substr(slash + 1);
  auto ns = time_unit_ns(unit);
  if (!ns)
    return usage_error("bad rate " + quoted(text) + ": unknown unit " + quoted(unit) +
                       " (use s, sec, second, m, min, minute, h, hour, d or day)");
  return Rate{*count, *ns};
}

std::string format_rate(uint64_t count, uint64_t period_ns) {
  for (const auto& tu : kTimeUnits)
    if (tu.ns == period_ns) return std::to_string(count) + "/" + tu.canonical;
  return std::to_string(count) + "/" + std::to_string(period_ns) + "ns";
}

Result<Bandwidth> parse_bandwidth(std::string_view text) {
  auto slash = text.rfind('/');
  if (slash == std::string_view::npos)
    return usage_error("bad bandwidth " + quoted(text) + ": expected N UNIT/s, e.g. 10Mbit/s or 2MB/s");
  std::string per = lower(text.substr(slash + 1));
  if (per != "s" && per != "sec" && per != "second")
    return usage_error("bad bandwidth " + quoted(text) + ": bandwidth is per second (/s), not " +
                       quoted(text.substr(slash + 1)));
  std::string_view quantity = text.substr(0, slash);
  while (!quantity.empty() && quantity.back() == ' ') quantity.remove_suffix(1);
  size_t digits_end = 0;
  while (digits_end < quantity.size() && std::isdigit(static_cast<unsigned char>(quantity[digits_end])))
    digits_end++;
  std::string_view number = quantity.substr(0, digits_end);
  std::string_view unit = quantity.substr(digits_end);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  auto value = parse_u64("bandwidth", text, number);
  if (!value) return std::unexpected(value.error());
  if (*value == 0) return usage_error("bad bandwidth " + quoted(text) + ": the bandwidth must be above zero");

  uint64_t mult = 1;
  std::string_view base = unit;
  if (!unit.empty()) {
    for (const auto& p : kSiPrefixes) {
      // "k" is the SI spelling; "K" is common enough to accept too.
      if (unit.front() == p.letter || (p.letter == 'k' && unit.front() == 'K')) {
        mult = p.mult;
        base = unit.substr(1);
        break;
      }
    }
  }
  bool bytes;
  if (base == "bit")
    bytes = false;
  else if (base == "B")
    bytes = true;
  else
    return usage_error("bad bandwidth " + quoted(text) + ": unknown unit " + quoted(unit) +
                       " (use bit, kbit, Mbit, Gbit, Tbit or B, kB, MB, GB, TB)");
  uint64_t factor = mult * (bytes ? 8 : 1);
  if (*value > UINT64_MAX / factor) return usage_error("bad bandwidth " + quoted(text) + ": too large");
  return Bandwidth{*value * factor, bytes};
}

std::string format_bandwidth(uint64_t bits_per_sec, bool byte_unit) {
  uint64_t value = bits_per_sec;
  const char* base = "bit";
  if (byte_unit && bits_per_sec % 8 == 0) {
    value = bits_per_sec / 8;
    base = "B";
  }
  std::string prefix;
  for (auto it = std::rbegin(kSiPrefixes); it != std::rend(kSiPrefixes); ++it) {
    if (value % it->mult == 0) {
      value /= it->mult;
      prefix = std::string(1, it->letter);
      break;
    }
  }
  return std::to_string(value) + prefix + base + "/s";
}

Result<uint64_t> parse_positive(std::string_view what, std::string_view text) {
  auto value = parse_u64(what, text, text);
  if (!value) return value;
  if (*value == 0) return usage_error("bad " + std::string(what) + " " + quoted(text) + ": must be above zero");
  return value;
}

Result<int> parse_prefix_len(std::string_view what, std::string_view text) {
  auto value = parse_u64(what, text, text);
  if (!value) return std::unexpected(value.error());
  if (*value > 128)
    return usage_error("bad " + std::string(what) + " " + quoted(text) + ": longer than any address (128 bits)");
  return static_cast<int>(*value);
}

Result<Cidr> parse_cidr(std::string_view text) {
  Cidr cidr;
  std::string addr(text);
  std::optional<std::string_view> len_text;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr = std::string(text.substr(0, slash));
    len_text = text.substr(slash + 1);
  }
  if (inet_pton(AF_INET, addr.c_str(), cidr.addr.data()) == 1) {
    cidr.family = XT_FAMILY_V4;
  } else if (inet_pton(AF_INET6, addr.c_str(), cidr.addr.data()) == 1) {
    cidr.family = XT_FAMILY_V6;
  } else {
    return usage_error("bad CIDR " + quoted(text) + ": " + quoted(addr) + " is not an IPv4 or IPv6 address");
  }
  const int max = family_bits(cidr.family);
  cidr.len = static_cast<uint8_t>(max);
  if (len_text) {
    auto len = parse_u64("CIDR", text, *len_text);
    if (!len) return std::unexpected(len.error());
    if (*len > static_cast<uint64_t>(max))
      return usage_error("bad CIDR " + quoted(text) + ": prefix length " + std::string(*len_text) +
                         " is longer than an " + (cidr.family == XT_FAMILY_V4 ? "IPv4" : "IPv6") +
                         " address (" + std::to_string(max) + " bits)");
    cidr.len = static_cast<uint8_t>(*len);
  }
  // Host bits set is almost always a typo for a different prefix: say so.
  Cidr masked = cidr;
  for (int i = 0; i < 16; i++) {
    int bits = cidr.len - 8 * i;
    uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
    masked.addr[i] &= mask;
  }
  if (masked != cidr)
    return usage_error("bad CIDR " + quoted(text) + ": host bits are set (did you mean " +
                       format_cidr(masked) + "?)");
  return cidr;
}

std::string format_addr(uint8_t family, const uint8_t* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == XT_FAMILY_V4 ? AF_INET : AF_INET6, addr, buf, sizeof(buf));
  return buf;
}

std::string format_cidr(const Cidr& cidr) {
  return format_addr(cidr.family, cidr.addr.data()) + "/" + std::to_string(cidr.len);
}

xt_rule_key rule_key(const Cidr& cidr) {
  xt_rule_key key{};
  key.prefixlen = XT_LPM_FAMILY_BITS + cidr.len;
  key.family = cidr.family;
  std::copy(cidr.addr.begin(), cidr.addr.end(), key.addr);
  return key;
}

Cidr cidr_of(const xt_rule_key& key) {
  Cidr cidr;
  cidr.family = key.family;
  std::copy(std::begin(key.addr), std::end(key.addr), cidr.addr.begin());
  cidr.len = static_cast<uint8_t>(key.prefixlen - XT_LPM_FAMILY_BITS);
  return cidr;
}

Result<xt_limit> make_limit(uint64_t count, uint64_t ticks, uint64_t burst, uint32_t hz, std::string_view what) {
  const uint64_t g = std::gcd(count, ticks);
  xt_limit l{};
  l.fill = count / g;
  l.cost = ticks / g;
  // A bucket's state is unambiguous for an idle time of 2^(XT_TAT_BITS-1)
  // units (abi.h): refuse fills so large that this would be under a year.
  const unsigned __int128 horizon_ticks = (static_cast<unsigned __int128>(1) << (XT_TAT_BITS - 1)) / l.fill;
  if (l.fill > XT_MAX_SCALED || horizon_ticks / hz < XT_MIN_HORIZON_SECONDS)
    return usage_error("bad " + std::string(what) + ": it does not reduce to a small enough fraction of the " +
                       std::to_string(hz) + " kernel ticks per second to meter exactly; round it (to a multiple "
                       "of 1000, say)");
  if (burst > XT_MAX_SCALED / l.cost)
    return usage_error("bad " + std::string(what) + ": a burst of " + std::to_string(burst) +
                       " is too large to meter exactly at this rate (at most " +
                       std::to_string(XT_MAX_SCALED / l.cost) + ")");
  l.cap = burst * l.cost;
  return l;
}

namespace {

// Ticks in period_ns at hz ticks per second: exact, as every period is whole
// seconds.
uint64_t period_ticks(uint64_t period_ns, uint32_t hz) { return period_ns / kNsPerSec * hz; }

}  // namespace

Result<xt_rule> compile_rule(const RuleSpec& spec, uint32_t hz) {
  xt_rule rule{};
  rule.action = static_cast<uint8_t>(spec.action);
  rule.family = spec.cidr.family;
  const int max_bits = family_bits(spec.cidr.family);
  const char* family_name = spec.cidr.family == XT_FAMILY_V4 ? "IPv4" : "IPv6";
  const bool limits = spec.rate || spec.burst || spec.bandwidth || spec.burst_bytes || spec.per || spec.new_rate;

  if (spec.action != XT_ACT_LIMIT) {
    const char* flag = spec.action == XT_ACT_ALLOW ? "--allow" : "--deny";
    if (limits)
      return usage_error(std::string(flag) +
                         " takes no limits: --rate, --burst, --bandwidth, --burst-bytes, --per and "
                         "--new-rate apply to limit rules");
    if (spec.dry_run && spec.action == XT_ACT_ALLOW)
      return usage_error("--dry-run has no effect on an --allow rule: it never drops");
    rule.flags = spec.dry_run ? XT_RULE_DRY_RUN : 0;
    rule.per_len = static_cast<uint8_t>(max_bits);
    return rule;
  }

  if (!spec.rate && !spec.bandwidth)
    return usage_error("a limit rule needs --rate or --bandwidth (or --allow / --deny)");
  if (spec.burst && !spec.rate) return usage_error("--burst needs --rate: it is counted in packets");
  if (spec.burst_bytes && !spec.bandwidth) return usage_error("--burst-bytes needs --bandwidth");

  int per = spec.per.value_or(spec.cidr.family == XT_FAMILY_V4 ? 32 : 64);
  if (per < 0 || per > max_bits)
    return usage_error("bad --per " + std::to_string(per) + ": longer than an " + family_name +
                       " address (" + std::to_string(max_bits) + " bits)");
  rule.per_len = static_cast<uint8_t>(per);
  if (spec.dry_run) rule.flags |= XT_RULE_DRY_RUN;

  if (spec.rate) {
    const uint64_t burst = spec.burst.value_or(spec.rate->count);
    auto l = make_limit(spec.rate->count, period_ticks(spec.rate->period_ns, hz), burst, hz,
                        "--rate " + format_rate(spec.rate->count, spec.rate->period_ns));
    if (!l) return std::unexpected(l.error());
    rule.pkt = *l;
    rule.flags |= XT_RULE_PKT_LIMIT;
    rule.rate_count = spec.rate->count;
    rule.rate_period_ns = spec.rate->period_ns;
    rule.burst = burst;
  }
  if (spec.bandwidth) {
    const uint64_t bits = spec.bandwidth->bits_per_sec;
    const uint64_t burst = spec.burst_bytes.value_or((bits + 7) / 8);  // one second's worth
    // Bits per second are bits per hz ticks; a byte costs 8 of them.
    auto l = make_limit(bits, 8ULL * hz, burst, hz,
                        "--bandwidth " + format_bandwidth(bits, spec.bandwidth->byte_unit));
    if (!l) return std::unexpected(l.error());
    rule.bytes = *l;
    rule.flags |= XT_RULE_BYTE_LIMIT;
    if (spec.bandwidth->byte_unit) rule.flags |= XT_RULE_BW_BYTES;
    rule.bw_bits = bits;
    rule.burst_bytes = burst;
  }
  const Rate fresh = spec.new_rate.value_or(Rate{XT_DEFAULT_NEW_RATE, kNsPerSec});
  auto n = make_limit(fresh.count, period_ticks(fresh.period_ns, hz), fresh.count, hz,
                      "--new-rate " + format_rate(fresh.count, fresh.period_ns));
  if (!n) return std::unexpected(n.error());
  rule.new_src = *n;
  rule.new_count = fresh.count;
  rule.new_period_ns = fresh.period_ns;
  rule.new_burst = fresh.count;
  return rule;
}

std::vector<std::string> rule_warnings(const xt_rule& rule, uint32_t hz) {
  std::vector<std::string> out;
  if (rule.action != XT_ACT_LIMIT) return out;
  constexpr uint64_t kFrame = 1514;  // a full-size Ethernet frame
  if (rule.flags & XT_RULE_PKT_LIMIT) {
    // A bucket holding less than a tick's worth of tokens throws the rest
    // away every tick: at most burst x hz packets a second pass.
    const uint64_t per_second = rule.rate_count * kNsPerSec / rule.rate_period_ns;
    const uint64_t per_tick = (per_second + hz - 1) / hz;
    if (rule.burst * hz < per_second)
      out.push_back("--burst " + std::to_string(rule.burst) + " is below one kernel tick's worth of " +
                    format_rate(rule.rate_count, rule.rate_period_ns) + " (" + std::to_string(per_tick) +
                    " packets at " + std::to_string(hz) + " ticks a second): at most " +
                    std::to_string(rule.burst * hz) + " packets/s can pass; use --burst " +
                    std::to_string(per_tick) + " or more");
  }
  if (rule.flags & XT_RULE_BYTE_LIMIT) {
    const uint64_t bytes_per_second = rule.bw_bits / 8;
    const uint64_t per_tick = (bytes_per_second + hz - 1) / hz;
    const uint64_t for_tcp = std::max<uint64_t>(bytes_per_second / 4, 20 * kFrame);
    const std::string burst = "--burst-bytes " + std::to_string(rule.burst_bytes);
    if (rule.burst_bytes < kFrame) {
      out.push_back(burst + " is below a full-size Ethernet frame (1514 bytes): larger packets can never pass");
    } else if (rule.burst_bytes < per_tick + kFrame) {
      const uint64_t most = rule.burst_bytes / kFrame * kFrame * hz;
      out.push_back(burst + " is below one kernel tick's worth of " +
                    format_bandwidth(rule.bw_bits, rule.flags & XT_RULE_BW_BYTES) + " plus a frame (" +
                    std::to_string(per_tick + kFrame) + " bytes): tokens arrive once a tick, so full-size frames "
                    "pass at no more than " + std::to_string(most * 8 / 1000) + " kbit/s; use " +
                    std::to_string(for_tcp) + " or more");
    } else if (rule.burst_bytes < for_tcp) {
      out.push_back(burst + " is below a quarter of a second's worth of " +
                    format_bandwidth(rule.bw_bits, rule.flags & XT_RULE_BW_BYTES) + " (" + std::to_string(for_tcp) +
                    " bytes): a TCP flow through it may get well below the limit (README, \"Sizing a byte burst "
                    "for TCP\")");
    }
  }
  return out;
}

const char* action_name(uint8_t action) {
  switch (action) {
    case XT_ACT_LIMIT: return "limit";
    case XT_ACT_ALLOW: return "allow";
    case XT_ACT_DENY: return "deny";
  }
  return "unknown";
}

std::string describe_limits(const xt_rule& rule) {
  if (rule.action != XT_ACT_LIMIT) return "";
  std::string out;
  if (rule.flags & XT_RULE_PKT_LIMIT)
    out = format_rate(rule.rate_count, rule.rate_period_ns) + " burst " + std::to_string(rule.burst);
  if (rule.flags & XT_RULE_BYTE_LIMIT) {
    if (!out.empty()) out += ", ";
    out += format_bandwidth(rule.bw_bits, rule.flags & XT_RULE_BW_BYTES) + " burst " +
           std::to_string(rule.burst_bytes) + "B";
  }
  return out + ", new sources " + format_rate(rule.new_count, rule.new_period_ns);
}

}  // namespace xt
