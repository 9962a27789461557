// SPDX-License-Identifier: MIT
// xthrottle capture (issue 14), in the lab: during a flood, a sample of the
// dropped packets is written as a pcap that tshark reads back, each with
// its verdict and rule told beside it; the sampling rate holds in the data
// path.
#include <sys/stat.h>

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
  // Clients' addresses and what they sent: for root alone, as the record is
  // (it was made 0644 under root's umask).
  struct stat st{};
  ASSERT_EQ(stat(pcap.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
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

// A rule deleted during a capture leaves its id to the next rule added:
// that rule's samples were told under the deleted rule's name, and a
// capture of the deleted rule (--rule) went on sampling the new one's.
TEST_F(Capture, ARuleDeletedMeanwhileLeavesItsNameBehind) {
  ok({"rule", "add", "198.18.0.0/16", "--rate", "10/s", "--burst", "10"});
  Background capture(lab_->xthrottle_argv({"capture", "--json", "--for", "20s", "--count", "20"}));
  std::this_thread::sleep_for(500ms);
  lab_->flood({"--src", "198.18.0.7", "--count", "20"});
  ok({"rule", "del", "198.18.0.0/16"});
  ok({"rule", "add", "198.19.0.0/16", "--rate", "10/s", "--burst", "10"});
  std::this_thread::sleep_for(300ms);
  lab_->flood({"--src", "198.19.0.7", "--count", "20"});
  Outcome c = capture.wait();
  ASSERT_EQ(c.rc, 0) << c.err;
  const auto lines = json_lines(c.out);
  ASSERT_EQ(lines.size(), 20u) << c.out;
  for (const json& j : lines)
    EXPECT_EQ(j["rule"], j["source"].get<std::string>().starts_with("198.19.") ? "198.19.0.0/16" : "198.18.0.0/16")
        << j.dump();

  Background only(lab_->xthrottle_argv({"capture", "--json", "--rule", "198.19.0.0/16", "--for", "20s"}));
  std::this_thread::sleep_for(500ms);
  ok({"rule", "del", "198.19.0.0/16"});
  ok({"rule", "add", "198.18.0.0/16", "--rate", "10/s", "--burst", "10"});
  std::this_thread::sleep_for(300ms);
  lab_->flood({"--src", "198.18.0.8", "--count", "20"});
  c = only.wait();
  EXPECT_EQ(c.rc, 1) << c.err;
  EXPECT_NE(c.err.find("the rule '198.19.0.0/16' was deleted"), std::string::npos) << c.err;
  EXPECT_EQ(c.out, "") << "no sample of the rule that took its id";
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
  // Nor is a pcap on standard output, or the lines, into a full disk: only
  // a reader that went away (EPIPE) ends a capture with exit 0. Both ended
  // with exit 0 and "N packets captured".
  const auto into_full_disk = [&](const std::vector<std::string>& args) {
    std::string cmd;
    for (const auto& a : lab_->xthrottle_argv(args)) cmd += "'" + a + "' ";
    return std::vector<std::string>{"bash", "-c", cmd + ">/dev/full"};
  };
  r = run(into_full_disk({"capture", "-w", "-", "--for", "1s"}));
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write standard output: No space left on device"), std::string::npos) << r.err;
  Background lines(into_full_disk({"capture", "--for", "10s"}));
  std::this_thread::sleep_for(500ms);
  {
    Background f = flood(5, 0.25);
    ASSERT_EQ(f.wait().rc, 0);
  }
  r = lines.wait();
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write the lines to standard output: No space left on device"), std::string::npos)
      << r.err;
  // None of them left the data path capturing: the drops of a flood after
  // them are sampled by no one.
  const json before = stats();
  Background f = flood(5, 0.25);
  ASSERT_EQ(f.wait().rc, 0);
  const json after = stats();
  EXPECT_GT(after["dropped_packets"].get<uint64_t>() - before["dropped_packets"].get<uint64_t>(), 4000u)
      << after.dump();
  EXPECT_EQ(after["captured"], before["captured"]) << after.dump();
  EXPECT_EQ(after["capture_not_taken"], before["capture_not_taken"]) << after.dump();
}

}  // namespace
}  // namespace xt::test
