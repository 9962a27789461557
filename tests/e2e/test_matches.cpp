// SPDX-License-Identifier: MIT
// Rules per service (issue 13), end to end: the match on the command line,
// in rule list, stats, metrics and config files, and real traffic from a
// tool we did not write (hping3) held by the rule of its port.
#include <signal.h>

#include <chrono>

#include "operate_test.h"

namespace xt::test {
namespace {

using Matches = Operate;

TEST_F(Matches, ARuleIsItsCidrAndItsMatchEverywhere) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "1000/s"});
  ok({"rule", "add", "198.18.0.0/15", "--proto", "udp", "--port", "53", "--rate", "50/s"});
  ok({"rule", "add", "198.18.0.0/15", "--port", "22", "--syn", "--rate", "10/min"});
  ok({"rule", "add", "198.18.0.0/15", "--proto", "udp", "--port", "27000-27100", "--rate", "500/s"});
  const std::string before = lab_->xthrottle({"rule", "list", "--json"}).out;
  json list = rules();
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0]["match"], "");
  EXPECT_EQ(list[1]["match"], "udp/53");
  EXPECT_EQ(list[1]["proto"], "udp");
  EXPECT_EQ(list[1]["port_low"], 53);
  EXPECT_EQ(list[2]["match"], "udp/27000-27100");
  EXPECT_EQ(list[3]["match"], "tcp/22 syn");
  EXPECT_EQ(list[3]["syn"], true);
  EXPECT_NE(lab_->xthrottle({"rule", "list"}).out.find("tcp/22 syn"), std::string::npos);

  struct Case {
    std::vector<std::string> args;
    std::string token;
  } cases[] = {
      {{"rule", "add", "198.18.0.0/15", "--port", "53", "--rate", "1/s"}, "--port needs --proto tcp or --proto udp"},
      {{"rule", "add", "198.18.0.0/15", "--proto", "icmp", "--port", "53", "--rate", "1/s"}, "icmp"},
      {{"rule", "add", "198.18.0.0/15", "--proto", "udp", "--syn", "--rate", "1/s"}, "--syn"},
      {{"rule", "add", "198.18.0.0/15", "--proto", "udpp", "--rate", "1/s"}, "udpp"},
      {{"rule", "add", "198.18.0.0/15", "--proto", "udp", "--port", "70000", "--rate", "1/s"}, "70000"},
      {{"rule", "add", "198.18.0.0/15", "--proto", "udp", "--port", "99-1", "--rate", "1/s"}, "99-1"},
      {{"rule", "add", "2001:db8::/32", "--proto", "icmp", "--rate", "1/s"}, "icmpv6"},
      {{"rule", "del", "198.18.0.0/15", "--port", "53"}, "--port"},
  };
  for (const auto& c : cases) {
    Outcome r = lab_->xthrottle(c.args);
    EXPECT_EQ(r.rc, 2) << c.token << ": " << r.err;
    EXPECT_NE(r.err.find(c.token), std::string::npos) << r.err;
  }
  // A range that overlaps another without nesting: the system's refusal.
  Outcome overlap =
      lab_->xthrottle({"rule", "add", "0.0.0.0/0", "--proto", "udp", "--port", "27050-28000", "--rate", "1/s"});
  EXPECT_EQ(overlap.rc, 2) << overlap.err;
  EXPECT_NE(overlap.err.find("27000-27100"), std::string::npos) << overlap.err;
  EXPECT_EQ(lab_->xthrottle({"rule", "list", "--json"}).out, before) << "a refused rule changed something";

  // Stats carry the match.
  lab_->flood({"--src", "198.18.1.1", "--count", "100"});
  const json s = stats();
  EXPECT_TRUE(s["rules"].contains("198.18.0.0/15 udp/53")) << s["rules"].dump();
  EXPECT_EQ(s["rules"]["198.18.0.0/15"]["passed_packets"], 100) << "floodgen's UDP goes to port 9: no port rule";

  // Metrics carry it as a label of its own; status tells of a port rule
  // whose sources' fragments would pass unlimited.
  {
    Background serve(lab_->xthrottle_argv({"serve", "--metrics", "127.0.0.1:9431"}));
    ASSERT_TRUE(http_ready("http://127.0.0.1:9431/metrics"));
    Outcome metrics = lab_->in_dut({"curl", "-s", "-f", "http://127.0.0.1:9431/metrics"});
    serve.signal(SIGTERM);
    serve.wait();
    EXPECT_NE(metrics.out.find("xthrottle_packets_total{action=\"passed\",match=\"udp/53\",rule=\"198.18.0.0/15\"} 0\n"),
              std::string::npos)
        << metrics.out;
    EXPECT_NE(metrics.out.find("xthrottle_packets_total{action=\"passed\",rule=\"198.18.0.0/15\"} 100\n"),
              std::string::npos)
        << metrics.out;
  }
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0) << "the rule without a match covers the port rules";
  ok({"rule", "add", "0.0.0.0/0", "--proto", "udp", "--port", "5353", "--rate", "10/s"});
  Outcome gap = lab_->xthrottle({"status", "--check"});
  EXPECT_NE(gap.rc, 0);
  EXPECT_NE(gap.out.find("no rule without a port or --syn covers the sources of 0.0.0.0/0 udp/5353"), std::string::npos)
      << gap.out;
  ok({"rule", "del", "0.0.0.0/0", "--proto", "udp", "--port", "5353"});

  ok({"rule", "del", "198.18.0.0/15", "--proto", "udp", "--port", "53"});
  Outcome again = lab_->xthrottle({"rule", "del", "198.18.0.0/15", "--proto", "udp", "--port", "53"});
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.err.find("no rule for 198.18.0.0/15 udp/53"), std::string::npos) << again.err;
  EXPECT_EQ(rules().size(), 3u) << "only that rule went";
}

TEST_F(Matches, ConfigFilesNameMatchesAndDiffThem) {
  const std::string a = write("a.toml", R"([[rule]]
cidr = "0.0.0.0/0"
rate = "1000/s"

[[rule]]
cidr = "0.0.0.0/0"
proto = "udp"
port = 53
rate = "50/s"
)");
  const std::string b = write("b.toml", R"([[rule]]
cidr = "0.0.0.0/0"
rate = "1000/s"

[[rule]]
cidr = "0.0.0.0/0"
proto = "udp"
port = 53
rate = "100/s"

[[rule]]
cidr = "0.0.0.0/0"
proto = "tcp"
port = "22"
syn = true
rate = "10/min"
)");
  ok({"apply", a});
  const Outcome dry = lab_->xthrottle({"apply", b, "--dry-run"});
  ASSERT_EQ(dry.rc, 0) << dry.err;
  EXPECT_NE(dry.out.find("~ 0.0.0.0/0 udp/53"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("+ 0.0.0.0/0 tcp/22 syn"), std::string::npos) << dry.out;
  const json applied = lab_->xthrottle_json({"apply", b, "--json"});
  EXPECT_EQ(applied["unchanged"], 1);
  EXPECT_EQ(rules().size(), 3u);

  const std::string twice = write("twice.toml", R"([[rule]]
cidr = "0.0.0.0/0"
proto = "udp"
port = 53
rate = "50/s"

[[rule]]
cidr = "0.0.0.0/0"
proto = "udp"
port = "53"
rate = "60/s"
)");
  Outcome r = lab_->xthrottle({"apply", twice});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("twice.toml:7: 0.0.0.0/0 udp/53 already has a rule, at line 1"), std::string::npos) << r.err;
  // A range moved so that it overlaps where it was: the old rule goes first.
  const std::string moved_a = write("moved_a.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nrate = \"1000/s\"\n\n"
                                                    "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1000-2000\"\nrate = \"5/s\"\n");
  const std::string moved_b = write("moved_b.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nrate = \"1000/s\"\n\n"
                                                    "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1500-3000\"\nrate = \"5/s\"\n");
  ok({"apply", moved_a});
  ok({"apply", moved_b});
  EXPECT_EQ(rules()[1]["match"], "tcp/1500-3000");
  const std::string crossed = write("crossed.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1000-2000\"\nrate = \"5/s\"\n\n"
                                                    "[[rule]]\ncidr = \"10.0.0.0/8\"\nproto = \"tcp\"\nport = \"1500-3000\"\nrate = \"5/s\"\n");
  Outcome refused = lab_->xthrottle({"apply", crossed, "--dry-run"});
  EXPECT_EQ(refused.rc, 2) << refused.out;
  EXPECT_NE(refused.err.find("crossed.toml:7: port range 1500-3000 overlaps tcp range 1000-2000"), std::string::npos)
      << refused.err;
  ok({"apply", b});

  const std::string bad = write("bad.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nport = 53\nrate = \"1/s\"\n");
  r = lab_->xthrottle({"apply", bad});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("bad.toml:1: --port needs --proto"), std::string::npos) << r.err;
  // A protocol by its number, as `rule add --proto 6` takes it: the example
  // was a rate's ("100/s") whatever the key.
  const std::string number = write("number.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = 6\nrate = \"1/s\"\n");
  r = lab_->xthrottle({"apply", number});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("number.toml:3: proto must be a string, e.g. \"udp\""), std::string::npos) << r.err;
  EXPECT_EQ(rules().size(), 3u) << "a bad file changed nothing";
}

// hping3 (not ours) sends UDP to port 53 and to port 80, and SYNs to port 22,
// from one address: nftables behind XDP counts what passed.
TEST_F(Matches, HpingToOnePortIsHeldToItsRuleAndToAnotherIsNot) {
  ASSERT_NO_THROW(lab_->add_clients({}));
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100000/s"});
  ok({"rule", "add", "198.18.0.0/15", "--proto", "udp", "--port", "53", "--rate", "10/s", "--burst", "20"});
  ok({"rule", "add", "198.18.0.0/15", "--port", "22", "--syn", "--rate", "5/s", "--burst", "5"});
  auto hping = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"hping3", "-q", "-c", "200", "-i", "u2000"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("198.18.0.2");
    lab_->reset_received();
    const auto start = std::chrono::steady_clock::now();
    Outcome r = lab_->in_gen(argv);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_NE((r.out + r.err).find("200 packets transmitted"), std::string::npos) << r.out << r.err;
    return std::pair(lab_->received_v4(), seconds);
  };
  auto [dns, dns_seconds] = hping({"--udp", "-p", "53"});
  std::printf("[ measure  ] udp/53: %llu of 200 passed in %.2f s\n", (unsigned long long)dns, dns_seconds);
  EXPECT_GE(dns, 20u) << "the burst";
  EXPECT_LE(static_cast<double>(dns), 20 + 10 * dns_seconds + 1) << "burst + rate x elapsed at most";
  EXPECT_EQ(hping({"--udp", "-p", "80"}).first, 200u) << "udp/80: the rule without a match";
  auto [syns, syn_seconds] = hping({"-S", "-p", "22"});
  EXPECT_GE(syns, 5u);
  EXPECT_LE(static_cast<double>(syns), 5 + 5 * syn_seconds + 1);
  EXPECT_EQ(hping({"-A", "-p", "22"}).first, 200u) << "ACKs to 22 are no new connections";
  const json s = stats();
  EXPECT_EQ(s["rules"]["198.18.0.0/15 udp/53"]["passed_packets"], dns);
  EXPECT_EQ(s["rules"]["198.18.0.0/15 udp/53"]["dropped_packets"], 200 - dns);
  EXPECT_EQ(s["rules"]["198.18.0.0/15 tcp/22 syn"]["passed_packets"], syns);
}

}  // namespace
}  // namespace xt::test
