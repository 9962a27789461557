// SPDX-License-Identifier: MIT
// The rules' port ranges (userspace/lib/ports.h): nested or apart, at most
// XT_MAX_PORT_NESTING deep, and each port mapped to the narrowest range
// holding it, as the data path walks them.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace xt
