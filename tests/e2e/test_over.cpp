// SPDX-License-Identifier: MIT
// --over redirect:IFACE (issue 14), in the lab: what a rule drops leaves
// through a third interface, to a namespace whose nftables counts what
// arrives (the scrubber); what it passes still reaches dut0's stack. When
// the interface goes, the rule drops again and status warns.
#include "operate_test.h"

namespace xt::test {
namespace {

class Over : public Operate {};

TEST_F(Over, WhatARuleDropsArrivesAtTheScrubberAndWhatItPassesAtTheHost) {
  lab_->add_scrubber();
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--burst", "100", "--over", "redirect:scrub0"});
  lab_->reset_received();
  const Flood f = flood_from("198.18.0.9", 2000);
  ASSERT_EQ(f.lost, 0u) << "gen0's ring overflowed: pace the flood";
  const uint64_t passed = lab_->received_v4(), scrubbed = lab_->scrubbed();
  const json s = stats();
  const uint64_t over = s["reasons"]["over_limit"]["packets"].get<uint64_t>();
  std::printf("[ measure  ] %llu sent in %.2f s: %llu passed to the host, %llu arrived at the scrubber\n",
              (unsigned long long)f.sent, f.seconds, (unsigned long long)passed, (unsigned long long)scrubbed);
  EXPECT_GE(passed, 100u) << "the burst";
  EXPECT_LE(passed, 100u + static_cast<uint64_t>(10 * f.seconds) + 1) << "burst + rate x elapsed";
  EXPECT_EQ(scrubbed, over) << "every packet over the limit arrived at the scrubber, nothing else";
  EXPECT_EQ(passed + scrubbed, f.sent) << "nothing lost on either side";
  EXPECT_EQ(s["redirected"]["packets"].get<uint64_t>(), over);
  EXPECT_EQ(s["rules"]["198.18.0.0/15"]["redirected_packets"].get<uint64_t>(), over);
  EXPECT_EQ(rule("198.18.0.0/15")["redirect_interface"], "scrub0");
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0) << "redirecting to a live interface is no warning";

  // The interface goes: the rule drops again, and status says so.
  ASSERT_EQ(lab_->in_dut({"ip", "link", "del", "scrub0"}).rc, 0);
  const Flood g = flood_from("198.18.0.10", 2000);
  const json t = stats();
  const uint64_t over_after = t["reasons"]["over_limit"]["packets"].get<uint64_t>();
  EXPECT_GT(over_after, over + 1800) << "the second source's packets over the limit";
  EXPECT_EQ(t["redirected"]["packets"].get<uint64_t>(), over) << "none of them sent anywhere";
  EXPECT_LE(lab_->received_v4(), passed + 100 + static_cast<uint64_t>(10 * g.seconds) + 1);
  const Outcome status = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(status.rc, 3) << status.out;
  EXPECT_NE(status.out.find("sends its drops out scrub0, which is gone"), std::string::npos) << status.out;
}

// An interface that is not there is refused by name, and nothing changes.
TEST_F(Over, ARuleNamingAMissingInterfaceIsRefused) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "50/s"});  // what each refusal must leave as it is
  const json before = rules();
  const Outcome r = lab_->xthrottle({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--over", "redirect:nosuch0"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("nosuch0"), std::string::npos) << r.err;
  EXPECT_EQ(rules(), before);
  const Outcome bad = lab_->xthrottle({"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--over", "tarpit"});
  EXPECT_EQ(bad.rc, 2) << bad.err;
  EXPECT_NE(bad.err.find("tarpit"), std::string::npos) << bad.err;
  EXPECT_EQ(rules(), before);
}

// A rules file says the same with `over` and `over_reasons`; a bad kind is
// FILE:LINE, exit 2, nothing changed.
TEST_F(Over, ARulesFileSendsDropsOutAnInterfaceToo) {
  lab_->add_scrubber();
  const std::string path = write("rules.toml", R"([[rule]]
cidr = "198.18.0.0/15"
rate = "10/s"
over = "redirect:scrub0"
over_reasons = "over_limit"
)");
  ok({"apply", path});
  EXPECT_EQ(rule("198.18.0.0/15")["over_reasons"], json::array({"over_limit"}));
  const Flood f = flood_from("198.18.0.9", 500);
  EXPECT_EQ(lab_->scrubbed(), f.sent - lab_->received_v4());
  EXPECT_GT(lab_->scrubbed(), 400u);
  const std::string bad = write("bad.toml", R"([[rule]]
cidr = "198.18.0.0/15"
rate = "10/s"
over = "redirect:scrub0"
over_reasons = "over_limit,sometimes"
)");
  const Outcome refused = lab_->xthrottle({"apply", bad});
  EXPECT_EQ(refused.rc, 2);
  EXPECT_NE(refused.err.find("bad.toml:5"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("sometimes"), std::string::npos) << refused.err;
  EXPECT_EQ(rule("198.18.0.0/15")["over_reasons"], json::array({"over_limit"})) << "nothing changed";
}

}  // namespace
}  // namespace xt::test
