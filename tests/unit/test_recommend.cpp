// SPDX-License-Identifier: MIT
// recommend.h: the burst a source needs at a rate is exactly what a bucket
// of that rate needs to drop nothing of it (a second at a time), and the
// suggestion drops nothing of the chosen share of sources.
#include <gtest/gtest.h>

#include <random>

#include "recommend.h"

namespace xt {
namespace {

TEST(Recommend, TheBurstNeededIsWhatTheBucketNeeds) {
  EXPECT_DOUBLE_EQ(burst_needed({5, 0, 0, 0}, 1), 5) << "a second's packets may all come at once";
  EXPECT_DOUBLE_EQ(burst_needed({3, 3, 3}, 2), 5) << "9 in three seconds, 2 a second refilled twice";
  EXPECT_DOUBLE_EQ(burst_needed({1, 1, 1}, 2), 1);
  EXPECT_DOUBLE_EQ(burst_needed({0, 0}, 2), 0);
  // For any series and whole rate: the needed burst drops nothing, one
  // less drops something.
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; round++) {
    std::vector<uint32_t> s(1 + rng() % 40);
    for (auto& n : s) n = rng() % 4 == 0 ? rng() % 200 : rng() % 20;
    const double r = 1 + rng() % 30;
    const auto b = static_cast<uint64_t>(std::ceil(burst_needed(s, r)));
    EXPECT_EQ(dropped_by(s, r, b), 0u) << "round " << round;
    if (b > 1) EXPECT_GT(dropped_by(s, r, b - 1), 0u) << "round " << round;
  }
}

TEST(Recommend, TheSuggestionSparesTheChosenShare) {
  // 99 sources at 10 a second for a minute, one at 100.
  std::vector<std::vector<uint32_t>> series(99, std::vector<uint32_t>(60, 10));
  series.push_back(std::vector<uint32_t>(60, 100));
  const Recommendation r = recommend(series, 0.99);
  EXPECT_EQ(r.sources, 100u);
  EXPECT_EQ(r.packets, 99u * 600 + 6000);
  EXPECT_DOUBLE_EQ(r.peak_second.p50, 10);
  EXPECT_DOUBLE_EQ(r.peak_second.max, 100);
  EXPECT_DOUBLE_EQ(r.peak_minute.p99, 10);
  EXPECT_DOUBLE_EQ(r.rate, 10);
  EXPECT_EQ(r.burst, 10u);
  EXPECT_EQ(r.sources_dropped, 1u);
  EXPECT_EQ(r.packets_dropped, 60u * 90) << "the heavy one: 10 of its 100 a second";
  // Sparing every source: the heavy one's rate.
  const Recommendation all = recommend(series, 1.0);
  EXPECT_DOUBLE_EQ(all.rate, 100);
  EXPECT_EQ(all.sources_dropped, 0u);
}

TEST(Recommend, AShortWatchUsesItsWholeSpanAsTheMinute) {
  const Recommendation r = recommend({{0, 20, 0, 0}}, 1.0);
  EXPECT_DOUBLE_EQ(r.peak_minute.max, 5) << "20 in a 4-second span";
  EXPECT_DOUBLE_EQ(r.rate, 5);
  EXPECT_EQ(r.burst, 20u);
  EXPECT_EQ(r.sources_dropped, 0u);
}

}  // namespace
}  // namespace xt
