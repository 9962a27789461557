// SPDX-License-Identifier: MIT
// --over ecn (issue 14), in the lab with iperf3: a TCP flow with ECN on,
// over a path with a 40 ms round trip (tools/lab/delay.py), is slowed down
// by marks instead of losses and gets its limit; a UDP flow that sends ECN-
// capable packets and ignores the marks is held to the limit all the same.
#include <algorithm>
#include <thread>

#include "operate_test.h"

namespace xt::test {
namespace {

constexpr double kLimit = 10e6;     // --bandwidth 10Mbit/s
constexpr double kBurst = 1.25e6;   // its default burst: a second's worth, in bytes

class Ecn : public Operate {
 protected:
  void SetUp() override {
    Operate::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_THROW(lab_->add_delay(40, 100, "198.18.0.3", "198.18.0.2"));
    for (const std::string& ns : {lab_->cli_ns(), lab_->dut_ns()})
      ASSERT_EQ(run({"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_ecn=1"}).rc, 0);
    ok({"rule", "add", "198.18.0.0/15", "--bandwidth", "10Mbit/s", "--over", "ecn"});
  }
  // iperf3 ARGS... from cli0 to an iperf3 server on dut0; its JSON report.
  json iperf3(const std::vector<std::string>& args) {
    Background server({"ip", "netns", "exec", lab_->dut_ns(), "iperf3", "-s", "-1", "-B", "198.18.0.2"});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::vector<std::string> argv = {"ip", "netns", "exec", lab_->cli_ns(), "timeout", "60", "iperf3", "-c",
                                     "198.18.0.2", "-J"};
    argv.insert(argv.end(), args.begin(), args.end());
    const Outcome client = run(argv);
    server.wait();
    EXPECT_EQ(client.rc, 0) << client.out << client.err;
    return json::parse(client.out);
  }
};

TEST_F(Ecn, ATcpFlowWithEcnGetsItsLimitWithoutLosingSegments) {
  // Slow start past the burst is over in 5 s (the first second's overshoot
  // costs it a few hundred segments, documented); 15 s measured after it.
  // The marks are random and cubic's answer to them varies: fifteen runs on
  // one day received 8.7 to 9.8 Mbit/s, two of them under 9. So up to three
  // runs, the first within 10% of the limit counts; marking every packet
  // past half the burst got 8.5 in every run (docs/design.md) and fails all
  // three. Every run must lose nothing and stay under the limit.
  double best = 0;
  for (int attempt = 1; attempt <= 3 && best < 0.9 * kLimit; attempt++) {
    const json r = iperf3({"-C", "cubic", "-t", "15", "-O", "5"});
    const json& sent = r["end"]["sum_sent"];
    const double got = r["end"]["sum_received"]["bits_per_second"].get<double>();
    const double segments = sent["bytes"].get<double>() / 1448;
    const double retransmits = sent["retransmits"].get<double>();
    const json s = stats();
    std::printf("[ measure  ] run %d: %.2f Mbit/s received, %.0f of ~%.0f segments retransmitted, %llu marked so far\n",
                attempt, got / 1e6, retransmits, segments, (unsigned long long)s["marked"]["packets"].get<uint64_t>());
    EXPECT_LE(got, 1.1 * kLimit);
    EXPECT_LT(retransmits, 0.01 * segments) << "marks, not losses, slow it down";
    EXPECT_GT(s["marked"]["packets"].get<uint64_t>(), 0u);
    EXPECT_GT(s["rules"]["198.18.0.0/15"]["marked_packets"].get<uint64_t>(), 0u);
    best = std::max(best, got);
  }
  EXPECT_GE(best, 0.9 * kLimit) << "within 10% of the limit in one of three runs";
}

TEST_F(Ecn, AFlowThatIgnoresTheMarksIsHeldToTheLimit) {
  // UDP at 30 Mbit/s, every packet ECT(0): it marks nothing down.
  const json r = iperf3({"-u", "-b", "30M", "-l", "1400", "--tos", "2", "-t", "5"});
  const double seconds = r["end"]["sum"]["seconds"].get<double>();
  const json s = stats();
  const auto passed = s["rules"]["198.18.0.0/15"]["passed_bytes"].get<uint64_t>();
  const auto marked = s["marked"]["packets"].get<uint64_t>();
  const auto dropped = s["rules"]["198.18.0.0/15"]["dropped_packets"].get<uint64_t>();
  std::printf("[ measure  ] %.1f s: %llu bytes passed, %llu packets marked, %llu dropped\n", seconds,
              (unsigned long long)passed, (unsigned long long)marked, (unsigned long long)dropped);
  // Burst, overdraft (half a burst, marked) and the rate over the run, with
  // 0.3 s of slack for the server's start and end (an overdraft of a whole
  // burst would not fit).
  EXPECT_LE(static_cast<double>(passed), 1.5 * kBurst + kLimit / 8 * (seconds + 0.3));
  EXPECT_GE(static_cast<double>(passed), kLimit / 8 * seconds * 0.9);
  EXPECT_GT(marked, 0u);
  EXPECT_GT(dropped, 0u) << "beyond the overdraft, dropped";
}

}  // namespace
}  // namespace xt::test
