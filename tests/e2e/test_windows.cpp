// SPDX-License-Identifier: MIT
// Several windows in one rule (issue 13), end to end: the seed's quota shape
// (a minute window and a day window) over real time in the lab, with
// hping3 (not ours) sending and nftables behind XDP counting what passed;
// the windows in rule list, top and metrics.
#include <signal.h>

#include <chrono>
#include <thread>

#include "operate_test.h"

namespace xt::test {
namespace {

using Windows = Operate;

// `--rate 400/min --rate 1000/day`, with the minute's burst cut to 100 and
// the day's to 150 so that the day window binds within seconds rather than
// after minutes: 100 at once, then 400 a minute until 150 are spent, then
// 1000 a day (one a 86.4 s).
TEST_F(Windows, AMinuteAndADayWindowHoldASourceOverMinutes) {
  ASSERT_NO_THROW(lab_->add_clients({}));
  ok({"rule", "add", "0.0.0.0/0", "--rate", "400/min", "--burst", "100", "--rate", "1000/day", "--burst", "150"});
  const auto start = std::chrono::steady_clock::now();
  auto since_start = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  // count packets 10 ms apart, to a port nothing listens on.
  auto send = [&](int count) {
    lab_->reset_received();
    Outcome r = lab_->in_gen({"hping3", "-q", "--udp", "-p", "9", "-c", std::to_string(count), "-i", "u10000",
                              "198.18.0.2"});
    EXPECT_NE((r.out + r.err).find(std::to_string(count) + " packets transmitted"), std::string::npos)
        << r.out << r.err;
    return lab_->received_v4();
  };
  const uint64_t first = send(120);
  const double first_at = since_start();
  std::printf("[ measure  ] %llu of 120 passed in the first %.1f s\n", (unsigned long long)first, first_at);
  EXPECT_GE(first, 100u) << "the minute's burst";
  EXPECT_LE(static_cast<double>(first), 100 + 400 * first_at / 60 + 1) << "and no more than it earns a second";

  std::this_thread::sleep_for(4s);
  const uint64_t second = send(60);
  const double second_at = since_start();
  std::printf("[ measure  ] %llu of 60 passed at %.1f s\n", (unsigned long long)second, second_at);
  // Refilled at 400 a minute since: the minute window binds, and the day's
  // (about 8 left of its 150) not yet, or only at the end of a slow send.
  EXPECT_LE(static_cast<double>(first + second), 100 + 400 * second_at / 60 + 1);
  EXPECT_GE(static_cast<double>(first + second), std::min(150.0, 100 + 400 * (second_at - 2) / 60 - 1));

  std::this_thread::sleep_for(8s);
  const uint64_t third = send(60);
  const double third_at = since_start();
  std::printf("[ measure  ] %llu of 60 passed at %.1f s; %llu in all\n", (unsigned long long)third, third_at,
              (unsigned long long)(first + second + third));
  // The minute window has room again (8 s worth, 53), the day's is spent:
  // 150 in all, and what 1000 a day added meanwhile (under one).
  EXPECT_LT(third, 30u) << "the day window holds it while the minute's has room";
  EXPECT_EQ(first + second + third, 150u) << "the day's burst, no more";

  // top shows what is left in each window.
  const json top = lab_->xthrottle_json({"top", "--json"});
  ASSERT_FALSE(top.empty()) << top.dump();
  const json& row = top[0];
  ASSERT_EQ(row["left"].size(), 2u) << row.dump();
  EXPECT_EQ(row["left"][0]["limit"], "400/min");
  EXPECT_GE(row["left"][0]["packets"], 10) << "the minute window has room";
  EXPECT_EQ(row["left"][1]["limit"], "1000/day");
  EXPECT_EQ(row["left"][1]["packets"], 0) << "the day window is what holds the source";
  EXPECT_EQ(row["packets_left"], 0) << "what could pass now: the least of the windows";
  EXPECT_NE(lab_->xthrottle({"top"}).out.find("/min 0/day"), std::string::npos) << lab_->xthrottle({"top"}).out;

  // status tells that a day window outlasts what a full table keeps of a
  // quiet source (the default budget turns the default table over in 262 s).
  const json status = lab_->xthrottle_json({"status", "--json"});
  EXPECT_NE(status["notes"].dump().find("the window 1000/day outlasts"), std::string::npos) << status.dump();
  EXPECT_EQ(status["notes"].dump().find("400/min outlasts"), std::string::npos) << "a minute is within the 262 s";

  // The windows in rule list and the metrics.
  const json list = rules();
  ASSERT_EQ(list.size(), 1u);
  ASSERT_EQ(list[0]["windows"].size(), 2u);
  EXPECT_EQ(list[0]["windows"][1]["burst"], 150);
  EXPECT_EQ(list[0]["options"], "--rate 400/min --burst 100 --rate 1000/day --burst 150");
  Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9432"}));
  ASSERT_TRUE(http_ready("http://127.0.0.1:9432/metrics"));
  Outcome metrics = lab_->in_dut({"curl", "-s", "-f", "http://127.0.0.1:9432/metrics"});
  serve.signal(SIGTERM);
  serve.wait();
  EXPECT_NE(metrics.out.find("xthrottle_rule_window_limit{burst=\"150\",kind=\"packets\",rule=\"0.0.0.0/0\","
                             "window=\"1000/day\"} 0.0115"),
            std::string::npos)
      << metrics.out;
}

// A file names several windows as arrays, and apply --dry-run shows the
// change of one of them.
TEST_F(Windows, ConfigFilesGiveWindowsAsArrays) {
  const std::string path = write("rules.toml", R"([[rule]]
cidr = "0.0.0.0/0"
rate = ["1000/day", "100/min"]
burst = [1000, 50]
bandwidth = "1GB/day"
)");
  ok({"apply", path});
  const json list = rules();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["options"], "--rate 100/min --burst 50 --rate 1000/day --burst 1000 --bandwidth 1GB/day");
  const std::string changed = write("changed.toml", R"([[rule]]
cidr = "0.0.0.0/0"
rate = ["100/min", "2000/day"]
bandwidth = "1GB/day"
)");
  Outcome diff = lab_->xthrottle({"apply", "--dry-run", changed});
  EXPECT_EQ(diff.rc, 0) << diff.err;
  EXPECT_NE(diff.out.find("2000/day"), std::string::npos) << diff.out;
  const std::string bad = write("bad.toml", R"([[rule]]
cidr = "0.0.0.0/0"
rate = ["100/min", "50/day"]
)");
  Outcome refused = lab_->xthrottle({"apply", bad});
  EXPECT_EQ(refused.rc, 2);
  EXPECT_NE(refused.err.find("never binds"), std::string::npos) << refused.err;
  const std::string mismatched = write("mismatched.toml", R"([[rule]]
cidr = "0.0.0.0/0"
rate = ["100/min", "1000/day"]
burst = 10
)");
  refused = lab_->xthrottle({"apply", mismatched});
  EXPECT_EQ(refused.rc, 2);
  EXPECT_NE(refused.err.find("mismatched.toml:4: burst is given once, rate 2 times"), std::string::npos) << refused.err;
  EXPECT_EQ(rules()[0]["options"], list[0]["options"]) << "a refused file changed nothing";
}

}  // namespace
}  // namespace xt::test
