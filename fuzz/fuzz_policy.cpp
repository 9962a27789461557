// SPDX-License-Identifier: MIT
// The controller's parsers of operator input (userspace/lib/policy.h): rates,
// bandwidths, CIDRs, prefix lengths and whole rules. Any text gets a value or
// an error with a message, never a crash; what parses prints back to text
// that parses to the same value; a rule that compiles has limits the data
// path can meter (caps and fills within XT_MAX_SCALED).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <string>

#include "policy.h"
#include "rules.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

template <typename T>
void refused_with_a_message(const xt::Result<T>& r) {
  if (!r) check(!r.error().message.empty());
}

void check_limit(const xt_limit& l) { check(l.cap <= XT_MAX_SCALED && l.fill <= XT_MAX_SCALED && l.cost > 0); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string a = in.ConsumeRandomLengthString(64), b = in.ConsumeRandomLengthString(64),
                    c = in.ConsumeRandomLengthString(64);

  auto rate = xt::parse_rate(a);
  refused_with_a_message(rate);
  if (rate) {
    auto again = xt::parse_rate(xt::format_rate(rate->count, rate->period_ns));
    using wide = unsigned __int128;
    check(again && wide(again->count) * rate->period_ns == wide(rate->count) * again->period_ns);
  }
  auto bw = xt::parse_bandwidth(b);
  refused_with_a_message(bw);
  if (bw) {
    auto again = xt::parse_bandwidth(xt::format_bandwidth(*bw));
    check(again && again->bits == bw->bits && again->period_ns == bw->period_ns);
  }
  auto cidr = xt::parse_cidr(c);
  refused_with_a_message(cidr);
  if (cidr) {
    auto again = xt::parse_cidr(xt::format_cidr(*cidr));
    check(again && *again == *cidr);
  }
  refused_with_a_message(xt::parse_prefix_len("--per", a));
  refused_with_a_message(xt::parse_positive("--burst", b));

  // A whole rule from the pieces, as `rule add` would build it.
  if (!cidr) return 0;
  xt::RuleSpec spec;
  spec.cidr = *cidr;
  spec.action = static_cast<xt_action>(in.ConsumeIntegralInRange<int>(0, 3));
  for (int i = in.ConsumeIntegralInRange<int>(0, 4); rate && i > 0; i--) {
    spec.rates.push_back(*rate);
    rate->count = in.ConsumeIntegralInRange<uint64_t>(1, rate->count);
    rate->period_ns *= in.ConsumeIntegralInRange<uint64_t>(1, 60);
  }
  if (bw) spec.bandwidths.push_back(*bw);
  if (in.ConsumeBool()) spec.bursts.push_back(in.ConsumeIntegral<uint64_t>());
  if (in.ConsumeBool()) spec.burst_bytes.push_back(in.ConsumeIntegral<uint64_t>());
  if (in.ConsumeBool()) spec.per = in.ConsumeIntegralInRange<int>(-2, 130);
  if (in.ConsumeBool() && rate) spec.new_rate = *rate;
  spec.dry_run = in.ConsumeBool();
  static constexpr uint32_t kHz[] = {100, 250, 300, 1000};
  auto rule = xt::compile_rule(spec, in.PickValueInArray(kHz));
  refused_with_a_message(rule);
  if (rule) {
    check(rule->per_len <= xt::family_bits(cidr->family));
    check(rule->action != XT_ACT_LIMIT || rule->limits);
    for (int p = 0; p < XT_MAX_LIMITS; p++)
      if ((rule->limits >> p) & 1) check_limit(rule->limit[p]);
  }
  return 0;
}
