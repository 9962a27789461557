// SPDX-License-Identifier: MIT
// Totals with fair shares (issue 13): a rule's --total caps what all its
// sources pass together, and while it binds the heaviest give way first.
// Through the real object with the settable clock.
#include <gtest/gtest.h>

#include "packet.h"
#include "program.h"
#include "rules.h"

namespace xt {
namespace {

using test::kMs;
using test::kSec;
using test::Packet;
using test::Program;

// 200 sources each within its own limit (100 a second against 1000) but
// together ten times over the rule's total of 2000 a second, and 20 light
// sources each at a tenth of the fair share (2000 / 200 = 10 a second):
// 1 a second. For 20 simulated seconds the total holds to within 3%
// (after its first burst), the light sources lose under 1%, and the heavy
// ones give way.
TEST_F(Program, ATotalIsSharedFairlyAndTheHeaviestGiveWay) {
  load();
  rule("198.18.0.0/15", "1000/s", std::nullopt, [](RuleSpec& s) { s.total = *parse_rate("2000/s"); });
  constexpr int kHeavy = 200, kLight = 20;
  std::vector<std::vector<uint8_t>> heavy, light;
  for (int i = 0; i < kHeavy; i++) heavy.push_back(Packet().ipv4(test::nth_source(i)).build());
  for (int i = 0; i < kLight; i++) light.push_back(Packet().ipv4(test::nth_source(1000 + i)).build());
  uint64_t seed = 1, heavy_passed = 0, heavy_sent = 0, light_passed = 0, light_sent = 0, passed_after_5s = 0;
  for (uint64_t now = 0; now < 20 * kSec; now += kMs) {
    // 20 heavy packets a millisecond (100 a second from each), in a
    // shuffled order; a light packet every 50 ms (1 a second from each).
    for (int k = 0; k < 20; k++) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      const bool ok = run(heavy[(seed >> 33) % kHeavy], now) == XDP_PASS;
      heavy_passed += ok;
      heavy_sent++;
      passed_after_5s += ok && now >= 5 * kSec;
    }
    if (now % (50 * kMs) == 0) {
      const bool ok = run(light[(now / (50 * kMs)) % kLight], now) == XDP_PASS;
      light_passed += ok;
      light_sent++;
      passed_after_5s += ok && now >= 5 * kSec;
    }
  }
  const double total_rate = static_cast<double>(passed_after_5s) / 15;
  const double light_loss = 1 - static_cast<double>(light_passed) / static_cast<double>(light_sent);
  std::printf("[ measure  ] total %.0f/s of 2000/s; light sources lost %.2f%% (%llu of %llu); heavy passed "
              "%.1f%%\n",
              total_rate, 100 * light_loss, (unsigned long long)(light_sent - light_passed),
              (unsigned long long)light_sent, 100.0 * static_cast<double>(heavy_passed) / static_cast<double>(heavy_sent));
  EXPECT_NEAR(total_rate, 2000, 60) << "within 3% of the total";
  EXPECT_LT(light_loss, 0.01) << "a source at a tenth of the fair share loses under 1%";
  EXPECT_LT(heavy_passed, heavy_sent / 8) << "the heavy ones give way: about a tenth of what they send passes";
  EXPECT_GT(counter(XT_DROP_TOTAL), 0u);
  EXPECT_EQ(counter(XT_DROP_LIMIT), 0u) << "no source was over its own limit";
}

// First come is not fair: without the share, the same light sources would
// lose what the heavy ones do. With a total that does not bind, nothing is
// dropped and no share comes into force.
TEST_F(Program, ATotalThatDoesNotBindDropsNothing) {
  load();
  rule("198.18.0.0/15", "1000/s", std::nullopt, [](RuleSpec& s) { s.total = *parse_rate("2000/s"); });
  const auto frame = Packet().ipv4("198.18.0.9").build();
  uint64_t passed = 0;
  for (uint64_t now = 0; now < 5 * kSec; now += kMs) passed += run(frame, now) == XDP_PASS;
  EXPECT_EQ(passed, 5000u) << "1000 a second from one source, under its limit and the total";
  EXPECT_EQ(counter(XT_DROP_TOTAL), 0u);
}

// The total caps what the rule passes even when every source is within its
// own limit and its share: 300 sources at 10 a second under a total of 1000.
TEST_F(Program, ATotalIsExact) {
  load();
  rule("198.18.0.0/15", "100/s", std::nullopt, [](RuleSpec& s) { s.total = *parse_rate("1000/s"); });
  std::vector<std::vector<uint8_t>> sources;
  for (int i = 0; i < 300; i++) sources.push_back(Packet().ipv4(test::nth_source(i)).build());
  uint64_t passed = 0;
  for (uint64_t now = 0; now < 10 * kSec; now += kMs)
    for (int k = 0; k < 3; k++) passed += run(sources[(now + k * 100) % 300], now) == XDP_PASS;
  // burst (a second's worth) + rate x elapsed, at most.
  EXPECT_LE(passed, 1000u + 1000 * 10);
  EXPECT_GE(passed, 1000u * 10 * 97 / 100);
}

}  // namespace
}  // namespace xt
