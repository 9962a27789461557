// SPDX-License-Identifier: MIT
// xthrottle capture (issue 14), in the lab: during a flood, a sample of the
// dropped packets is written as a pcap that tshark reads back, each with
// its verdict and rule told beside it; the sampling rate holds in the data
// path.
#include <thread>

#include "operate_test.h"

namespace xt::test {
namespace {

class Capture : public Operate {
 protected:
  // Floods from `sources` addresses for about `seconds`, paced, in the
  // background.
  Background flood(int sources, double seconds) {
    return Background(lab_->flood_argv({"--src", "198.18.0.7", "--sources", std::to_string(sources), "--rate",
                                        "20000", "--count", std::to_string(static_cast<int>(20000 * seconds))}));
  }
  // tshark's one line a packet of a pcap file.
  std::vector<std::string> tshark(const std::string& path, const std::string& fields) {
    const Outcome r = run({"tshark", "-r", path, "-T", "fields", "-e", fields});
    EXPECT_EQ(r.rc, 0) << r.err;
    std::vector<std::string> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
};

TEST_F(Capture, ASampleOfTheDropsIsAPcapThatTsharkReads) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--burst", "10"});
  const std::string pcap = dir_ + "/drops.pcap";
  Background capture(lab_->xthrottle_argv({"capture", "-w", pcap, "--count", "50", "--for", "30s", "--json"}));
  std::this_thread::sleep_for(1s);  // the capture is on
  Background f = flood(5, 2);
  const Outcome c = capture.wait();
  ASSERT_EQ(c.rc, 0) << c.err;
  f.wait();
  const auto lines = json_lines(c.out);
  ASSERT_EQ(lines.size(), 50u) << c.out;
  for (const json& j : lines) {
    EXPECT_EQ(j["reason"], "over_limit");
    EXPECT_EQ(j["rule"], "198.18.0.0/15");
    EXPECT_EQ(j["bytes"], 64);
  }
  const auto sources = tshark(pcap, "ip.src");
  ASSERT_EQ(sources.size(), 50u) << "tshark reads the 50 packets";
  for (size_t i = 0; i < sources.size(); i++) {
    EXPECT_EQ(sources[i], lines[i]["source"].get<std::string>()) << "packet " << i + 1 << " is the line's";
    EXPECT_TRUE(sources[i].starts_with("198.18.0.")) << sources[i];
  }
  EXPECT_EQ(tshark(pcap, "udp.dstport").front(), "9");
  EXPECT_NE(c.err.find("50 packets captured"), std::string::npos) << c.err;
}

// A capture whose lines go to a reader that stops early (`| head -n 1`)
// ends cleanly: exit 0 and its summary, a pcap tshark reads whole, the
// sampling stopped. SIGPIPE killed it (141), the pcap cut mid-record.
TEST_F(Capture, AReaderThatGoesAwayEndsItCleanly) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--burst", "10"});
  const std::string pcap = dir_ + "/drops.pcap";
  std::string cmd;
  for (const auto& a : lab_->xthrottle_argv({"capture", "-w", pcap, "--for", "60s"})) cmd += "'" + a + "' ";
  Background capture({"bash", "-c", cmd + "| head -n 1 >/dev/null; echo rc=${PIPESTATUS[0]} >&2"});
  std::this_thread::sleep_for(1s);
  const auto from = std::chrono::steady_clock::now();
  Background f = flood(5, 6);
  const Outcome c = capture.wait();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
  // The flood goes on: nothing is sampled once the capture has ended.
  const uint64_t captured = stats()["captured"].get<uint64_t>();
  std::this_thread::sleep_for(500ms);
  const uint64_t later = stats()["captured"].get<uint64_t>();
  f.wait();
  EXPECT_LT(took, 5) << "ended at the failed write, not at --for";
  EXPECT_NE(c.err.find("rc=0"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("packets captured"), std::string::npos) << c.err;
  EXPECT_EQ(later, captured) << "the sampling stopped with it";
  const Outcome read = run({"tshark", "-r", pcap});
  EXPECT_EQ(read.rc, 0) << read.err;
  EXPECT_EQ(read.err.find("cut short"), std::string::npos) << read.err;
}

// 3 s of a flood dropped at 20,000 packets a second, sampled at 100 a
// second (burst 100): at most burst + rate x elapsed are taken, and the
// rest are counted as not taken.
TEST_F(Capture, TheSamplingRateHoldsUnderAFlood) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--burst", "10"});
  const std::string pcap = dir_ + "/drops.pcap";
  Background capture(lab_->xthrottle_argv({"capture", "-w", pcap, "--rate", "100/s", "--for", "4s"}));
  std::this_thread::sleep_for(500ms);
  const auto from = std::chrono::steady_clock::now();
  Background f = flood(100, 3);
  f.wait();
  const Outcome c = capture.wait();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
  ASSERT_EQ(c.rc, 0) << c.err;
  const size_t taken = tshark(pcap, "ip.src").size();
  const json s = stats();
  std::printf("[ measure  ] %zu of %llu dropped packets sampled at 100/s in %.1f s\n", taken,
              (unsigned long long)s["reasons"]["over_limit"]["packets"].get<uint64_t>(), seconds);
  EXPECT_LE(taken, 100 + 100 * seconds + 1) << "burst + rate x elapsed";
  EXPECT_GE(taken, 300u * 9 / 10) << "the rate, while the flood lasted";
  EXPECT_GT(s["reasons"]["over_limit"]["packets"].get<uint64_t>(), 50000u);
}

// What capture cannot do is refused before anything changes: a verdict it
// never sees (exit 2), a rule that is not there (exit 1), --for 0 (exit 2).
TEST_F(Capture, WhatItCannotDoIsRefused) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  Outcome r = lab_->xthrottle({"capture", "--reason", "over_limit,malformed", "--count", "1"});
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("'malformed' packets are not captured"), std::string::npos) << r.err;
  r = lab_->xthrottle({"capture", "--rule", "10.0.0.0/8", "--count", "1"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("no rule '10.0.0.0/8'"), std::string::npos) << r.err;
  r = lab_->xthrottle({"capture", "--for", "0"});
  EXPECT_EQ(r.rc, 2) << r.err;
  // A file it cannot write (a full disk) is an error, not "0 packets
  // captured to /dev/full".
  r = lab_->xthrottle({"capture", "-w", "/dev/full", "--for", "1s"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write /dev/full: No space left on device"), std::string::npos) << r.err;
  // None of them left the data path capturing: the drops of a flood after
  // them are sampled by no one.
  Background f = flood(5, 0.25);
  ASSERT_EQ(f.wait().rc, 0);
  const json stats = lab_->xthrottle_json({"stats", "--json"});
  EXPECT_GT(stats["dropped_packets"].get<uint64_t>(), 4000u) << stats.dump();
  EXPECT_EQ(stats["captured"], 0) << stats.dump();
  EXPECT_EQ(stats["capture_not_taken"], 0) << stats.dump();
}

}  // namespace
}  // namespace xt::test
