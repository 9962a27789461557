// SPDX-License-Identifier: MIT
// `xthrottle recommend` (issue 16) in the lab: under a dry-run rule, twenty
// quiet sources (10 a second each) and hping3 from one address (250 a
// second), watched live and recorded by serve across a restart; the
// suggestion spares the quiet ones and catches the heavy one, --plot draws
// it with gnuplot, and every packet nftables saw is in the record.
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "operate_test.h"

namespace xt::test {
namespace {

class Recommend : public Operate {};

// A rule no source sent through has no suggestion (it was told --rate 1/s
// --burst 1, and its empty plot failed the whole run, exit 1, with "is
// gnuplot-nox installed?"); gnuplot's warnings (one prefix makes an empty
// range) go to stderr, not into the JSON on stdout.
TEST_F(Recommend, AQuietRuleHasNoSuggestionAndThePlotKeepsStdoutJson) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1/s", "--dry-run", "--new-rate", "100000/s"});
  ok({"rule", "add", "198.18.0.0/15", "--proto", "tcp", "--port", "443", "--rate", "1/s", "--dry-run"});
  const std::string png = dir_ + "/rates.png";
  Background watch(lab_->xthrottle_argv({"recommend", "--for", "2s", "--per", "16", "--plot", png, "--json"}));
  lab_->flood({"--src", "198.18.1.1", "--sources", "20", "--count", "400", "--rate", "200"});
  const Outcome r = watch.wait();
  ASSERT_EQ(r.rc, 0) << r.err;
  json j;
  ASSERT_NO_THROW(j = json::parse(r.out)) << "stdout is the JSON alone: " << r.out;
  EXPECT_EQ(j["198.18.0.0/15"]["sources"], 1) << "twenty sources in one /16";
  EXPECT_TRUE(j["198.18.0.0/15"]["rate"].is_string()) << j.dump();
  EXPECT_EQ(j["198.18.0.0/15 tcp/443"]["sources"], 0) << j.dump();
  EXPECT_TRUE(j["198.18.0.0/15 tcp/443"]["rate"].is_null()) << j.dump();
  size_t plots = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir_)) plots += f.path().filename().string().starts_with("rates.png.");
  EXPECT_EQ(plots, 1u) << "the busy rule's plot, none for the quiet one";
  const Outcome text = lab_->xthrottle({"recommend", "--for", "2s", "--rule", "198.18.0.0/15 tcp/443"});
  EXPECT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("no source sent through it: no suggestion"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("suggested:"), std::string::npos) << text.out;
  const Outcome none = lab_->xthrottle({"recommend", "--for", "2s", "--rule", "10.0.0.0/8"});
  EXPECT_EQ(none.rc, 1) << "no such rule, as capture --rule and rule del say: " << none.err;
  EXPECT_NE(none.err.find("no limit rule 10.0.0.0/8"), std::string::npos) << none.err;
}

TEST_F(Recommend, ADryRunPeriodWatchedOrRecordedGivesALimitThatSparesTheQuietSources) {
  ASSERT_NO_THROW(lab_->add_clients({}));
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1/s", "--dry-run", "--new-rate", "100000/s"});
  const std::string rec = dir_ + "/sources.rec";
  write("sources.rec", "not a record\n");  // what was there is moved aside, not written over
  lab_->reset_received();
  auto serve_while = [&](const std::function<void()>& traffic) {
    Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431", "--record", rec}));
    std::this_thread::sleep_for(700ms);  // its first read of the counters, at once
    traffic();
    std::this_thread::sleep_for(1200ms);  // and the read after the traffic
    serve.signal(SIGTERM);
    return serve.wait();
  };
  // 20 quiet sources at 10 a second, and hping3 from one address at 250 a
  // second; then serve is restarted, and the quiet ones send again.
  // While serve records the first part, recommend also watches it live.
  const std::string png = dir_ + "/rates.png";
  Outcome live;
  const Outcome first = serve_while([&] {
    Background heavy({"ip", "netns", "exec", lab_->gen_ns(), "hping3", "-q", "--udp", "-p", "53", "-a", "198.18.9.9",
                      "-c", "500", "-i", "u4000", "198.18.0.2"});
    Background watch(
        lab_->xthrottle_argv({"recommend", "--for", "2s", "--spare", "95%", "--plot", png, "--json"}));
    lab_->flood({"--src", "198.18.1.1", "--sources", "20", "--count", "400", "--rate", "200"});
    heavy.wait();
    live = watch.wait();
  });
  ASSERT_EQ(first.rc, 0) << first.err;
  ASSERT_EQ(live.rc, 0) << live.err;
  {
    const json r = json::parse(live.out)["198.18.0.0/15"];
    std::printf("[ measure  ] watched live: %s sources, suggested --rate %s --burst %s, %s would lose packets\n",
                r["sources"].dump().c_str(), r["rate"].get<std::string>().c_str(), r["burst"].dump().c_str(),
                r["sources_dropped"].dump().c_str());
    EXPECT_EQ(r["sources"], 21);
    const double rate = std::stod(r["rate"].get<std::string>());
    EXPECT_GE(rate, 5.0) << "about the quiet sources' 10 a second";
    EXPECT_LT(rate, 100.0) << "well under hping3's 250";
    EXPECT_EQ(r["sources_dropped"], 1) << "hping3's source alone";
    std::ifstream in(png, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG") << "gnuplot drew " << png;
  }
  EXPECT_NE(first.out.find("\"record_rejected\""), std::string::npos) << first.out;
  const Outcome second = serve_while([&] {
    lab_->flood({"--src", "198.18.1.1", "--sources", "20", "--count", "400", "--rate", "200"});
  });
  ASSERT_EQ(second.rc, 0) << second.err;
  size_t aside = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir_))
    aside += f.path().filename().string().starts_with("sources.rec.rejected-");
  EXPECT_EQ(aside, 1u);

  const json r = lab_->xthrottle_json({"recommend", "--from", rec, "--spare", "95%", "--json"});
  const json rule = r["198.18.0.0/15"];
  ASSERT_FALSE(rule.is_null()) << r.dump();
  std::printf("[ measure  ] recorded %s packets in %s s over %s s; nftables saw %llu; suggested --rate %s --burst %s\n",
              rule["packets"].dump().c_str(), rule["seconds"].dump().c_str(), rule["span_seconds"].dump().c_str(),
              (unsigned long long)lab_->received_v4(), rule["rate"].get<std::string>().c_str(),
              rule["burst"].dump().c_str());
  EXPECT_EQ(rule["sources"], 21);
  EXPECT_EQ(rule["packets"].get<uint64_t>(), lab_->received_v4()) << "every packet that reached the rule, once";
  EXPECT_GE(rule["seconds"].get<uint64_t>(), 6u);
  // Shorter than a minute, the whole span is the busiest minute: a quiet
  // source sent 40 in it, which at 95% is the rate (hping3's source is the
  // twenty-first of 21).
  const double span = rule["span_seconds"].get<double>();
  EXPECT_EQ(rule["rate"], std::to_string(static_cast<int>(std::ceil(40 / span))) + "/s");
  EXPECT_EQ(rule["sources_dropped"], 1) << "hping3's source alone";
  EXPECT_GE(rule["peak_second"]["max"].get<double>(), 200.0);
  // Per /24: the quiet twenty are one prefix.
  const json per = lab_->xthrottle_json({"recommend", "--from", rec, "--per", "24", "--json"});
  EXPECT_EQ(per["198.18.0.0/15"]["sources"], 2) << per.dump();
  EXPECT_EQ(per["198.18.0.0/15"]["packets"], rule["packets"]);
  // A file that is not a record, --per longer than counted, --for with --from,
  // --for too short, a --spare that is no percentage whole.
  std::string junk;
  for (const auto& f : std::filesystem::directory_iterator(dir_))
    if (f.path().filename().string().starts_with("sources.rec.rejected-")) junk = f.path();
  for (const auto& args : {std::vector<std::string>{"recommend", "--from", junk},
                           std::vector<std::string>{"recommend", "--from", rec, "--per", "48"},
                           std::vector<std::string>{"recommend", "--from", rec, "--for", "5s"},
                           std::vector<std::string>{"recommend", "--for", "1s"},
                           std::vector<std::string>{"recommend", "--from", rec, "--spare", "99.9abc"},
                           std::vector<std::string>{"recommend", "--from", rec, "--spare", "0x10"}}) {
    const Outcome bad = lab_->xthrottle(args);
    EXPECT_EQ(bad.rc, 2) << args.back() << ": " << bad.err;
  }
}

}  // namespace
}  // namespace xt::test
