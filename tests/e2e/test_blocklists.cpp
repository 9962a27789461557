// SPDX-License-Identifier: MIT
// Blocklists (issue 14), through the CLI in the lab: a list of 1M entries
// in the formats operators have (plain, ipset save, Spamhaus DROP) is
// loaded and matched, its sources dropped while the rest pass; a list
// with a bad line is refused as FILE:LINE with nothing changed; a rules
// file names its lists, and apply and status keep to them.
#include <chrono>
#include <fstream>

#include "operate_test.h"

namespace xt::test {
namespace {

class Blocklists : public Operate {
 protected:
  uint64_t blocklisted() { return reason_packets("blocklisted"); }
};

TEST_F(Blocklists, AMillionEntriesLoadAndTheirSourcesAreDropped) {
  // 1M single addresses: every one of 198.18.0.0/15 but 198.18.200.0/24,
  // and the rest from 100.64.0.0/10; Spamhaus DROP's way of writing them.
  const std::string path = dir_ + "/drop.txt";
  {
    std::ofstream f(path);
    f << "; Spamhaus DROP List, as the lab writes it\n";
    int n = 0;
    for (uint32_t a = 0; a < (1u << 17); a++) {
      if ((a >> 8) == 200) continue;
      f << "198." << (18 + (a >> 16)) << "." << ((a >> 8) & 255) << "." << (a & 255) << "/32 ; SBL" << n++ << "\n";
    }
    for (uint32_t a = 0; n < 1000000; a++, n++)
      f << "100." << (64 + (a >> 16)) << "." << ((a >> 8) & 255) << "." << (a & 255) << "\n";
  }
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100000/s"});
  const auto start = std::chrono::steady_clock::now();
  ok({"blocklist", "load", "drop", path});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ measure  ] 1,000,000 entries loaded in %.2f s\n", seconds);
  const json lists = lab_->xthrottle_json({"blocklist", "list", "--json"});
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0]["name"], "drop");
  EXPECT_EQ(lists[0]["entries"], 1000000);

  lab_->reset_received();
  const Flood listed = flood_from("198.18.7.9", 1000);
  EXPECT_EQ(lab_->received_v4(), 0u) << "a listed source: every packet dropped";
  EXPECT_EQ(blocklisted(), listed.sent);
  const Flood free = flood_from("198.18.200.9", 1000);
  EXPECT_EQ(lab_->received_v4(), free.sent) << "its /24 is not listed: all pass";
  EXPECT_EQ(lab_->xthrottle({"blocklist", "test", "198.18.7.9"}).rc, 0);
  EXPECT_EQ(lab_->xthrottle({"blocklist", "test", "198.18.200.9"}).rc, 3);

  // Replaced by an ipset save of one /24: the million go at once.
  const std::string ipset = dir_ + "/set.save";
  std::ofstream(ipset) << "create drop hash:net family inet hashsize 1024 maxelem 65536\n"
                          "add drop 198.18.200.0/24\n";
  ok({"blocklist", "load", "drop", ipset});
  lab_->reset_received();
  const Flood before = flood_from("198.18.7.9", 1000);
  EXPECT_EQ(lab_->received_v4(), before.sent) << "no longer listed";
  flood_from("198.18.200.9", 1000);
  EXPECT_EQ(lab_->received_v4(), before.sent) << "now listed";
  ok({"blocklist", "del", "drop"});
  EXPECT_EQ(lab_->xthrottle_json({"blocklist", "list", "--json"}).size(), 0u);
}

// An --allow rule beats the lists, and `blocklist test` said "is
// blocklisted" (exit 0) for an address whose every packet passes: an
// operator checking that an attacker is blocked was told yes. It says which
// rule lets it through, and exit 3 when that is all of its packets.
TEST_F(Blocklists, TestSaysWhenAnAllowRuleLetsAListedAddressThrough) {
  const std::string path = dir_ + "/drop.txt";
  std::ofstream(path) << "198.18.7.0/24\n";
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100000/s"});
  ok({"blocklist", "load", "drop", path});
  ok({"rule", "add", "198.18.7.0/24", "--allow"});
  lab_->reset_received();
  const Flood f = flood_from("198.18.7.9", 100);
  ASSERT_EQ(lab_->received_v4(), f.sent) << "the allow rule wins";
  Outcome all = lab_->xthrottle({"blocklist", "test", "198.18.7.9"});
  EXPECT_EQ(all.rc, 3) << all.out;
  EXPECT_NE(all.out.find("198.18.7.0/24 (--allow) lets every packet of it through"), std::string::npos) << all.out;

  // Allowed to one port only: the rest of its packets are dropped.
  ok({"rule", "del", "198.18.7.0/24"});
  ok({"rule", "add", "198.18.7.0/24", "--proto", "tcp", "--port", "22", "--allow"});
  Outcome some = lab_->xthrottle({"blocklist", "test", "198.18.7.9"});
  EXPECT_EQ(some.rc, 0) << some.out;
  EXPECT_NE(some.out.find("is blocklisted, but for the packets of rule 198.18.7.0/24 tcp/22"), std::string::npos)
      << some.out;
  lab_->reset_received();
  flood_from("198.18.7.9", 100);
  EXPECT_EQ(lab_->received_v4(), 0u) << "its UDP dropped as listed";
}

TEST_F(Blocklists, ABadLineIsFileAndLineWithNothingChanged) {
  const std::string good = write("good.txt", "198.18.1.0/24\n"), bad = write("bad.txt", "# ok\n198.18.2.0/24\nexample.com\n");
  ok({"blocklist", "load", "l", good});
  const Outcome r = lab_->xthrottle({"blocklist", "load", "l", bad});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find(bad + ":3:"), std::string::npos) << r.err;
  EXPECT_EQ(lab_->xthrottle({"blocklist", "test", "198.18.1.9"}).rc, 0) << "the list as it was";
  EXPECT_EQ(lab_->xthrottle({"blocklist", "test", "198.18.2.9"}).rc, 3);
  EXPECT_EQ(lab_->xthrottle({"blocklist", "del", "nope"}).rc, 1) << "no such list, as rule del and ban del say";
  EXPECT_EQ(lab_->xthrottle({"blocklist", "load", "bad/name", good}).rc, 2);
}

TEST_F(Blocklists, ARulesFileNamesItsListsAndApplyKeepsToThem) {
  write("drop.txt", "# the lab's own\n198.18.7.0/24\n");
  const std::string config = write("rules.toml", R"([[rule]]
cidr = "198.18.0.0/15"
rate = "100000/s"

[[blocklist]]
name = "drop"
file = "drop.txt"
)");
  const json dry = lab_->xthrottle_json({"apply", config, "--dry-run", "--json"});
  ASSERT_EQ(dry["blocklists"]["add"].size(), 1u) << dry.dump();
  EXPECT_EQ(dry["blocklists"]["add"][0]["entries"], 1);
  EXPECT_EQ(dry["blocklists"]["add"][0]["file"], dir_ + "/drop.txt");

  ok({"apply", config});
  lab_->reset_received();
  const Flood listed = flood_from("198.18.7.9", 1000);
  EXPECT_EQ(lab_->received_v4(), 0u);
  EXPECT_EQ(blocklisted(), listed.sent);
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0) << "the live lists are what the file says";

  // Deleted by hand: status says the state drifted from the file, and
  // applying it again brings the list back.
  ok({"blocklist", "del", "drop"});
  const Outcome drift = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(drift.rc, 4);
  EXPECT_NE(drift.out.find("1 blocklist(s) missing"), std::string::npos) << drift.out;
  const json back = lab_->xthrottle_json({"apply", config, "--json"});
  EXPECT_EQ(back["blocklists"]["add"].size(), 1u) << back.dump();
  EXPECT_EQ(lab_->xthrottle({"blocklist", "test", "198.18.7.9"}).rc, 0);

  // A bad line in the list: the list's FILE:LINE, exit 2, nothing changed.
  write("drop.txt", "198.18.8.0/24\n198.18.9.0/33\n");
  const Outcome bad = lab_->xthrottle({"apply", config});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find(dir_ + "/drop.txt:2:"), std::string::npos) << bad.err;
  EXPECT_EQ(lab_->xthrottle({"blocklist", "test", "198.18.7.9"}).rc, 0) << "the list as it was";
  EXPECT_EQ(lab_->xthrottle({"blocklist", "test", "198.18.8.9"}).rc, 3);
}

}  // namespace
}  // namespace xt
