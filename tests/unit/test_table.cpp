// SPDX-License-Identifier: MIT
// The source table's settings (table.h): the idle window as the data path
// keeps it (units of 2^shift ticks in 16-bit stamps) is never shorter than
// asked and at most two units longer, reads back as the seconds asked, and
// the checks that keep a state's table as it was made.
#include <gtest/gtest.h>

#include "slots.h"
#include "table.h"

namespace xt {
namespace {

xt_config config_for(uint32_t hz, uint32_t max_sources, uint32_t idle_seconds) {
  xt_config cfg{};
  cfg.hz = hz;
  cfg.max_sources = max_sources;
  const IdleWindow w = idle_window_for(hz, idle_seconds);
  cfg.used_shift = w.shift;
  cfg.used_idle = w.units;
  return cfg;
}

TEST(IdleWindow, EveryWindowFitsTheStampsAndReadsBack) {
  for (uint32_t hz : {100u, 250u, 300u, 1000u})
    for (uint32_t seconds = 1; seconds <= kMaxIdleSeconds; seconds++) {
      const IdleWindow w = idle_window_for(hz, seconds);
      const uint64_t ticks = uint64_t{seconds} * hz;
      SCOPED_TRACE(testing::Message() << hz << " Hz, " << seconds << " s");
      ASSERT_LE(w.units, 16384u) << "within a quarter of the stamps' 65536-unit cycle";
      if (w.shift) {
        ASSERT_GT((ticks + (1u << (w.shift - 1)) - 1) >> (w.shift - 1), 16384u) << "the smallest unit";
      }
      ASSERT_GE(uint64_t{w.units} << w.shift, ticks) << "never shorter than asked";
      ASSERT_LT(uint64_t{w.units} << w.shift, ticks + (1u << w.shift)) << "rounded up by less than a unit";
      ASSERT_EQ(idle_seconds_of(config_for(hz, 4096, seconds)), seconds);
    }
}

// What the data path decides (xt_used_recent): a slot used at tick t0 is
// still tracked at t0 + d for every d up to the window, and no longer once
// d is two units past it, wherever t0 falls in the stamps' cycle.
TEST(IdleWindow, ASlotIsTrackedForTheWholeWindowAndNotMuchLonger) {
  for (uint32_t hz : {100u, 1000u})
    for (uint32_t seconds : {1u, 3u, 60u, 61u, 3600u}) {
      const xt_config cfg = config_for(hz, 4096, seconds);
      const uint64_t window = uint64_t{seconds} * hz, unit = uint64_t{1} << cfg.used_shift;
      for (uint64_t t0 : {uint64_t{0}, uint64_t{12345}, (uint64_t{65535} << cfg.used_shift) + unit / 2,
                          (uint64_t{1} << 40) - 1}) {
        SCOPED_TRACE(testing::Message() << hz << " Hz, " << seconds << " s, t0 " << t0);
        const __u16 used = xt_used_now(&cfg, t0);
        for (uint64_t d : {uint64_t{0}, uint64_t{1}, window / 2, window - 1, window})
          EXPECT_TRUE(xt_used_recent(&cfg, used, xt_used_now(&cfg, t0 + d))) << "untracked " << d << " ticks on";
        for (uint64_t d : {window + 2 * unit, window + 3 * unit, 2 * window + 2 * unit})
          EXPECT_FALSE(xt_used_recent(&cfg, used, xt_used_now(&cfg, t0 + d))) << "still tracked " << d << " ticks on";
      }
    }
}

// The ageing of idle stamps (xt_age) comes often enough for every window:
// an aged stamp (the window and a unit old) is still short of the second
// before its wrap, which the walk takes for ahead of its clock, two
// periods later.
TEST(IdleWindow, TheStampsAreAgedBeforeTheyComeNearTheirWrap) {
  for (uint32_t hz : {100u, 250u, 300u, 1000u, 1200u})
    for (uint32_t seconds = 1; seconds <= kMaxIdleSeconds; seconds++) {
      const xt_config cfg = config_for(hz, 4096, seconds);
      const uint64_t every = age_every_seconds(cfg);
      SCOPED_TRACE(testing::Message() << hz << " Hz, " << seconds << " s, every " << every << " s");
      ASSERT_GE(every, 1u);
      ASSERT_LE(every, 30u);
      const uint64_t oldest = cfg.used_idle + 1 + xt_age_ahead(&cfg) + ((2 * every * hz) >> cfg.used_shift) + 1;
      ASSERT_LT(oldest, 65536u - xt_age_ahead(&cfg));
    }
  const xt_config dflt = config_for(1000, 4096, 60);
  EXPECT_EQ(age_every_seconds(dflt), 30u) << "the default window";
  EXPECT_EQ(age_every_seconds(config_for(1000, 4096, 16)), 23u) << "a cycle of 65 s";
  EXPECT_EQ(xt_age_ahead(&dflt), 250u) << "a second of 4 ms units";
}

TEST(TableSettings, AStateKeepsTheTableItWasMadeWith) {
  const xt_config cfg = config_for(250, 4096, 60);
  EXPECT_TRUE(check_same_table(cfg, {}, "/run/x").has_value()) << "nothing asked";
  EXPECT_TRUE(check_same_table(cfg, {4096, 60}, "/run/x").has_value());
  EXPECT_TRUE(check_same_table(cfg, {4000, std::nullopt}, "/run/x").has_value()) << "made rounded up: 4000 is 4096";
  auto bigger = check_same_table(cfg, {8192, std::nullopt}, "/run/x");
  ASSERT_FALSE(bigger.has_value());
  EXPECT_EQ(bigger.error().exit_code(), 1);
  EXPECT_NE(bigger.error().message.find("already holds 4096 sources"), std::string::npos) << bigger.error().message;
  auto shorter = check_same_table(cfg, {std::nullopt, 5}, "/run/x");
  ASSERT_FALSE(shorter.has_value());
  EXPECT_NE(shorter.error().message.find("untracks a source after 1min"), std::string::npos)
      << shorter.error().message;
}

TEST(TableSettings, OutOfRangeIsRefusedAndSaysWhere) {
  EXPECT_FALSE(check_max_sources("max_sources", XT_MIN_MAX_SOURCES - 1).has_value());
  EXPECT_FALSE(check_max_sources("max_sources", uint64_t{XT_MAX_MAX_SOURCES} + 1).has_value());
  EXPECT_EQ(check_max_sources("max_sources", XT_MIN_MAX_SOURCES).value(), uint32_t{XT_MIN_MAX_SOURCES});
  for (const char* bad : {"0", "off", "2h", "soon", "-1s"}) {
    auto r = parse_idle("--idle", bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().exit_code(), 2);
    EXPECT_NE(r.error().message.find("--idle"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(parse_idle("idle", "1s").value(), 1u);
  EXPECT_EQ(parse_idle("idle", "1h").value(), 3600u);
  // One setting from each: what is given wins, the rest from the fallback.
  const TableSettings mixed = TableSettings{8192, std::nullopt}.or_else({4096, 5});
  EXPECT_EQ(mixed.max_sources, 8192u);
  EXPECT_EQ(mixed.idle_seconds, 5u);
}

}  // namespace
}  // namespace xt
