// SPDX-License-Identifier: MIT
// Totals with fair shares (issue 13), in the lab: 10,000 sources each within
// its own limit but together ten times over the rule's total, and 1000
// light sources at a tenth of the fair share, from two floodgen runs at
// once; nftables behind XDP counts what passed, the light sources apart.
#include <chrono>
#include <thread>

#include "operate_test.h"

namespace xt::test {
namespace {

using Totals = Operate;

TEST_F(Totals, TenThousandSourcesShareATotalAndTheLightOnesKeepTheirs) {
  constexpr double kTotal = 50000;                  // a second
  constexpr int kHeavy = 10000, kLight = 1000;
  constexpr double kHeavyRate = 10 * kTotal;        // 50 a second from each: within its 1000/s
  constexpr double kLightRate = kLight * (kTotal / kHeavy) / 10;  // 0.5 a second from each
  constexpr int kSeconds = 10;
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/s", "--new-rate", "100000/s", "--total", "50000/s"});
  // The light sources (198.19.0.0/16) counted apart, behind XDP.
  ASSERT_EQ(lab_->in_dut({"nft", "add table netdev xtlight; add counter netdev xtlight light; "
                                 "add chain netdev xtlight in { type filter hook ingress device \"dut0\" priority -400; }; "
                                 "add rule netdev xtlight in ip saddr 198.19.0.0/16 counter name light"})
                .rc,
            0);
  Background light(lab_->flood_argv({"--src", "198.19.0.1", "--sources", std::to_string(kLight), "--rate",
                                     std::to_string(kLightRate), "--count",
                                     std::to_string(static_cast<int>(kLightRate * kSeconds)), "--cpu", "1"}));
  Background heavy(lab_->flood_argv({"--src", "198.18.16.1", "--sources", std::to_string(kHeavy), "--rate",
                                     std::to_string(kHeavyRate), "--count",
                                     std::to_string(static_cast<int>(kHeavyRate * kSeconds)), "--cpu", "0"}));
  // The total's first burst (a second's worth) and the share's first
  // steps are over after two seconds; from then on, the rate.
  std::this_thread::sleep_for(2s);
  lab_->reset_received();
  const auto from = std::chrono::steady_clock::now();
  const Outcome h = heavy.wait();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
  const uint64_t passed = lab_->received_v4();
  const Outcome l = light.wait();
  ASSERT_EQ(h.rc, 0) << h.err;
  ASSERT_EQ(l.rc, 0) << l.err;
  const uint64_t light_sent = json::parse(l.out)["sent"].get<uint64_t>();
  const Outcome counted = lab_->in_dut({"nft", "-j", "list", "counter", "netdev", "xtlight", "light"});
  const uint64_t light_passed =
      json::parse(counted.out)["nftables"][1]["counter"]["packets"].get<uint64_t>();
  lab_->in_dut({"nft", "delete", "table", "netdev", "xtlight"});
  const double rate = static_cast<double>(passed) / seconds;
  const double light_loss = 1 - static_cast<double>(light_passed) / static_cast<double>(light_sent);
  std::printf("[ measure  ] %.0f/s passed of a total of %.0f/s (%.1f s); light sources: %llu of %llu passed "
              "(%.2f%% lost)\n",
              rate, kTotal, seconds, (unsigned long long)light_passed, (unsigned long long)light_sent,
              100 * light_loss);
  EXPECT_NEAR(rate, kTotal, kTotal * 0.03) << "within 3% of the total";
  EXPECT_LT(light_loss, 0.01) << "a source at a tenth of the fair share loses under 1%";
  const json s = stats();
  EXPECT_GT(s["reasons"]["over_total"]["packets"].get<uint64_t>(), 0u);
  EXPECT_EQ(s["reasons"]["over_limit"]["packets"].get<uint64_t>(), 0u) << "no source was over its own limit";
  EXPECT_GT(s["rules"]["198.18.0.0/15"]["fair_share_per_second"].get<double>(), 0.0) << "a share in force";
  EXPECT_GE(s["rules"]["198.18.0.0/15"]["fair_quiet_seconds"].get<double>(), 0.0) << "shown beside it";
}

}  // namespace
}  // namespace xt::test
