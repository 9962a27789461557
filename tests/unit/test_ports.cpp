// SPDX-License-Identifier: MIT
// The rules' port ranges (userspace/lib/ports.h): nested or apart, at most
// XT_MAX_PORT_NESTING deep, and each port mapped to the narrowest range
// holding it, as the data path walks them.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "ports.h"

namespace xt {
namespace {

constexpr uint8_t kTcp = XT_PORT_SLOT_TCP, kUdp = XT_PORT_SLOT_UDP;

uint16_t add(PortRangeTable& t, uint8_t slot, uint16_t lo, uint16_t hi) {
  auto id = add_port_range(t, slot, lo, hi);
  EXPECT_TRUE(id.has_value()) << id.error().message;
  return id.value_or(0);
}

TEST(PortRanges, EachPortMapsToTheNarrowestRangeAndEachRangeToItsParent) {
  PortRangeTable t = empty_port_ranges();
  const uint16_t wide = add(t, kUdp, 1, 1023);
  const uint16_t dns = add(t, kUdp, 53, 53);
  const uint16_t mid = add(t, kUdp, 50, 60);  // between the two: adopts 53
  EXPECT_EQ(add(t, kUdp, 53, 53), dns) << "a range in use is found, not added again";
  EXPECT_EQ(t[dns].parent, mid);
  EXPECT_EQ(t[mid].parent, wide);
  EXPECT_EQ(t[wide].parent, 0);
  const auto map = port_map(t, kUdp);
  EXPECT_EQ(map[53], dns);
  EXPECT_EQ(map[52], mid);
  EXPECT_EQ(map[61], wide);
  EXPECT_EQ(map[0], 0);
  EXPECT_EQ(map[1024], 0);
  EXPECT_EQ(port_map(t, kTcp)[53], 0) << "TCP's ports are another slot";
  remove_port_range(t, mid);
  EXPECT_EQ(t[dns].parent, wide) << "its child moves up";
  EXPECT_EQ(t[mid].lo, 50) << "a removed range keeps its fields for packets in flight";
  EXPECT_EQ(port_map(t, kUdp)[52], wide);
  EXPECT_EQ(add(t, kTcp, 100, 200), mid) << "its id is free again";
}

TEST(PortRanges, OverlapsAndDeepNestingAreRefused) {
  PortRangeTable t = empty_port_ranges();
  add(t, kTcp, 1000, 2000);
  const PortRangeTable before = t;
  auto overlap = add_port_range(t, kTcp, 1500, 3000);
  ASSERT_FALSE(overlap.has_value());
  EXPECT_NE(overlap.error().message.find("1000-2000"), std::string::npos) << overlap.error().message;
  EXPECT_EQ(std::memcmp(before.data(), t.data(), t.size() * sizeof(t[0])), 0) << "nothing changed";
  add(t, kUdp, 1500, 3000);  // UDP's ranges do not meet TCP's
  add(t, kTcp, 1100, 1900);
  add(t, kTcp, 1200, 1800);
  add(t, kTcp, 1300, 1700);  // four deep
  auto fifth = add_port_range(t, kTcp, 1400, 1600);
  ASSERT_FALSE(fifth.has_value());
  EXPECT_NE(fifth.error().message.find("4 deep"), std::string::npos) << fifth.error().message;
  auto around = add_port_range(t, kTcp, 900, 2100);
  EXPECT_FALSE(around.has_value()) << "around the four is five deep too";
  add(t, kTcp, 1250, 1290);  // another range inside the third, apart from the fourth: four deep
}

// Each range's parent is the narrowest other range of its slot holding it,
// checked against every pair, after each of many adds and removals of
// nested and disjoint ranges (the parents are found in one sorted pass).
TEST(PortRanges, EveryParentIsTheNarrowestHolderAfterAnyChange) {
  PortRangeTable t = empty_port_ranges();
  std::mt19937 rng(7);
  int added = 0, removed = 0;
  for (int step = 0; step < 800; step++) {
    const uint8_t slot = rng() % 2 ? kTcp : kUdp;
    if (rng() % 4 == 0) {
      std::vector<uint16_t> in_use;
      for (size_t id = 1; id < t.size(); id++)
        if (t[id].used) in_use.push_back(static_cast<uint16_t>(id));
      if (!in_use.empty()) {
        remove_port_range(t, in_use[rng() % in_use.size()]);
        removed++;
      }
    } else {
      // Ranges of widths 1 to 4096 on boundaries of their width: nested or apart.
      const uint32_t width = 1u << (rng() % 13);
      const uint32_t lo = (rng() % (65536 / width)) * width;
      added += add_port_range(t, slot, static_cast<uint16_t>(lo), static_cast<uint16_t>(lo + width - 1)).has_value();
    }
    for (size_t id = 1; id < t.size(); id++) {
      if (!t[id].used) continue;
      uint16_t want = 0;
      for (size_t o = 1; o < t.size(); o++) {
        const xt_port_range &r = t[id], &h = t[o];
        if (o == id || !h.used || h.slot != r.slot || h.lo > r.lo || h.hi < r.hi) continue;
        if (!want || h.hi - h.lo < t[want].hi - t[want].lo) want = static_cast<uint16_t>(o);
      }
      ASSERT_EQ(t[id].parent, want) << "range " << id << " after step " << step;
    }
  }
  EXPECT_GT(added, 300);
  EXPECT_GT(removed, 100);
}

}  // namespace
}  // namespace xt
