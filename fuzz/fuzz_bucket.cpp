// SPDX-License-Identifier: MIT
// The bucket arithmetic (bpf/gcra.h, bpf/meter.h) under any rule the controller accepts
// and any traffic: packet by packet it must agree with a classic token
// bucket in exact 128-bit arithmetic (tests/common/reference_bucket.h),
// across rule replacements (tokens carried over as the controller promises);
// a CPU whose clock is a little behind is never more generous; and the hot
// cache's wait must be exact: a minimum-size frame before it is certain to
// be dropped, at it would pass. UBSan stops any overflow or bad shift.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "keys.h"
#include "meter.h"
#include "slots.h"
#include "policy.h"
#include "rules.h"
#include "reference_bucket.h"

namespace {

using xt::test::ReferenceBucket;

constexpr uint32_t kHz[] = {100, 250, 300, 1000};
constexpr uint64_t kPeriod[] = {1'000'000'000ULL, 60'000'000'000ULL, 3'600'000'000'000ULL, 86'400'000'000'000ULL};

[[noreturn]] void fail(const char* what, uint64_t now, const xt_rule& r) {
  std::fprintf(stderr, "%s at tick %llu; gen %u; limits %#x (bytes %#x)", what, (unsigned long long)now, r.gen,
               r.limits, r.byte_limits);
  for (const xt_limit& l : r.limit)
    std::fprintf(stderr, "; fill %llu cost %llu cap %llu", (unsigned long long)l.fill, (unsigned long long)l.cost,
                 (unsigned long long)l.cap);
  std::fprintf(stderr, "\n");
  std::abort();
}

// One to three windows, packets and bytes mixed.
std::optional<xt_rule> random_rule(FuzzedDataProvider& in, uint32_t hz) {
  xt::RuleSpec spec;
  spec.cidr = *xt::parse_cidr("198.18.0.0/15");
  const int windows = in.ConsumeIntegralInRange<int>(1, XT_MAX_LIMITS);
  const bool bursts = in.ConsumeBool(), burst_bytes = in.ConsumeBool();
  for (int i = 0; i < windows; i++) {
    if (in.ConsumeBool()) {
      spec.rates.push_back({in.ConsumeIntegralInRange<uint64_t>(1, 1ULL << 40), in.PickValueInArray(kPeriod)});
      if (bursts) spec.bursts.push_back(in.ConsumeIntegralInRange<uint64_t>(1, 1ULL << 40));
    } else {
      spec.bandwidths.push_back({in.ConsumeIntegralInRange<uint64_t>(1, 1ULL << 50), in.PickValueInArray(kPeriod), false});
      if (burst_bytes) spec.burst_bytes.push_back(in.ConsumeIntegralInRange<uint64_t>(1, 1ULL << 40));
    }
  }
  auto compiled = xt::compile_rule(spec, hz);
  if (!compiled) return std::nullopt;  // refused, with a message: nothing to meter
  return *compiled;
}

bool in_force(const xt_rule& r, int p) { return (r.limits >> p) & 1; }
bool counts_bytes(const xt_rule& r, int p) { return (r.byte_limits >> p) & 1; }

// One limit of the reference, carried into a replacement's units at its
// tick: whole tokens kept up to the new burst; full if the limit is new; as
// it was if the window is the same (gcra.h, xt_regen).
void carry(ReferenceBucket& ref, bool had, const xt_limit& prev, const xt_limit& now_limit, bool has, uint64_t at) {
  if (!has) return;
  if (!had) {
    ref = ReferenceBucket::full(now_limit, at);
    return;
  }
  if (xt_same_limit(&prev, &now_limit)) return;
  ref.refill(at);
  const unsigned __int128 whole = ref.level / ref.cost;
  const unsigned __int128 tokens = whole >= now_limit.cap / now_limit.cost ? now_limit.cap : whole * now_limit.cost;
  ref = ReferenceBucket{tokens, now_limit.cap, now_limit.fill, now_limit.cost, at};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint32_t hz = in.PickValueInArray(kHz);
  auto first = random_rule(in, hz);
  if (!first) return 0;
  xt_rule rule = *first;
  rule.gen = 1;

  uint64_t now = in.ConsumeIntegralInRange<uint64_t>(0, 1ULL << 40);
  xt_bucket bucket;
  xt_bucket_init(&bucket, &rule, now);
  // The reference: a classic token bucket for each word in force.
  ReferenceBucket ref[XT_MAX_LIMITS];
  for (int p = 0; p < XT_MAX_LIMITS; p++)
    if (in_force(rule, p)) ref[p] = ReferenceBucket::full(rule.limit[p], now);
  auto fits = [&](ReferenceBucket* r, uint64_t t, uint64_t len) {
    bool all = true;
    for (int p = 0; p < XT_MAX_LIMITS; p++) {
      if (!in_force(rule, p)) continue;
      r[p].refill(t);
      all = all && r[p].has(counts_bytes(rule, p) ? len : 1);
    }
    return all;
  };

  // The state is exact while no word goes unwritten for longer than the
  // horizon compile_rule guarantees; past it, see the Horizon unit tests.
  const uint64_t horizon = XT_MIN_HORIZON_SECONDS * hz;
  uint64_t written = now;  // a pass (or the controller) writes every word
  uint64_t floor = now;    // no clock reads earlier than the last replacement
  while (in.remaining_bytes() > 0) {
    const int op = in.ConsumeIntegralInRange<int>(0, 15);
    if (op == 0) {  // the operator replaces the rule (rule add on its CIDR)
      auto next = random_rule(in, hz);
      if (!next) continue;
      // What the controller does: bring the words to the current generation
      // (catch_up_buckets), then install the next one, its windows placed
      // where the old ones they continue were, recording the tick.
      for (int p = 0; p < XT_MAX_LIMITS; p++) bucket.word[p] = XT_REGEN(&rule, p, bucket.word[p], now);
      next->gen = static_cast<__u8>(rule.gen % XT_GEN_MAX + 1);
      next->prev_gen = rule.gen;
      xt::place_limits(rule, *next);
      next->replaced_at = now;
      for (int p = 0; p < XT_MAX_LIMITS; p++)
        carry(ref[p], in_force(rule, p) && next->prev[p].cost, next->prev[p], next->limit[p], in_force(*next, p), now);
      rule = *next;
      written = floor = now;
      continue;
    }
    // A packet: mostly short steps forward, sometimes an idle up to the
    // horizon, sometimes from a CPU whose clock is a little behind.
    const bool behind = op == 1;
    uint64_t at;
    if (behind) {
      at = std::max(floor, now - std::min<uint64_t>(now, in.ConsumeIntegralInRange<uint64_t>(1, XT_SKEW_TICKS)));
    } else {
      uint64_t step = op < 12 ? in.ConsumeIntegralInRange<uint64_t>(0, 64)
                              : in.ConsumeIntegralInRange<uint64_t>(0, horizon);
      if (now + step - written > horizon) step = written + horizon - now;
      at = now += step;
    }
    const uint64_t len = in.ConsumeIntegralInRange<uint64_t>(XT_MIN_FRAME_V4, 9216);
    const bool want = fits(ref, at, len);
    const bool got = xt_meter(&bucket, &rule, at, len) == 1;
    // From a clock behind, the bucket may only be stricter than the
    // reference (it sees less refill); otherwise they agree exactly.
    if (got != want && !(behind && want && !got)) fail(got ? "bucket passes, reference drops" : "bucket drops, reference passes", at, rule);
    // A packet metered at its own, earlier tick consumes from a bucket that
    // refilled less; if the bucket was full then, the take is absorbed by
    // refill the reference (one clock, in arrival order) has already
    // capped. Both are right about their own clocks, so the comparison
    // ends here.
    if (behind) return 0;
    if (got) {
      written = at;
      for (int p = 0; p < XT_MAX_LIMITS; p++)
        if (in_force(rule, p)) ref[p].take(counts_bytes(rule, p) ? len : 1);
      continue;
    }
    // Dropped: the hot cache would drop this source without metering until
    // now + wait. The reference must agree that a minimum-size frame cannot
    // pass before then, and can at that tick.
    const uint64_t wait = xt_meter_wait(&rule, &bucket, now, XT_MIN_FRAME_V4);
    auto min_frame_passes = [&](uint64_t t) {
      ReferenceBucket copy[XT_MAX_LIMITS];
      std::copy(std::begin(ref), std::end(ref), copy);
      return fits(copy, t, XT_MIN_FRAME_V4);
    };
    if (wait == XT_NEVER) {
      if (min_frame_passes(now + horizon)) fail("wait says never, yet a minimum frame fits", now, rule);
    } else if (wait > 0) {
      if (min_frame_passes(now + wait - 1)) fail("a minimum frame fits before the wait is over", now, rule);
      if (!min_frame_passes(now + wait)) fail("a minimum frame does not fit when the wait is over", now, rule);
    }
  }
  return 0;
}
