// SPDX-License-Identifier: MIT
// Attack scale through BPF_PROG_TEST_RUN: a botnet of tracked sources, each
// over its limit, held exactly to it while most of its packets are dropped
// by the hot cache; the new-source budget exact once the table is full; an
// established client untouched by either. (Speed is the benchmark's.)
#include <arpa/inet.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sstream>

#include <gtest/gtest.h>

#include "program.h"
#include "stats.h"

namespace xt::test {
namespace {

class Scale : public Program {};

// The bucket key of IPv4 source addr under rule r.
xt_bucket_key key_of(const xt_rule& r, const std::string& addr) {
  xt_pkt src{};
  src.family = XT_FAMILY_V4;
  EXPECT_EQ(inet_pton(AF_INET, addr.c_str(), src.addr), 1);
  xt_bucket_key k;
  xt_bucket_key_for(&src, r.id, r.per_len, &k);
  return k;
}

// 20000 sources, each 1/s burst 1, ten packets each within one second, then
// ten more a second later: each passes exactly once a second, and every drop
// is counted, per rule at once and per source once the hot cache settles.
// 20000 sources over 8192 two-way sets of the hot cache: most sets get three
// or more, whose sources take the slow path every time: still exact. (How
// full the table may be is the next test's.)
TEST_F(Scale, BotnetSourcesAreEachHeldToTheirLimit) {
  load(65536);  // 8192 hot sets a CPU
  rule("198.18.0.0/15", "1/s", 1, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  const int n = 20000;
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < n; i++) frames.push_back(Packet().ipv4(nth_source(i)).build());
  const auto legit = Packet().ipv4("198.19.250.250").build();
  rule("198.19.250.250/32", "1000/s", 1000);
  int legit_sent = 0, legit_passed = 0;

  uint64_t passed = 0;
  // The first second all together; the second, the odd sources first, then
  // the even ones: in a set of three, a source that had no entry takes over
  // the expired entry of one not back yet, whose drops must not be lost.
  for (int half : {-1, 1, 0}) {
    const uint64_t start = half < 0 ? 0 : kSec + (half == 0 ? 100 : 0);
    for (int round = 0; round < 10; round++) {
      const uint64_t now = start + 5 * round;
      for (int i = 0; i < n; i++) {
        if (half >= 0 && i % 2 != half) continue;
        passed += run(frames[i], now) == XDP_PASS;
        if (i % 1000 == 0) {  // an established client, under its 1000/s
          legit_sent++;
          legit_passed += run(legit, now) == XDP_PASS;
        }
      }
    }
    if (half != 1) {
      EXPECT_EQ(passed, (half < 0 ? 1u : 2u) * n) << "each source passes once a second, no more, no less";
    }
  }
  EXPECT_EQ(legit_passed, legit_sent) << "the established client lost nothing";
  const xt_rule_stats s = rule_stats("198.18.0.0/15");
  EXPECT_EQ(s.passed_packets, 2u * n);
  EXPECT_EQ(s.dropped_packets, 18u * n);
  EXPECT_EQ(counter(XT_DROP_NO_STATE), 0u);

  // Per source: what the buckets hold and what the hot cache has not yet
  // added to them make the 18 drops each, exactly.
  auto pending = state_->hot_pending();
  ASSERT_TRUE(pending.has_value()) << pending.error().message;
  std::map<std::string, uint64_t> drops;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    drops[format_addr(e.key.family, e.key.addr)] = e.bucket.dropped_packets + pending->of(e.key);
  }));
  int exact = 0;
  for (int i = 0; i < n; i++) exact += drops[nth_source(i)] == 18;
  EXPECT_EQ(exact, n) << "every source's own drop count is exact";
}

// A botnet of four fifths of --max-sources (the benchmark's 200k of the
// default 262,144 is 0.76), every source tracked and held to one packet an
// hour over four rounds: no set overflows, so no source is evicted and
// comes back with a fresh burst. (With sets of eight 32-bit-fingerprinted
// ways, one a source, three quarters saw 3,265 evictions and 15,358 packets
// pass where 12,288 should; the benchmark's 200k, 258,188 where 200,000
// should. With sets filled to their last way before spilling, three
// quarters overflowed a pair of sets in about one run of 300, four fifths
// in one of 150, by tools/bench/placement.py:
// Scale.TwoFullSetsSideBySideShareTheRoomBeyondThem.)
TEST_F(Scale, BotnetOfFourFifthsOfTheTableIsHeldExactly) {
  const uint32_t max = 16384, n = max * 4 / 5;
  load(max);
  rule("198.18.0.0/15", "1/hour", 1, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < n; i++) frames.push_back(Packet().ipv4(nth_source(static_cast<int>(i))).build());
  uint64_t passed = 0;
  for (int round = 0; round < 4; round++)
    for (uint32_t i = 0; i < n; i++) passed += run(frames[i], static_cast<uint64_t>(round) * kSec + i / 100) == XDP_PASS;
  EXPECT_EQ(passed, n) << "each source passed once, the first time";
  EXPECT_EQ(counter(XT_SOURCES_EVICTED), 0u);
  EXPECT_EQ(buckets(), n);
}

// The table full of tracked sources, the new-source budget still admits
// exactly its burst, then exactly its rate, and never fails for want of
// room (a newcomer takes the least recently used way of its set).
TEST_F(Scale, NewSourceBudgetIsExactOnceTheTableIsFull) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "100/s", 10, [](RuleSpec& s) { s.new_rate = *parse_rate("500/s"); });
  int i = 0, admitted = 0;
  // Fill: a newcomer a tick for 8 s, 500 a second admitted: four times
  // what the table holds.
  for (uint64_t now = 0; now < 8 * kSec; now++) admitted += run(Packet().ipv4(nth_source(i++)).build(), now) == XDP_PASS;
  EXPECT_GE(admitted, 4 * XT_MIN_MAX_SOURCES);
  // Full as a set-associative table is: a set whose ways and the
  // next set's are taken evicts, though others still have room.
  const size_t full = buckets();
  EXPECT_GT(full, XT_MIN_MAX_SOURCES * 3 / 4) << "the table is full";

  // Two seconds on, the budget is full again: 3000 newcomers at one tick.
  int burst = 0;
  for (int k = 0; k < 3000; k++) burst += run(Packet().ipv4(nth_source(i++)).build(), 10 * kSec) == XDP_PASS;
  EXPECT_EQ(burst, 500) << "exactly the budget's burst";
  // Then four newcomers a tick for one second: exactly one every 2 ticks.
  int paced = 0;
  for (uint64_t now = 10 * kSec + 1; now <= 11 * kSec; now++)
    for (int k = 0; k < 4; k++) paced += run(Packet().ipv4(nth_source(i++)).build(), now) == XDP_PASS;
  EXPECT_EQ(paced, 500) << "exactly its rate";
  EXPECT_EQ(counter(XT_DROP_NO_STATE), 0u) << "admitting never failed for want of room";
}

// The arrays the data path reads a line of at random start on a page, so
// that an element of 64 bytes is one cache line, not two: a plain array's
// values start 312 bytes into its allocation on kernel 6.18 (after struct
// bpf_array), an mmapable one's on a page. The proof: each maps from offset
// 0, and what is written to its element 1 is there at one element's size.
// (What it buys is the benchmark's: docs/design.md, "Eleventh round".)
TEST_F(Scale, TheTablesLinesAreCacheLines) {
  load(XT_MIN_MAX_SOURCES);
  for (bpf_map* m : {skel_->maps.xt_buckets, skel_->maps.xt_bucket_tags, skel_->maps.xt_bucket_marks,
                     skel_->maps.xt_hot, skel_->maps.xt_known, skel_->maps.xt_rule_state}) {
    const std::string name = bpf_map__name(m);
    const size_t value = bpf_map__value_size(m), page = sysconf(_SC_PAGESIZE);
    EXPECT_TRUE(value % 64 == 0 || 64 % value == 0) << name << ": " << value << " bytes, not lines nor parts of one";
    const size_t len = (value * bpf_map__max_entries(m) + page - 1) / page * page;
    void* at = mmap(nullptr, len, PROT_READ, MAP_SHARED, bpf_map__fd(m), 0);
    ASSERT_NE(at, MAP_FAILED) << name << " cannot be mapped: its values start wherever struct bpf_array ends";
    const std::vector<uint8_t> v(value, 0xa5);
    const uint32_t one = 1;
    EXPECT_EQ(bpf_map_update_elem(bpf_map__fd(m), &one, v.data(), BPF_ANY), 0) << name;
    EXPECT_EQ(std::memcmp(static_cast<const uint8_t*>(at) + value, v.data(), value), 0) << name;
    munmap(at, len);
  }
}

// The marks are read before the tags and a key whose mark is missing is
// taken for a newcomer: after a table's worth of admissions four times over
// (spills into the next set, evictions), every way holding a source has that
// source's mark, and every set that spilled says so in its marks too.
TEST_F(Scale, TheMarksFollowTheTags) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "100/s", 10, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  for (int i = 0; i < 4 * XT_MIN_MAX_SOURCES; i++) ASSERT_EQ(run(Packet().ipv4(nth_source(i)).build(), i / 8), XDP_PASS);
  ASSERT_GT(counter(XT_SOURCES_EVICTED), 0u) << "the table overflowed";
  const xt_config cfg = state_->config().value();
  const int sets_fd = bpf_map__fd(skel_->maps.xt_buckets), tags_fd = bpf_map__fd(skel_->maps.xt_bucket_tags),
            marks_fd = bpf_map__fd(skel_->maps.xt_bucket_marks);
  const uint32_t sets = 1u << cfg.bucket_bits;
  std::vector<xt_set_marks> marks(sets);
  for (uint32_t idx = 0; idx < sets; idx++) ASSERT_EQ(bpf_map_lookup_elem(marks_fd, &idx, &marks[idx]), 0);
  int ways = 0, spilled_in = 0, spilled = 0;
  for (uint32_t idx = 0; idx < sets; idx++) {
    xt_bucket_set set{};
    xt_set_tags tags{};
    ASSERT_EQ(bpf_map_lookup_elem(sets_fd, &idx, &set), 0);
    ASSERT_EQ(bpf_map_lookup_elem(tags_fd, &idx, &tags), 0);
    for (int w = 0; w < XT_BUCKET_WAYS; w++) {
      if (!xt_tag_fp(&tags, w) || !set.way[w].key.family) continue;
      const uint64_t h = xt_hash_bucket(cfg.hash_key, &set.way[w].key);
      const uint32_t home = xt_home_set(h, cfg.bucket_bits);
      ASSERT_EQ(xt_tag_fp(&tags, w), xt_fp_of(h)) << "set " << idx << " way " << w;
      ASSERT_EQ(marks[idx].way[w], xt_mark_of(h)) << "set " << idx << " way " << w;
      // What the data path asks of the key's home set and the next.
      ASSERT_TRUE(xt_marks_may_hold(&marks[home], &marks[(home + 1) % sets], xt_mark_of(h)))
          << "set " << idx << " way " << w << ", home set " << home;
      ways++;
      spilled_in += home != idx;
    }
    if (tags.spilled) {
      ASSERT_EQ(marks[idx].spilled, 1) << "set " << idx;
      spilled++;
    }
  }
  EXPECT_GT(ways, XT_MIN_MAX_SOURCES * 3 / 2) << "nearly every way taken";
  EXPECT_GT(spilled, 0) << "some sets spilled";
  EXPECT_GT(spilled_in, 0) << "some sources live in the set after their home";
}

// A newcomer that takes the slot of a source quiet past the idle window
// costs that source nothing it would not lose anyway; one that takes the
// slot of a source still sending (a full set's least recently used) starts
// that source's limit over when it comes back. Those are counted apart, so
// that status and the metrics can say the table is too small for the
// sources sending, which the count of all evictions cannot.
TEST_F(Scale, EvictionsOfSourcesStillSendingAreCountedApart) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "100/s", 10, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  const int flood = 4 * XT_MIN_MAX_SOURCES;  // more than twice the table's ways
  for (int i = 0; i < flood; i++) ASSERT_EQ(run(Packet().ipv4(nth_source(i)).build(), i / 64), XDP_PASS);  // 64 ms
  const uint64_t active = counter(XT_SOURCES_EVICTED);
  ASSERT_GT(active, 0u) << "the table overflowed";
  EXPECT_EQ(counter(XT_SOURCES_EVICTED_ACTIVE), active) << "every source evicted had sent within the window";
  // Past the idle window, a quarter of the table's worth of newcomers: each
  // takes an idle slot (of a set full of quiet sources), none a live one.
  const int later = XT_MIN_MAX_SOURCES / 4;
  const uint64_t after = (XT_DEFAULT_IDLE_SECONDS + 1) * kSec;  // a second past the window
  for (int i = flood; i < flood + later; i++) ASSERT_EQ(run(Packet().ipv4(nth_source(i)).build(), after), XDP_PASS);
  EXPECT_EQ(counter(XT_SOURCES_EVICTED), active + later) << "each newcomer took a quiet source's slot";
  EXPECT_EQ(counter(XT_SOURCES_EVICTED_ACTIVE), active) << "and none of them is counted as still sending";
}

// `count` sources (nth_source) whose home set under the first rule is
// nth_source(0)'s, plus `after` (from 0) the set after it.
std::vector<std::string> homed(const State& state, uint32_t* home, size_t count, int after = 0) {
  const xt_config cfg = state.config().value();
  const xt_rule r = state.rules().value().at(0).rule;
  auto home_of = [&](const std::string& addr) {
    const xt_bucket_key k = key_of(r, addr);
    return xt_home_set(xt_hash_bucket(cfg.hash_key, &k), cfg.bucket_bits);
  };
  std::vector<std::string> same;
  const uint32_t set = (home_of(nth_source(0)) + after) & ((1u << cfg.bucket_bits) - 1);
  for (int i = 0; same.size() < count && i < 200000; i++)
    if (home_of(nth_source(i)) == set) same.push_back(nth_source(i));
  if (home) *home = set;
  return same;
}

// Sixteen sources of one home set: one more than the set has ways. Its
// index in *home.
std::vector<std::string> one_home(const State& state, uint32_t* home = nullptr) {
  return homed(state, home, XT_BUCKET_WAYS + 1);
}

// Fifteen sources of one set come first, then sixteen of the set before
// it: thirty-one sources over three sets of fifteen ways, and none is
// evicted. Filled to its last way first, the later set took all fifteen
// of its own, and the sixteenth of the set before, whose own was full too,
// evicted one of them, though the set after had room: a botnet of three
// quarters of the table overflowed such a pair in about one table of
// thirty, its sources there taking turns evicting each other.
TEST_F(Scale, TwoFullSetsSideBySideShareTheRoomBeyondThem) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "1/s", 1, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  uint32_t first = 0, second = 0;
  const std::vector<std::string> later = homed(*state_, &second, XT_BUCKET_WAYS, 1);
  const std::vector<std::string> earlier = homed(*state_, &first, XT_BUCKET_WAYS + 1);
  ASSERT_EQ(later.size(), XT_BUCKET_WAYS + 0u);
  ASSERT_EQ(earlier.size(), XT_BUCKET_WAYS + 1u);
  for (const auto& a : later) ASSERT_EQ(run(Packet().ipv4(a).build(), 0), XDP_PASS) << a << " admitted";
  for (const auto& a : earlier) ASSERT_EQ(run(Packet().ipv4(a).build(), 0), XDP_PASS) << a << " admitted";
  EXPECT_EQ(counter(XT_SOURCES_EVICTED), 0u) << "no source in use pushed out";
  EXPECT_EQ(buckets(), 2 * XT_BUCKET_WAYS + 1u);
  // Each held to its one token: every one found, none back with a burst.
  for (const auto& a : later) EXPECT_EQ(run(Packet().ipv4(a).build(), 1), XDP_DROP) << a;
  for (const auto& a : earlier) EXPECT_EQ(run(Packet().ipv4(a).build(), 1), XDP_DROP) << a;
  EXPECT_EQ(counter(XT_DROP_LIMIT), 2 * XT_BUCKET_WAYS + 1u);
}

// Two CPUs meter one source: one reads the clock just past a stamp unit's
// end and stamps the slot, the other read it just before and then finds the
// stamp a unit ahead of its clock. That stamp read as idle for a whole
// cycle: the source was taken for untracked, and under a spent budget its
// packet was dropped as a new source's.
TEST_F(Scale, AStampAheadOfThisCPUsClockIsInUse) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "100/s", 10, [](RuleSpec& s) {
    s.new_rate = *parse_rate("1/day");
    s.remember = 0;
  });
  const uint64_t unit = uint64_t{1} << state_->config().value().used_shift;  // ticks a stamp unit
  const auto frame = Packet().ipv4("198.18.0.1").build();
  ASSERT_EQ(run(frame, 10 * unit), XDP_PASS) << "admitted: the day's budget spent";
  EXPECT_EQ(run(frame, 10 * unit - 1), XDP_PASS) << "on a CPU a unit behind the stamp: still tracked";
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 0u);
}

// The same race on a newcomer's path: a newcomer on the CPU whose clock is
// behind took a way whose stamp was ahead of it for idle, and evicted the
// source that had just been used, with a set free beside it.
TEST_F(Scale, ANewcomerDoesNotTakeASlotStampedAheadOfItsClock) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "100/s", 10, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  const uint64_t unit = uint64_t{1} << state_->config().value().used_shift;
  const std::vector<std::string> same = one_home(*state_);
  ASSERT_EQ(same.size(), XT_BUCKET_WAYS + 1u);
  for (size_t i = 0; i < XT_BUCKET_WAYS; i++) ASSERT_EQ(run(Packet().ipv4(same[i]).build(), 10 * unit), XDP_PASS);
  ASSERT_EQ(run(Packet().ipv4(same.back()).build(), 10 * unit - 1), XDP_PASS) << "the sixteenth, a unit behind";
  EXPECT_EQ(counter(XT_SOURCES_EVICTED), 0u) << "it went to the next set, as it would a unit later";
  EXPECT_EQ(buckets(), XT_BUCKET_WAYS + 1u);
}

// Sixteen sources of one home set: the last of them go to the next set
// (from the eleventh on: ten ways in use, and the next set emptier), where only the
// next set's marks say they are. Their next packets are metered by their own
// buckets (over 1/s: dropped), not taken for newcomers' (which the budget
// would admit with a fresh burst).
TEST_F(Scale, ASourceInTheNextSetIsFoundThere) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "1/s", 1, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  uint32_t home = 0;
  const std::vector<std::string> same = one_home(*state_, &home);
  ASSERT_EQ(same.size(), XT_BUCKET_WAYS + 1u);
  for (const auto& a : same) ASSERT_EQ(run(Packet().ipv4(a).build(), 0), XDP_PASS) << a << " admitted";
  xt_set_marks marks{};
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xt_bucket_marks), &home, &marks), 0);
  EXPECT_EQ(marks.spilled, 1) << "the home set spilled";
  const uint64_t admitted = counter(XT_SOURCES_ADMITTED);
  for (const auto& a : same) EXPECT_EQ(run(Packet().ipv4(a).build(), 1), XDP_DROP) << a << ": its one token spent";
  EXPECT_EQ(counter(XT_SOURCES_ADMITTED), admitted) << "none taken for a newcomer";
  EXPECT_EQ(counter(XT_DROP_LIMIT), XT_BUCKET_WAYS + 1u);
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 0u);
}

// A source in the next set that goes quiet past the idle window keeps its
// slot there, and its bucket when the budget lets it back, as one in its
// home set does. Before, the home set looked in the next one only while its
// last spill was within the window: the source was not found, came back to
// a fresh bucket (a spent 1/hour quota full again) and took a second slot.
TEST_F(Scale, ASourceInTheNextSetKeepsItsBucketThroughAQuietSpell) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "1/hour", 1, [](RuleSpec& s) {
    s.new_rate = *parse_rate("1000000/s");
    s.remember = 0;
  });
  const std::vector<std::string> same = one_home(*state_);
  ASSERT_EQ(same.size(), XT_BUCKET_WAYS + 1u);
  for (const auto& a : same) ASSERT_EQ(run(Packet().ipv4(a).build(), 0), XDP_PASS) << a << " admitted";
  const uint64_t admitted = counter(XT_SOURCES_ADMITTED);
  const uint64_t later = (XT_DEFAULT_IDLE_SECONDS + 30) * kSec;
  for (const auto& a : same)
    EXPECT_EQ(run(Packet().ipv4(a).build(), later), XDP_DROP) << a << ": back after a quiet spell, its hour's token spent";
  EXPECT_EQ(counter(XT_SOURCES_ADMITTED), admitted) << "no source given a second slot";
  EXPECT_EQ(counter(XT_DROP_LIMIT), XT_BUCKET_WAYS + 1u);
}

// Two sources of one set whose keyed hashes share the 16-bit fingerprint
// (a set in about 1,200 holds such a pair): the one in the later way is found
// past the other, keeps its bucket and is never taken for a newcomer. Before
// the lookup looked past a fingerprint's first way, B here was untracked for
// good: each packet a new source, turned away by a spent budget.
TEST_F(Scale, SourcesSharingAFingerprintAreBothFound) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "1/s", 1, [](RuleSpec& s) { s.new_rate = *parse_rate("1/hour"); });
  const std::string b = "198.18.0.2";
  ASSERT_EQ(run(Packet().ipv4(b).build(), 0), XDP_PASS) << "B admitted: the budget's one token";

  // Put A's slot, with B's fingerprint, in the way before B's.
  const xt_config cfg = state_->config().value();
  const xt_rule r = state_->rules().value().at(0).rule;
  const xt_bucket_key kb = key_of(r, b), ka = key_of(r, "198.18.0.1");
  const uint64_t h = xt_hash_bucket(cfg.hash_key, &kb);
  const uint32_t idx = xt_home_set(h, cfg.bucket_bits);
  const uint16_t fp = xt_fp_of(h);
  const int sets_fd = bpf_map__fd(skel_->maps.xt_buckets), tags_fd = bpf_map__fd(skel_->maps.xt_bucket_tags),
            marks_fd = bpf_map__fd(skel_->maps.xt_bucket_marks);
  xt_bucket_set set{};
  xt_set_tags tags{};
  xt_set_marks marks{};
  ASSERT_EQ(bpf_map_lookup_elem(sets_fd, &idx, &set), 0);
  ASSERT_EQ(bpf_map_lookup_elem(tags_fd, &idx, &tags), 0);
  ASSERT_EQ(bpf_map_lookup_elem(marks_fd, &idx, &marks), 0);
  const int w = xt_locate(&tags, nullptr, fp, XT_NOWHERE);
  ASSERT_EQ(w, XT_PLACE(0, 0)) << "B alone in its set";
  ASSERT_EQ(marks.way[0], xt_mark_of(h)) << "B's mark where B is";
  set.way[1] = set.way[0];
  tags.way[1] = tags.way[0];
  marks.way[1] = marks.way[0];
  set.way[0].key = ka;
  ASSERT_EQ(bpf_map_update_elem(sets_fd, &idx, &set, BPF_ANY), 0);
  ASSERT_EQ(bpf_map_update_elem(tags_fd, &idx, &tags, BPF_ANY), 0);
  ASSERT_EQ(bpf_map_update_elem(marks_fd, &idx, &marks, BPF_ANY), 0);

  EXPECT_EQ(run(Packet().ipv4(b).build(), 10), XDP_DROP) << "its one token spent";
  EXPECT_EQ(counter(XT_DROP_LIMIT), 1u) << "dropped by its own bucket";
  EXPECT_EQ(run(Packet().ipv4(b).build(), kSec + 10), XDP_PASS) << "a second later, its token back";
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 0u) << "never taken for a newcomer";
  const auto found = state_->find_bucket(kb);
  ASSERT_TRUE(found.has_value()) << found.error().message;
  EXPECT_TRUE(found->has_value()) << "the controller finds it too";
  EXPECT_EQ(buckets(), 2u) << "no second slot made for B";
}

// The pending drops are a sorted vector (32 bytes an entry, where a map's
// node took 80): a source two CPUs hold drops for is found once, with both.
TEST(PendingDropsTest, AKeyOfSeveralCpusIsFoundOnceWithTheirSum) {
  auto key = [](uint8_t last) {
    xt_bucket_key k{};
    k.rule_id = 3;
    k.family = XT_FAMILY_V4;
    k.per_len = 32;
    k.addr[3] = last;
    return k;
  };
  PendingDrops p;
  p.add(key(9), 5);
  p.add(key(1), 7);
  p.add(key(9), 40);  // another CPU's entry for the same source
  p.finish();
  EXPECT_EQ(p.size(), 2u);
  EXPECT_EQ(p.of(key(9)), 45u);
  EXPECT_EQ(p.of(key(1)), 7u);
  EXPECT_EQ(p.of(key(2)), 0u);
}

// top's columns line up under their headings, whatever the rules' names:
// a name longer than 20 characters moved the columns after it, and the
// dry-run mark put LEFT a column right of its heading.
TEST(TopText, ColumnsLineUpUnderTheirHeadings) {
  TopRow a{.source = "198.18.0.9/32", .rule = "198.18.0.0/15", .passed_packets = 5, .dropped_packets = 7};
  a.left = {{"10/s", false, 3}};
  TopRow b{.source = "2001:db8:abcd:12::/64", .rule = "2001:db8:abcd:12::/64 tcp/1000-2000 syn", .passed_packets = 1,
           .dropped_packets = 123456, .dry_run = true};
  b.left = {{"10/s", false, 0}};
  std::istringstream lines(top_text({a, b}));
  std::string head, first, second;
  std::getline(lines, head);
  std::getline(lines, first);
  std::getline(lines, second);
  for (const std::string& row : {first, second}) {
    EXPECT_EQ(row.size(), head.size()) << "LEFT ends where its heading does:\n" << head << "\n" << row;
    EXPECT_EQ(row.find_last_not_of(' ', head.find("DROPPED") + 6), head.find("DROPPED") + 6)
        << "DROPPED ends under its heading:\n" << head << "\n" << row;
  }
}

// stats' counts line up under PACKETS and BYTES, every reason's too:
// "dropped, table refused insert" was a character longer than its column.
TEST(StatsText, CountsLineUpUnderTheirHeadings) {
  Stats stats;
  stats.reasons.assign(XT_COUNTERS, xt_count{123, 4567});
  std::istringstream lines(stats_text(stats));
  std::string head, row;
  std::getline(lines, head);
  const size_t packets = head.find("PACKETS") + 6, bytes = head.find("BYTES") + 4;
  int rows = 0;
  while (std::getline(lines, row) && !row.empty()) {
    rows++;
    EXPECT_EQ(row.size(), head.size()) << head << "\n" << row;
    EXPECT_EQ(row.find_last_not_of(' ', packets), packets) << "PACKETS ends under its heading:\n" << head << "\n" << row;
  }
  EXPECT_GT(rows, XT_REASONS);
  EXPECT_EQ(bytes + 1, head.size());
}

// `stats --watch` gives the rate of evictions of sources still sending, the
// live sign of a table too small for them, and its text says so only then.
TEST(StatsText, TheWatchSaysWhenSourcesStillSendingAreEvicted) {
  Stats before, after;
  before.reasons.assign(XT_COUNTERS, xt_count{});
  after.reasons = before.reasons;
  EXPECT_EQ(stats_rate_json(before, after, 2.0)["sources_evicted_active_per_second"], 0.0);
  EXPECT_EQ(stats_rate_text(before, after, 2.0).find("too small"), std::string::npos);
  after.reasons[XT_SOURCES_EVICTED].packets = 5000;
  after.reasons[XT_SOURCES_EVICTED_ACTIVE].packets = 3000;
  EXPECT_EQ(stats_rate_json(before, after, 2.0)["sources_evicted_active_per_second"], 1500.0);
  EXPECT_NE(stats_rate_text(before, after, 2.0).find("1500 evictions/s of sources still sending"),
            std::string::npos)
      << stats_rate_text(before, after, 2.0);
}

// A count read lower than the interval before (a restore writes the
// per-CPU counters back while the data path counts) is no rate: the
// unsigned difference printed 1.8e19 packets a second.
TEST(StatsText, ACountThatWentBackIsNoRate) {
  Stats before, after;
  before.reasons.assign(XT_COUNTERS, xt_count{});
  after.reasons = before.reasons;
  before.reasons[XT_PASS_LIMIT] = {10, 1000};
  after.reasons[XT_PASS_LIMIT] = {5, 500};
  const auto j = stats_rate_json(before, after, 1.0);
  EXPECT_EQ(j["passed_pps"], 0.0);
  EXPECT_EQ(j["passed_bps"], 0.0);
}

// top keeps `limit` rows, not one per tracked source: the most dropping
// first, and with a snapshot, the most dropping since it.
TEST_F(Scale, TopKeepsTheMostDroppingOnlyAndRatesSinceTheLastRead) {
  load(XT_MIN_MAX_SOURCES);
  rule("198.18.0.0/15", "1/hour", 1, [](RuleSpec& s) { s.new_rate = *parse_rate("1000000/s"); });
  const int n = 300;
  for (int i = 0; i < n; i++) EXPECT_EQ(passed(Packet().ipv4(nth_source(i)).build(), i + 1), 1);
  auto rows = read_top(*state_, 3);
  ASSERT_TRUE(rows.has_value()) << rows.error().message;
  ASSERT_EQ(rows->size(), 3u);
  for (int k = 0; k < 3; k++) {
    EXPECT_EQ((*rows)[k].source, nth_source(n - 1 - k) + "/32");
    EXPECT_EQ((*rows)[k].dropped_packets, static_cast<uint64_t>(n - 1 - k));
    EXPECT_LT((*rows)[k].dropped_pps, 0) << "no rates without a snapshot";
  }

  TopSnapshot seen;
  rows = read_top(*state_, 2, &seen, 0);
  ASSERT_TRUE(rows.has_value());
  EXPECT_EQ(rows->at(0).source, nth_source(n - 1) + "/32") << "the first read ranks by all drops";
  EXPECT_EQ(passed(Packet().ipv4(nth_source(0)).build(), 50), 0);
  EXPECT_EQ(passed(Packet().ipv4(nth_source(7)).build(), 20), 0);
  rows = read_top(*state_, 2, &seen, 2.0);
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ(rows->at(0).source, nth_source(0) + "/32");
  EXPECT_EQ(rows->at(0).dropped_packets, 50u) << "all its drops";
  EXPECT_DOUBLE_EQ(rows->at(0).dropped_pps, 25.0) << "50 drops over 2 s";
  EXPECT_EQ(rows->at(1).source, nth_source(7) + "/32");
  EXPECT_DOUBLE_EQ(rows->at(1).dropped_pps, 10.0);
  rows = read_top(*state_, 1, &seen, 1.0);
  ASSERT_TRUE(rows.has_value());
  EXPECT_DOUBLE_EQ(rows->at(0).dropped_pps, 0.0) << "nothing since the last read";

  // A count that went back since the last read (drops the hot cache added
  // to the bucket while it was read, counted twice then) is no rate at all,
  // not the source's whole count.
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    if (format_addr(e.key.family, e.key.addr) == nth_source(0)) seen.at(e.slot).dropped += 5;
  }));
  rows = read_top(*state_, 1, &seen, 1.0);
  ASSERT_TRUE(rows.has_value());
  EXPECT_DOUBLE_EQ(rows->at(0).dropped_pps, 0.0) << "not its 50 drops over one second";

  // A bucket's count is 32 bits and wraps (every 7 minutes at 10 Mpps):
  // 32 drops across the wrap are 32 drops, though more than the count now
  // holds. They counted as none, and the heaviest source left the list
  // once a wrap.
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    if (format_addr(e.key.family, e.key.addr) != nth_source(7)) return;
    ASSERT_LT(seen.at(e.slot).dropped, 32u) << "its count (20 drops) is below 32";
    seen.at(e.slot).dropped -= 32;  // 2^32 - 12: the last read was before the wrap
  }));
  rows = read_top(*state_, 1, &seen, 1.0);
  ASSERT_TRUE(rows.has_value());
  EXPECT_EQ(rows->at(0).source, nth_source(7) + "/32");
  EXPECT_DOUBLE_EQ(rows->at(0).dropped_pps, 32.0) << "32 drops since the last read, across the wrap";

  // 2^31 drops and more in one interval are drops (a /16's bucket at 8
  // Mpps, top --watch 300): they read as a count that went back, none, and
  // the heaviest bucket left the list.
  const uint32_t many = (1u << 31) + 5;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    if (format_addr(e.key.family, e.key.addr) == nth_source(7)) seen.at(e.slot).dropped -= many;
  }));
  rows = read_top(*state_, 1, &seen, 1.0);
  ASSERT_TRUE(rows.has_value());
  EXPECT_EQ(rows->at(0).source, nth_source(7) + "/32");
  EXPECT_DOUBLE_EQ(rows->at(0).dropped_pps, static_cast<double>(many));
}

}  // namespace
}  // namespace xt::test
