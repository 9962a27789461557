// SPDX-License-Identifier: MIT
// `xthrottle recommend` (issue 16) in the lab: under a dry-run rule, fifty
// quiet sources (10 a second each) and one heavy one (400 a second) are
// watched; the suggestion spares the quiet ones and catches the heavy one,
// and --plot draws it with gnuplot.
#include <chrono>
#include <fstream>
#include <thread>

#include "operate_test.h"

namespace xt::test {
namespace {

class Recommend : public Operate {};

TEST_F(Recommend, ADryRunPeriodGivesALimitThatSparesTheQuietSources) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1/s", "--dry-run", "--new-rate", "100000/s"});
  Background quiet(lab_->flood_argv({"--src", "198.18.1.1", "--sources", "50", "--count", "3500", "--rate", "500"}));
  Background heavy(lab_->flood_argv({"--src", "198.18.9.9", "--count", "2800", "--rate", "400"}));
  std::this_thread::sleep_for(1s);
  const std::string png = dir_ + "/rates.png";
  const json r = lab_->xthrottle_json({"recommend", "--for", "4s", "--spare", "98%", "--plot", png, "--json"});
  ASSERT_EQ(quiet.wait().rc, 0);
  ASSERT_EQ(heavy.wait().rc, 0);
  const json rule = r["198.18.0.0/15"];
  ASSERT_FALSE(rule.is_null()) << r.dump();
  const double rate = std::stod(rule["rate"].get<std::string>());
  std::printf("[ measure  ] %s: suggested --rate %s --burst %llu, %llu source(s) would lose packets\n",
              rule["sources"].dump().c_str(), rule["rate"].get<std::string>().c_str(),
              (unsigned long long)rule["burst"].get<uint64_t>(), (unsigned long long)rule["sources_dropped"].get<uint64_t>());
  EXPECT_EQ(rule["sources"], 51);
  EXPECT_GE(rate, 10.0) << "the quiet sources' rate";
  EXPECT_LT(rate, 100.0) << "well under the heavy one's";
  EXPECT_EQ(rule["sources_dropped"], 1) << "the heavy one alone";
  EXPECT_GE(rule["peak_second"]["max"].get<double>(), 350.0);
  std::ifstream in(png, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG") << "gnuplot drew " << png;
  const Outcome bad = lab_->xthrottle({"recommend", "--for", "1s"});
  EXPECT_EQ(bad.rc, 2) << bad.err;
}

}  // namespace
}  // namespace xt::test
