// SPDX-License-Identifier: MIT
// recommend.h: the burst suggested is exactly what a bucket of the suggested
// rate needs to drop nothing of the chosen share of sources, worked out from
// sparse seconds (silence and seconds not observed taken in one step) just
// as a bucket metered every second would; record_file.h: what serve
// --record writes reads back, a record cut short anywhere reads up to the
// cut, and a foreign or damaged one is refused.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <algorithm>
#include <random>
#include <thread>

#include "record_file.h"
#include "policy.h"
#include "recommend.h"

namespace xt {
namespace {

// The definitions, one second at a time over a dense series.
double burst_needed(const std::vector<uint32_t>& per_second, double r) {
  double best = 0;
  for (size_t a = 0; a < per_second.size(); a++) {
    double sent = 0;
    for (size_t z = a; z < per_second.size(); z++) {
      sent += per_second[z];
      best = std::max(best, sent - r * static_cast<double>(z - a));
    }
  }
  return best;
}

uint64_t dropped_by(const std::vector<uint32_t>& per_second, double r, uint64_t b) {
  double tokens = static_cast<double>(b);
  uint64_t dropped = 0;
  for (size_t i = 0; i < per_second.size(); i++) {
    if (i) tokens = std::min(static_cast<double>(b), tokens + r);
    const double pass = std::min<double>(per_second[i], std::floor(tokens));
    dropped += per_second[i] - static_cast<uint64_t>(pass);
    tokens -= pass;
  }
  return dropped;
}

// Dense series (all as long), one group, every second observed.
Observed dense(const std::vector<std::vector<uint32_t>>& series) {
  Observed o;
  o.groups = {"rule"};
  o.group_of.assign(series.size(), 0);
  for (uint32_t t = 0; t < series.at(0).size(); t++) {
    o.seconds.push_back({t, {}});
    for (uint32_t src = 0; src < series.size(); src++)
      if (series[src][t]) o.seconds.back().sent.emplace_back(src, series[src][t]);
  }
  return o;
}

TEST(Recommend, TheBurstSuggestedIsWhatTheBucketNeeds) {
  ASSERT_DOUBLE_EQ(burst_needed({5, 0, 0, 0}, 1), 5) << "a second's packets may all come at once";
  ASSERT_DOUBLE_EQ(burst_needed({3, 3, 3}, 2), 5) << "9 in three seconds, 2 a second refilled twice";
  // Random sources, mostly silent (so most seconds are gaps in what the
  // passes see): sparing them all, the suggestion drops nothing of any and
  // is the least burst that does; sparing some, its counts of sources and
  // packets dropped are the dense bucket's.
  std::mt19937 rng(7);
  for (int round = 0; round < 500; round++) {
    const size_t len = 1 + rng() % 150, sources = 1 + rng() % 12;
    std::vector<std::vector<uint32_t>> series(sources, std::vector<uint32_t>(len));
    for (auto& s : series)
      for (auto& n : s) n = rng() % 3 ? 0 : rng() % 4 == 0 ? rng() % 300 : rng() % 20;
    series[0][rng() % len] += 1;  // one sends something
    const double spare = round % 2 ? 1.0 : 0.5 + (rng() % 50) / 100.0;
    const Recommendation r = recommend(dense(series), spare).at(0);
    size_t dropped_sources = 0, active = 0;
    uint64_t dropped_packets = 0;
    double most_needed = 0;
    for (const auto& s : series) {
      if (std::ranges::all_of(s, [](uint32_t n) { return n == 0; })) continue;
      active++;
      const uint64_t d = dropped_by(s, r.rate, r.burst);
      dropped_sources += d > 0;
      dropped_packets += d;
      EXPECT_EQ(d == 0, burst_needed(s, r.rate) <= static_cast<double>(r.burst)) << "round " << round;
      most_needed = std::max(most_needed, burst_needed(s, r.rate));
    }
    ASSERT_EQ(r.sources, active) << "round " << round;
    EXPECT_EQ(r.sources_dropped, dropped_sources) << "round " << round;
    EXPECT_EQ(r.packets_dropped, dropped_packets) << "round " << round;
    if (spare == 1.0) {
      EXPECT_EQ(r.sources_dropped, 0u) << "round " << round;
      EXPECT_EQ(r.burst, std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(most_needed)))) << "round " << round;
    }
  }
}

TEST(Recommend, TheSuggestionSparesTheChosenShare) {
  // 99 sources at 10 a second for a minute, one at 100.
  std::vector<std::vector<uint32_t>> series(99, std::vector<uint32_t>(60, 10));
  series.push_back(std::vector<uint32_t>(60, 100));
  const Recommendation r = recommend(dense(series), 0.99).at(0);
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
  const Recommendation all = recommend(dense(series), 1.0).at(0);
  EXPECT_DOUBLE_EQ(all.rate, 100);
  EXPECT_EQ(all.sources_dropped, 0u);
}

// 99.9% of 1000 sources is 999 of them: the 1000th (the flooder) sets
// nothing. (99.9 / 100 is 0.9990000000000001 in a double, and the rank
// taken was 1000: --rate 1000/s, the flooder's own.)
TEST(Recommend, NinetyNinePointNinePercentOfAThousandIsNineHundredNinetyNine) {
  std::vector<std::vector<uint32_t>> series(999, std::vector<uint32_t>(60, 10));
  series.push_back(std::vector<uint32_t>(60, 1000));
  const Recommendation r = recommend(dense(series), 99.9 / 100.0).at(0);
  EXPECT_DOUBLE_EQ(r.rate, 10);
  EXPECT_DOUBLE_EQ(r.peak_minute.p999, 10);
  EXPECT_EQ(r.sources_dropped, 1u);
  std::vector<std::vector<uint32_t>> more(1998, std::vector<uint32_t>(60, 10));
  more.push_back(std::vector<uint32_t>(60, 1000));
  more.push_back(std::vector<uint32_t>(60, 1000));
  EXPECT_DOUBLE_EQ(recommend(dense(more), 99.9 / 100.0).at(0).rate, 10) << "1998 of 2000 are 99.9%";
}

// A rule no source was seen in has no suggestion (it was told --rate 1/s
// --burst 1, which throttles a quiet service to a packet a second).
TEST(Recommend, ARuleNoSourceWasSeenInHasNoSuggestion) {
  Observed o = dense({{10, 10, 10}});
  o.groups = {"busy", "quiet"};
  const std::vector<Recommendation> recs = recommend(o, 0.999);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_DOUBLE_EQ(recs[0].rate, 10);
  EXPECT_EQ(recs[1].sources, 0u);
  EXPECT_DOUBLE_EQ(recs[1].rate, 0) << "no suggestion";
  EXPECT_EQ(recs[1].burst, 0u);
}

TEST(Recommend, AShortWatchUsesItsWholeSpanAsTheMinute) {
  const Recommendation r = recommend(dense({{0, 20, 0, 0}}), 1.0).at(0);
  EXPECT_DOUBLE_EQ(r.peak_minute.max, 5) << "20 in a 4-second span";
  EXPECT_DOUBLE_EQ(r.rate, 5);
  EXPECT_EQ(r.burst, 20u);
  EXPECT_EQ(r.sources_dropped, 0u);
}

TEST(Recommend, TheMinuteSlidesOverALongRecord) {
  // A day: one source sends 30 a second for 40 s at 10:00 and again for
  // 40 s from 10:00:50 (the busiest 60 s, 10:00:30 to 10:01:29, hold 50
  // of its seconds); serve was away for an hour later in the day.
  Observed o;
  o.groups = {"rule"};
  o.group_of = {0};
  for (uint32_t t = 0; t < 86400; t++) {
    if (t >= 50000 && t < 53600) continue;  // not observed
    o.seconds.push_back({t, {}});
    if ((t >= 36000 && t < 36040) || (t >= 36050 && t < 36090)) o.seconds.back().sent.emplace_back(0, 30);
  }
  const Recommendation r = recommend(o, 1.0).at(0);
  EXPECT_EQ(r.seconds, 86400u - 3600);
  EXPECT_EQ(r.span, 86400u);
  EXPECT_EQ(r.packets, 80u * 30);
  EXPECT_DOUBLE_EQ(r.peak_minute.max, 30.0 * 50 / 60) << "36030-36089 hold 50 of its seconds";
  EXPECT_DOUBLE_EQ(r.mean.max, 2400.0 / (86400 - 3600)) << "over the seconds observed";
  EXPECT_DOUBLE_EQ(r.rate, 25);
  EXPECT_EQ(r.sources_dropped, 0u);
}

TEST(Recommend, SourcesFoldIntoTheirPrefixes) {
  ObservedBuilder b;
  const uint32_t rule = b.group("198.18.0.0/15");
  b.fold_to(24);
  auto v4 = [&](uint8_t c, uint8_t d) {
    SourceKey k{rule, 4, 32, {}};
    k.addr = {198, 18, c, d};
    return k;
  };
  b.second(100);
  b.add(v4(1, 1), 5);
  b.add(v4(1, 2), 7);  // the same /24
  b.add(v4(2, 1), 1);
  b.second(101);
  b.add(v4(1, 3), 4);
  b.second(101);  // a clock set back: ignored, and what comes with it
  b.add(v4(1, 3), 1000);
  EXPECT_EQ(b.seconds_ignored(), 1u);
  EXPECT_TRUE(b.counted_coarser().empty());
  SourceKey wide{rule, 4, 16, {}};
  wide.addr = {198, 18};
  b.second(102);
  b.add(wide, 1);
  ASSERT_EQ(b.counted_coarser().size(), 1u) << "a /16 cannot be split into /24s";
  EXPECT_EQ(b.counted_coarser().begin()->second, (std::pair<uint8_t, uint8_t>{4, 16}));
  const Observed o = b.take();
  ASSERT_EQ(o.seconds.size(), 3u);
  ASSERT_EQ(o.seconds[0].sent.size(), 2u);
  EXPECT_EQ(o.seconds[0].sent[0], (std::pair<uint32_t, uint32_t>{0, 12}));
  EXPECT_EQ(o.seconds[0].sent[1], (std::pair<uint32_t, uint32_t>{1, 1}));
  ASSERT_EQ(o.seconds[1].sent.size(), 1u);
  EXPECT_EQ(o.seconds[1].sent[0], (std::pair<uint32_t, uint32_t>{0, 4}));
  EXPECT_EQ(o.group_of.size(), 3u);
  EXPECT_EQ(prefix_of({10, 1, 2, 3}, 20), (std::array<uint8_t, 16>{10, 1, 0}));
  EXPECT_EQ(prefix_of({10, 1, 0xff, 3}, 20), (std::array<uint8_t, 16>{10, 1, 0xf0}));
}

std::string two_segments() {
  RecordEncoder one;
  RecordEncoder::Sent a{"198.18.0.0/15", 4, 32, {198, 18, 0, 1}, 10};
  RecordEncoder::Sent b{"2001:db8::/32 udp/53", 6, 64, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1}, 300};
  one.second(1'700'000'000, {a, b});
  one.second(1'700'000'001, {});
  a.packets = 11;
  one.second(1'700'000'002, {a});
  EXPECT_EQ(one.sources(), 2u);
  RecordEncoder two;  // serve started again
  b.packets = 70000;
  two.second(1'700'000'100, {b});
  return one.take() + two.take();
}

TEST(RecordFile, WhatServeWritesReadsBack) {
  const std::string bytes = two_segments();
  std::vector<std::tuple<int64_t, std::string, uint32_t, uint32_t>> got;  // second, rule, first address byte, packets
  auto read = read_record(bytes, "rec", [&](const RecordedSecond& s) {
    if (s.sent.empty()) got.emplace_back(s.unix_second, "", 0, 0);
    for (auto [src, n] : s.sent) {
      const RecordedSource& r = s.sources->at(src);
      got.emplace_back(s.unix_second, s.rules->at(r.rule), r.addr[r.family == 4 ? 3 : 7] + 1000u * r.len, n);
    }
  });
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_FALSE(read->cut);
  EXPECT_EQ(read->whole, bytes.size());
  EXPECT_EQ(read->seconds, 4u);
  const decltype(got) want = {{1'700'000'000, "198.18.0.0/15", 32001, 10},
                              {1'700'000'000, "2001:db8::/32 udp/53", 64001, 300},
                              {1'700'000'001, "", 0, 0},
                              {1'700'000'002, "198.18.0.0/15", 32001, 11},
                              {1'700'000'100, "2001:db8::/32 udp/53", 64001, 70000}};
  EXPECT_EQ(got, want);
}

TEST(RecordFile, ASourceAtItsHintIsNamedOnceAndAnotherThereAfresh) {
  RecordEncoder e;
  RecordEncoder::Sent a{"r", 4, 32, {198, 18, 0, 1}, 5, 7};
  RecordEncoder::Sent b{"r", 4, 32, {198, 18, 0, 2}, 6, 7};  // the slot changed hands
  e.second(1, {a});
  e.second(2, {a});
  EXPECT_EQ(e.sources(), 1u) << "found at its hint";
  e.second(3, {b});
  a.hint = 8;
  e.second(4, {a, b});  // a back at another hint: named again; b at its own
  a.hint = 0;
  e.second(5, {a});
  std::vector<std::pair<uint8_t, uint32_t>> got;  // last address byte, packets
  auto read = read_record(e.take(), "rec", [&](const RecordedSecond& s) {
    for (auto [src, n] : s.sent) got.emplace_back(s.sources->at(src).addr[3], n);
  });
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(got, (std::vector<std::pair<uint8_t, uint32_t>>{{1, 5}, {1, 5}, {2, 6}, {1, 5}, {2, 6}, {1, 5}}));
  EXPECT_EQ(e.sources(), 4u) << "a, b, a again at its new place, a without a hint";
}

TEST(RecordFile, SegmentsNumberingSourcesApartReadAsTheSameSources) {
  // serve named a and b as 0 and 1, restarted, and named them 1 and 0.
  RecordEncoder::Sent a{"v4", 4, 32, {198, 18, 1, 1}, 10};
  RecordEncoder::Sent b{"v4", 4, 32, {198, 18, 1, 2}, 1};
  RecordEncoder::Sent c{"dns", 4, 32, {198, 18, 2, 1}, 100};
  RecordEncoder one, two;
  one.second(10, {a, b});
  two.second(20, {c});  // names dns first
  two.second(21, {b, a});
  const std::string bytes = one.take() + two.take();
  ObservedBuilder seen;
  auto read = observe_record(bytes, "rec", "v4", seen);
  ASSERT_TRUE(read) << read.error().message;
  Observed o = seen.take();
  ASSERT_EQ(o.groups, std::vector<std::string>{"v4"}) << "--rule v4: dns left out";
  ASSERT_EQ(o.seconds.size(), 3u);
  EXPECT_EQ(o.seconds[0].sent, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 10}, {1, 1}}));
  EXPECT_TRUE(o.seconds[1].sent.empty());
  EXPECT_EQ(o.seconds[2].sent, (std::vector<std::pair<uint32_t, uint32_t>>{{1, 1}, {0, 10}}))
      << "the second segment's numbers are its own";
  // Folded into /24s: a and b are one prefix; dns another.
  ObservedBuilder folded;
  folded.fold_to(24);
  ASSERT_TRUE(observe_record(bytes, "rec", "", folded));
  o = folded.take();
  EXPECT_EQ(o.group_of.size(), 2u);
  EXPECT_EQ(o.seconds[0].sent, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 11}}));
  EXPECT_EQ(o.seconds[2].sent, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 11}}));
}

TEST(RecordFile, ARecordCutAnywhereReadsUpToTheCut) {
  const std::string bytes = two_segments();
  size_t last_seconds = 0;
  for (size_t len = 0; len < bytes.size(); len++) {
    size_t seconds = 0;
    auto read = read_record(bytes.substr(0, len), "rec", [&](const RecordedSecond&) { seconds++; });
    ASSERT_TRUE(read) << "cut at " << len << ": " << read.error().message;
    EXPECT_LE(read->whole, len);
    EXPECT_EQ(read->cut, read->whole < len) << "cut at " << len;
    EXPECT_GE(seconds, last_seconds) << "cut at " << len;
    EXPECT_EQ(read->seconds, seconds);
    last_seconds = seconds;
    // What serve appends after cutting it off reads on.
    RecordEncoder more;
    more.second(1'800'000'000, {});
    int64_t last = 0;
    auto again = read_record(bytes.substr(0, read->whole) + more.take(), "rec",
                             [&](const RecordedSecond& s) { last = s.unix_second; });
    ASSERT_TRUE(again) << "cut at " << len << ": " << again.error().message;
    EXPECT_EQ(last, 1'800'000'000) << "cut at " << len;
  }
  EXPECT_EQ(last_seconds, 3u);
}

TEST(RecordFile, AForeignOrDamagedFileIsRefused) {
  auto refused = [](const std::string& bytes) {
    auto read = read_record(bytes, "rec", [](const RecordedSecond&) {});
    return read ? std::string() : read.error().message;
  };
  EXPECT_NE(refused("XTSNAP..."), "");
  EXPECT_NE(refused("xthrottle-snapshot"), "");
  EXPECT_NE(refused(two_segments().substr(1)), "");
  std::string bytes = two_segments();
  const size_t first = kRecordMagic.size();  // the first entry: the rule's name
  bytes[first] = 'Q';
  EXPECT_NE(refused(bytes).find("damaged at byte " + std::to_string(first)), std::string::npos) << refused(bytes);
  // A second that counts a source the segment never named.
  std::string s = std::string(kRecordMagic) + "S\x03\x01\x05\x01";
  EXPECT_NE(refused(s).find("not named"), std::string::npos) << refused(s);
  // A length that runs on past 64 bits, with more after it, is not a cut.
  s = std::string(kRecordMagic) + "N" + std::string(10, '\xff') + "\x01" "abc";
  EXPECT_NE(refused(s).find("damaged at byte " + std::to_string(kRecordMagic.size())), std::string::npos)
      << refused(s);
}

// The files serve appends to, in a directory of the test's own.
class RecordWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("xt-record-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "sources.rec").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // The seconds a file holds (ASSERTs it reads whole).
  static std::vector<int64_t> seconds_in(const std::string& path) {
    std::vector<int64_t> out;
    auto read = read_record(slurp(path), path, [&](const RecordedSecond& s) { out.push_back(s.unix_second); });
    EXPECT_TRUE(read && !read->cut) << path;
    return out;
  }
  RecordWriter::Log log() {
    return [this](const nlohmann::json& e) { events_.push_back(e["event"].get<std::string>()); };
  }
  std::filesystem::path dir_;
  std::string path_;
  std::vector<std::string> events_;
};

std::vector<RecordEncoder::Sent> sources(int n, uint32_t packets) {
  std::vector<RecordEncoder::Sent> out;
  for (int i = 0; i < n; i++)
    out.push_back({"198.18.0.0/15", 4, 32, {198, 18, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)}, packets});
  return out;
}

TEST_F(RecordWriterTest, TwoFilesOfHalfTheMostKeepTheLatestSeconds) {
  auto w = RecordWriter::open(path_, 16 * 1024, log());
  ASSERT_TRUE(w) << w.error().message;
  for (int64_t t = 1000; t < 1200; t++) w->second(t, sources(100, 5));  // ~300 bytes a second
  ASSERT_TRUE(std::filesystem::exists(path_ + ".1"));
  EXPECT_LE(std::filesystem::file_size(path_), 8u * 1024);
  EXPECT_LE(std::filesystem::file_size(path_ + ".1"), 8u * 1024);
  EXPECT_GE(std::count(events_.begin(), events_.end(), "record_rotated"), 2);
  // The older file's seconds, then the newer's, run on to the last one.
  std::vector<int64_t> all = seconds_in(path_ + ".1");
  const auto newer = seconds_in(path_);
  all.insert(all.end(), newer.begin(), newer.end());
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back(), 1199);
  for (size_t i = 1; i < all.size(); i++) ASSERT_EQ(all[i], all[i - 1] + 1) << i;
  EXPECT_GT(all.size(), 20u);
}

TEST_F(RecordWriterTest, ARestartAppendsAfterCuttingOffATornEntry) {
  {
    auto w = RecordWriter::open(path_, 1 << 20, log());
    ASSERT_TRUE(w) << w.error().message;
    w->second(100, sources(3, 7));
    w->second(101, sources(3, 8));
  }
  const auto whole = std::filesystem::file_size(path_);
  std::ofstream(path_, std::ios::app | std::ios::binary) << std::string("S\x40\x01\x02", 4);  // a crash mid-write
  auto w = RecordWriter::open(path_, 1 << 20, log());
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(std::filesystem::file_size(path_), whole) << "the torn entry cut off";
  w->second(200, sources(3, 9));
  EXPECT_EQ(seconds_in(path_), (std::vector<int64_t>{100, 101, 200}));
  EXPECT_EQ(events_, std::vector<std::string>{"record_cut"}) << "what was cut off is said";
  EXPECT_EQ(std::filesystem::status(path_).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)
      << "client addresses: the owner's alone";
}

TEST_F(RecordWriterTest, ARecordReadsFromAPipe) {
  const std::string fifo = (dir_ / "pipe").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string bytes = two_segments();
  std::thread writer([&] { std::ofstream(fifo, std::ios::binary) << bytes; });
  auto read = read_record_file(fifo);
  writer.join();
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(*read, bytes);
  EXPECT_FALSE(read_record_file((dir_ / "none").string())) << "a file that is not there";
}

// One serve writes a record at a time: a second would interleave its
// seconds with the first's, and cut or move aside what the first writes.
TEST_F(RecordWriterTest, ASecondWriterOfOneRecordIsRefused) {
  auto first = RecordWriter::open(path_, 1 << 20, log());
  ASSERT_TRUE(first) << first.error().message;
  first->second(100, sources(3, 7));
  auto second = RecordWriter::open(path_, 1 << 20, log());
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("another serve records to"), std::string::npos) << second.error().message;
  first = std::unexpected(second.error());  // the first one stops
  auto after = RecordWriter::open(path_, 1 << 20, log());
  EXPECT_TRUE(after) << "free again once the first writer is gone";
  EXPECT_EQ(seconds_in(path_), std::vector<int64_t>{100});
}

// A directory given for the record (serve --record /var/lib/xthrottle,
// recommend --from DIR) is an error that names it; the stream read before
// threw from libstdc++ and ended the process.
TEST_F(RecordWriterTest, ADirectoryIsAnErrorNotACrash) {
  auto read = read_record_file(dir_.string());
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message.find(dir_.string()), std::string::npos) << read.error().message;
  auto w = RecordWriter::open(dir_.string(), 1 << 20, log());
  EXPECT_FALSE(w);
  EXPECT_TRUE(std::filesystem::is_directory(dir_)) << "nothing moved aside";
  EXPECT_FALSE(std::filesystem::exists(dir_.string() + ".lock")) << "no lock made beside it";
}

TEST_F(RecordWriterTest, AFileThatIsNotARecordIsMovedAside) {
  std::ofstream(path_) << "precious notes\n";
  auto w = RecordWriter::open(path_, 1 << 20, log());
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(events_, std::vector<std::string>{"record_rejected"});
  w->second(5, sources(1, 1));
  EXPECT_EQ(seconds_in(path_), std::vector<int64_t>{5});
  size_t aside = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir_))
    if (f.path().filename().string().starts_with("sources.rec.rejected-"))
      aside += slurp(f.path().string()) == "precious notes\n";
  EXPECT_EQ(aside, 1u);
  // An empty file (serve stopped before its first second) is no damage.
  w = std::unexpected(Error{ErrorKind::System, "stopped"});  // its lock let go
  std::filesystem::remove(path_);
  std::ofstream(path_).flush();
  events_.clear();
  ASSERT_TRUE(RecordWriter::open(path_, 1 << 20, log()));
  EXPECT_TRUE(events_.empty());
  EXPECT_FALSE(RecordWriter::open(path_, 1000, log())) << "--record-max below 16KiB";
}

}  // namespace
}  // namespace xt
