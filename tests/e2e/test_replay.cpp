// SPDX-License-Identifier: MIT
// `xthrottle replay` (issue 16) on captures real tools made in the lab:
// tcpdump records what hping3 sends to the protected host (a flood from one
// address, a well-behaved client from another) while the live program
// meters it; replaying the rules over the capture gives the live counts,
// within a tick's worth, from pcap and from the pcapng tshark makes of it;
// the flood's source is the one throttled. A cut-short or foreign file is a
// clear error.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <sys/stat.h>

#include "operate_test.h"

namespace xt::test {
namespace {

class Replay : public Operate {};

TEST_F(Replay, VerdictsMatchTheLiveProgramsOnTheSameTraffic) {
  ASSERT_NO_THROW(lab_->add_clients({}));
  const std::string config = write("rules.toml", R"([[rule]]
cidr = "198.18.0.0/15"
proto = "udp"
port = 53
rate = "100/s"
burst = 20
)");
  ok({"apply", config});
  const std::string pcap = dir_ + "/seen.pcap";
  {
    Background tcpdump({"ip", "netns", "exec", lab_->gen_ns(), "tcpdump", "-i", "gen0", "-U", "-w", pcap, "udp"});
    ASSERT_TRUE(tcpdump.wait_for_err("listening on")) << "tcpdump never listened";
    Background client({"ip", "netns", "exec", lab_->gen_ns(), "hping3", "-q", "--udp", "-p", "53", "-a", "198.18.0.5",
                       "-c", "40", "-i", "u25000", "198.18.0.2"});
    const Outcome flood = lab_->in_gen({"hping3", "-q", "--udp", "-p", "53", "-c", "2000", "-i", "u500", "198.18.0.2"});
    EXPECT_NE((flood.out + flood.err).find("2000 packets transmitted"), std::string::npos) << flood.out << flood.err;
    client.wait();
    std::this_thread::sleep_for(500ms);
    tcpdump.signal(SIGINT);
    tcpdump.wait();
  }
  const json live = stats()["rules"]["198.18.0.0/15 udp/53"];
  const json replayed = lab_->xthrottle_json({"replay", config, pcap, "--json"});
  ASSERT_EQ(replayed["replayed"], 2040) << replayed.dump();
  const json rule = replayed["rules"]["198.18.0.0/15 udp/53"];
  const auto near = [](const json& a, const json& b) {
    return std::abs(static_cast<double>(a.get<int64_t>() - b.get<int64_t>())) <= 2;
  };
  std::printf("[ measure  ] live passed %llu dropped %llu; replay passed %llu dropped %llu\n",
              (unsigned long long)live["passed_packets"].get<uint64_t>(),
              (unsigned long long)live["dropped_packets"].get<uint64_t>(),
              (unsigned long long)rule["passed_packets"].get<uint64_t>(),
              (unsigned long long)rule["dropped_packets"].get<uint64_t>());
  EXPECT_TRUE(near(rule["passed_packets"], live["passed_packets"])) << rule.dump() << " live " << live.dump();
  EXPECT_TRUE(near(rule["dropped_packets"], live["dropped_packets"])) << rule.dump() << " live " << live.dump();
  EXPECT_EQ(replayed["throttled_sources"], 1) << "the well-behaved client is not throttled: " << replayed.dump();
  ASSERT_EQ(replayed["throttled"].size(), 1u);
  EXPECT_EQ(replayed["throttled"][0]["source"], "198.18.0.1/32");
  EXPECT_LT(replayed["throttled"][0]["first_drop_seconds"].get<double>(), 1.0) << "past its burst of 20 at 2000/s";

  // The same capture as pcapng, by tshark: the same verdicts.
  const std::string pcapng = dir_ + "/seen.pcapng";
  ASSERT_EQ(run({"tshark", "-r", pcap, "-F", "pcapng", "-w", pcapng}).rc, 0);
  const json again = lab_->xthrottle_json({"replay", config, pcapng, "--json"});
  EXPECT_EQ(again["rules"], replayed["rules"]);

  // Cut short, or not a capture: a clear error, exit 2.
  const std::string bytes = file_bytes(pcap);
  const std::string cut = write("cut.pcap", bytes.substr(0, bytes.size() / 2 + 7));
  const Outcome short_read = lab_->xthrottle({"replay", config, cut});
  EXPECT_EQ(short_read.rc, 2);
  EXPECT_NE(short_read.err.find(cut + ": unreadable after"), std::string::npos) << short_read.err;
  const Outcome foreign = lab_->xthrottle({"replay", config, config});
  EXPECT_EQ(foreign.rc, 2);
  EXPECT_NE(foreign.err.find("not a capture"), std::string::npos) << foreign.err;
  // From standard input ("-", as libpcap reads it) and through a FIFO, each
  // opened once: the same replay.
  std::string piped_cmd;
  for (const auto& a : lab_->xthrottle_argv({"replay", config, "-", "--json"})) piped_cmd += "'" + a + "' ";
  const Outcome piped = run({"sh", "-c", piped_cmd + "< '" + pcap + "'"});
  ASSERT_EQ(piped.rc, 0) << piped.err;
  EXPECT_EQ(json::parse(piped.out)["replayed"], 2040);
  const std::string fifo = dir_ + "/seen.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Background feeder({"sh", "-c", "cat '" + pcap + "' > '" + fifo + "'"});
  const json fed = lab_->xthrottle_json({"replay", config, fifo, "--json"});
  EXPECT_EQ(fed["replayed"], 2040);
  EXPECT_EQ(feeder.wait().rc, 0) << "the writer saw its reader to the end";
  // Not there: the system's no, exit 1, as for a rules file that is not.
  const Outcome missing = lab_->xthrottle({"replay", config, dir_ + "/none.pcap"});
  EXPECT_EQ(missing.rc, 1) << missing.err;
  EXPECT_NE(missing.err.find("cannot read " + dir_ + "/none.pcap"), std::string::npos) << missing.err;
  // The table to replay in, as attach's options: bad values, exit 2.
  const Outcome idle = lab_->xthrottle({"replay", config, pcap, "--idle", "2h"});
  EXPECT_EQ(idle.rc, 2);
  EXPECT_NE(idle.err.find("bad --idle '2h'"), std::string::npos) << idle.err;
  const Outcome size = lab_->xthrottle({"replay", config, pcap, "--max-sources", "12"});
  EXPECT_EQ(size.rc, 2);
  EXPECT_NE(size.err.find("bad --max-sources 12"), std::string::npos) << size.err;
  const json small = lab_->xthrottle_json({"replay", config, pcap, "--json", "--max-sources", "4096", "--idle", "5s"});
  EXPECT_EQ(small["rules"], replayed["rules"]) << "a capture of seconds: the same verdicts in a small table";
}

}  // namespace
}  // namespace xt::test
