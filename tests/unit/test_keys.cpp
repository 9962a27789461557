// SPDX-License-Identifier: MIT
// The keyed hash that places sources in the hot cache, the bucket table and
// the rule cache (keys.h): where a source lands depends on the state's
// secret, no pair of addresses shares a slot whatever the key, and
// neighbouring addresses spread.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "keys.h"

namespace {

constexpr int kBits = 14;

uint32_t slot(const __u64 key[2], uint32_t v4) {
  xt_pkt pkt{};
  pkt.family = XT_FAMILY_V4;
  std::memcpy(pkt.addr, &v4, sizeof(v4));
  return XT_TOP_BITS(xt_hash_source(key, &pkt, 0), kBits);
}

TEST(Keys, WhereASourceLandsDependsOnTheSecret) {
  std::mt19937_64 rng(1);
  const __u64 a[2] = {rng(), rng()}, b[2] = {rng(), rng()};
  int same = 0;
  for (uint32_t i = 0; i < 10000; i++) same += slot(a, i) == slot(b, i);
  // By chance, 10000 / 2^14 of them; anything near 10000 means the key is ignored.
  EXPECT_LT(same, 30) << "two secrets place the same sources alike";
}

// A sum of products (a*m0 + b*m1) lets the top bits of two words cancel for
// every key: flipping bit 63 of both adds 2^63 twice. The xor-shifts between
// the multiplies must break that.
TEST(Keys, NoPairCollidesWhateverTheKey) {
  std::mt19937_64 rng(2);
  for (int k = 0; k < 1000; k++) {
    const __u64 key[2] = {rng(), rng()};
    const uint64_t x = rng(), y = rng(), z = rng();
    const uint64_t h = xt_hash_words(key, x, y, z);
    for (uint64_t bit : {1ull << 63, 1ull << 62, 1ull << 32, 1ull}) {
      EXPECT_NE(h, xt_hash_words(key, x ^ bit, y ^ bit, z)) << "bit " << bit;
      EXPECT_NE(h, xt_hash_words(key, x, y ^ bit, z ^ bit)) << "bit " << bit;
      EXPECT_NE(h, xt_hash_words(key, x ^ bit, y, z ^ bit)) << "bit " << bit;
    }
  }
}

// Any difference a multiply passes on whatever the key (a flip of its
// input's top bit flips its product's top bit alone) must not be one a
// later word can cancel. Every flip of one bit of one word, against every
// flip of up to two bits of another, under two keys: none collides under
// both. (The hash that folded each word into the running product had
// hash(a, b ^ 2^63, c ^ (2^63 | 2^31)) == hash(a, b, c) for every key:
// two IPv6 sources a spoofer picks shared every slot.)
TEST(Keys, NoFlipOfOneWordIsCancelledByAnother) {
  std::mt19937_64 rng(4);
  const __u64 k1[2] = {rng(), rng()}, k2[2] = {rng(), rng()};
  const uint64_t w[3] = {rng(), rng(), rng()};
  auto hash = [&](const __u64 key[2], const uint64_t v[3]) { return xt_hash_words(key, v[0], v[1], v[2]); };
  const uint64_t h1 = hash(k1, w), h2 = hash(k2, w);
  int collisions = 0;
  for (int one = 0; one < 3; one++)
    for (int other = 0; other < 3; other++) {
      if (other == one) continue;
      for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++)
          for (int k = j; k < 64; k++) {
            uint64_t v[3] = {w[0], w[1], w[2]};
            v[one] ^= 1ull << i;
            v[other] ^= (1ull << j) | (k == j ? 0 : 1ull << k);
            collisions += hash(k1, v) == h1 && hash(k2, v) == h2;
          }
    }
  EXPECT_EQ(collisions, 0) << "a pair of words that collides whatever the key";
}

TEST(Keys, NeighbouringAddressesSpread) {
  std::mt19937_64 rng(3);
  const __u64 key[2] = {rng(), rng()};
  std::vector<int> load(1 << kBits);
  const uint32_t n = 1 << 18;  // 16 a slot on average
  for (uint32_t i = 0; i < n; i++) load[slot(key, htonl(0x0a000000 + i))]++;
  EXPECT_LT(*std::max_element(load.begin(), load.end()), 48) << "a /14 of neighbours piles into one slot";
  EXPECT_GT(*std::min_element(load.begin(), load.end()), 0) << "a slot no address reaches";
}

}  // namespace
