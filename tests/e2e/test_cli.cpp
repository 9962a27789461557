// SPDX-License-Identifier: MIT
// The command-line contract (README, "Usage") in a namespace lab: exit codes, the
// bad token in every message, nothing changed by a rejected command, and a
// status that tells the truth.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <xthrottle/abi.h>

#include "lab_test.h"

namespace xt::test {
namespace {

using json = nlohmann::json;
using Cli = LabTest;

TEST_F(Cli, BadInputExitsTwoNamesTheTokenAndChangesNothing) {
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  ok({"rule", "add", "2001:db8::/32", "--bandwidth", "10Mbit/s"});
  const std::string before = lab_->xthrottle({"rule", "list", "--json"}).out;

  struct Case {
    std::vector<std::string> args;
    std::string token;
  } cases[] = {
      {{"rule", "add", "198.18.0.0/33", "--rate", "10/s"}, "33"},
      {{"rule", "add", "banana", "--rate", "10/s"}, "banana"},
      {{"rule", "add", "198.18.0.1/15", "--rate", "10/s"}, "host bits"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "10/fortnight"}, "fortnight"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "0/s"}, "0/s"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "99999999999999999999/s"}, "99999999999999999999"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--burst", "0"}, "--burst"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "1/day", "--burst", "1000000000"}, "1000000000"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "123456789/s"}, "round it"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--new-rate", "0/s"}, "0/s"},
      {{"rule", "add", "198.18.0.0/15", "--deny", "--new-rate", "10/s"}, "--new-rate"},
      {{"attach", "dut0", "--max-sources", "12"}, "--max-sources"},
      {{"attach", "dut0", "--idle", "0"}, "--idle"},
      {{"attach", "dut0", "--idle", "2h"}, "--idle"},
      {{"attach", "dut0", "--idle", "soon"}, "soon"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--per", "33"}, "33"},
      {{"rule", "add", "2001:db8::/32", "--rate", "10/s", "--per", "129"}, "129"},
      {{"rule", "add", "198.18.0.0/15", "--bandwidth", "10Mb/s"}, "Mb"},
      {{"rule", "add", "198.18.0.0/15", "--bandwidth", "10", "Mbit/week"}, "week"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "100/min", "--rate", "50/day"}, "--rate 50/day"},
      {{"rule", "add", "198.18.0.0/15", "--burst-bytes", "100"}, "--bandwidth"},
      {{"rule", "add", "198.18.0.0/15"}, "--rate"},
      {{"rule", "add", "198.18.0.0/15", "--allow", "--deny"}, "--deny"},
      {{"rule", "add", "198.18.0.0/15", "--allow", "--rate", "10/s"}, "--allow"},
      {{"rule", "del", "198.18.0.0/99"}, "99"},
      {{"attach", "dut0", "--mode", "turbo"}, "turbo"},
      {{"stats", "--watch", "-1"}, "--watch"},
      // CLI11 alone let "nan" through a range and read integers as C does:
      // "010" as 8, "0x10" as 16, one past 2^64 as the largest there is.
      {{"stats", "--watch", "nan"}, "nan"},
      {{"top", "--watch", "nan"}, "nan"},
      {{"top", "--watch", "1e10"}, "1e10"},
      {{"top", "--limit", "010"}, "010"},
      {{"capture", "--count", "0x10"}, "0x10"},
      {{"capture", "--count", "99999999999999999999"}, "99999999999999999999"},
      {{"capture", "--snaplen", "010"}, "010"},
      {{"replay", "a.toml", "b.pcap", "--hz", "0x64"}, "0x64"},
      // An option that means something only beside another is refused
      // without it, not ignored; a default given by hand too.
      {{"serve", "--snapshot-every", "1min"}, "--snapshot"},
      {{"serve", "--cluster-name", "x"}, "--cluster"},
      {{"serve", "--cluster-every", "100ms"}, "--cluster"},
      {{"serve", "--record-max", "256MB"}, "--record"},
      {{"rule", "add", "198.18.0.0/15", "--rate", "10/s", "--ban-after", "off", "--ban-for", "1h"}, "first drop"},
      {{"frobnicate"}, "frobnicate"},
      // An IPv4 client as a dual-stack socket names it: its packets are
      // IPv4 here, and a rule, ban or list of the mapped form never
      // matched them (taken, exit 0).
      {{"ban", "add", "::ffff:198.18.0.7", "--for", "1h"}, "198.18.0.7"},
      {{"rule", "add", "::ffff:198.18.0.0/111", "--rate", "10/s"}, "198.18.0.0/15"},
      {{"blocklist", "test", "::ffff:198.18.0.7"}, "198.18.0.7"},
      {{"rule", "add", "--rate", "10/s"}, "needs a CIDR"},
  };
  for (const auto& c : cases) {
    // Bounded: a --watch taken as nan printed in a loop with no end.
    std::vector<std::string> argv = {"timeout", "10"};
    for (const auto& a : lab_->xthrottle_argv(c.args)) argv.push_back(a);
    Outcome r = run(argv);
    std::string cmd;
    for (const auto& a : c.args) cmd += a + " ";
    EXPECT_EQ(r.rc, 2) << cmd << "-> " << r.err;
    EXPECT_NE(r.err.find(c.token), std::string::npos) << cmd << ": message does not name " << c.token << ": " << r.err;
  }
  EXPECT_EQ(lab_->xthrottle({"rule", "list", "--json"}).out, before) << "a rejected command changed the rules";
  EXPECT_EQ(lab_->xthrottle({"bans", "--json"}).out, "[]\n") << "a rejected command banned";
  EXPECT_FALSE(lab_->xthrottle_json({"status", "--json"})["interfaces"].size())
      << "the rejected attach attached anyway";
  // A mistyped command is told the commands there are, all of them (the
  // list was written out by hand and lacked the eight added since).
  const Outcome typo = lab_->xthrottle({"bna", "add", "198.18.0.9"});
  EXPECT_EQ(typo.rc, 2);
  for (const char* name : {"attach", "ban", "bans", "blocklist", "capture", "save", "restore", "replay", "recommend"})
    EXPECT_NE(typo.err.find(name), std::string::npos) << "does not list " << name << ": " << typo.err;
}

// A list past what the data path takes on its own is refused before the
// state is made: it was refused only once loading, the state made already
// (with the default table, so that an attach --max-sources after was
// refused as a resize). 8,193 /25s are 1,048,704 addresses, 128 past the
// limit. (Nothing is sent to them: a list, not traffic.)
TEST_F(Cli, ABlocklistTooLargeOnItsOwnMakesNoState) {
  std::string text;
  for (uint32_t i = 0; i <= XT_MAX_BLOCK_HOSTS / 128; i++)
    text += "10." + std::to_string(i >> 9 & 255) + "." + std::to_string(i >> 1 & 255) + "." +
            std::to_string((i & 1) * 128) + "/25\n";
  const std::string big = "/tmp/xt-e2e-big-" + std::to_string(getpid()) + ".txt";
  std::ofstream(big) << text;
  const Outcome r = lab_->xthrottle({"blocklist", "load", "big", big});
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find(std::to_string(XT_MAX_BLOCK_HOSTS + 128) + " IPv4 addresses"), std::string::npos) << r.err;
  EXPECT_EQ(lab_->xthrottle({"rule", "list"}).rc, 1) << "the refused load made the state";
  std::filesystem::remove(big);
}

// A rule or a rules file that cannot be metered is refused before the pins
// are locked, which makes the directory (and mounts a BPF file system on
// /sys/fs/bpf where there is none) and needs root. They were checked only
// under the lock: a pin directory made for a typo, and exit 1 for it where
// the directory is off a BPF file system or the user lacks the privilege.
TEST_F(Cli, RefusedInputMakesNothingAndNeedsNoPrivilege) {
  const std::string file = "/tmp/xt-e2e-" + std::to_string(getpid()) + "-norate.toml";
  std::ofstream(file) << "[[rule]]\ncidr = \"198.18.0.0/15\"\n";
  const std::string fresh = std::filesystem::path(lab_->pin_dir()).parent_path() / "fresh";  // on the lab's bpffs
  const std::string off = "/tmp/xt-e2e-" + std::to_string(getpid()) + "-pins";                // on none
  const std::vector<std::string> nobody = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  for (const std::string& pins : {fresh, off})
    for (const bool root : {true, false})
      for (const std::vector<std::string>& args :
           {std::vector<std::string>{"rule", "add", "198.18.0.0/15"}, std::vector<std::string>{"apply", file}}) {
        std::vector<std::string> argv = {"ip", "netns", "exec", lab_->dut_ns()};
        if (!root) argv.insert(argv.end(), nobody.begin(), nobody.end());
        argv.insert(argv.end(), {XT_BIN, "--pin-dir", pins});
        argv.insert(argv.end(), args.begin(), args.end());
        const Outcome r = run(argv);
        const std::string who = (root ? "root, " : "nobody, ") + pins + ": " + args[0];
        EXPECT_EQ(r.rc, 2) << who << " -> " << r.err;
        EXPECT_NE(r.err.find("--rate"), std::string::npos) << who << " -> " << r.err;
        EXPECT_FALSE(std::filesystem::exists(pins)) << who << " made the pin directory";
        std::error_code ec;
        std::filesystem::remove(pins, ec);
      }
  std::filesystem::remove(file);
}

// A bare address is a CIDR where README says so (rule add 192.0.2.10
// --allow), after a one-word --bandwidth too, which may take two words:
// it used to keep the address as its second and say "needs a CIDR". So is
// a CIDR after any option that may be given several times (--rate, --burst,
// --burst-bytes), which took it as one of its values.
TEST_F(Cli, ABareAddressAfterABandwidthIsTheRulesCIDR) {
  ok({"rule", "add", "--bandwidth", "10Mbit/s", "198.18.0.10"});
  ok({"rule", "add", "--rate", "100/s", "198.18.1.0/24"});
  ok({"rule", "add", "--rate", "100/s", "--burst", "50", "198.18.2.0/24"});
  ok({"rule", "add", "--bandwidth", "1Mbit/s", "--burst-bytes", "65536", "2001:db8::/32"});
  // --total-bandwidth in README's two words (N UNIT/PERIOD), as --bandwidth
  // takes them: it took one, and the unit was a stray argument (exit 2).
  ok({"rule", "add", "198.18.3.0/24", "--rate", "100/s", "--total-bandwidth", "100", "Mbit/s"});
  ok({"rule", "add", "--rate", "100/s", "--total-bandwidth", "1Gbit/s", "198.18.4.0/24"});
  const Outcome twice = lab_->xthrottle(
      {"rule", "add", "198.18.5.0/24", "--rate", "1/s", "--total-bandwidth", "1Gbit/s", "--total-bandwidth", "2Gbit/s"});
  EXPECT_EQ(twice.rc, 2);
  EXPECT_NE(twice.err.find("given once"), std::string::npos) << twice.err;
  const auto rules = lab_->xthrottle_json({"rule", "list", "--json"});
  ASSERT_EQ(rules.size(), 6u) << rules.dump();
  std::set<std::string> cidrs;
  for (const auto& r : rules) cidrs.insert(r["cidr"]);
  EXPECT_EQ(cidrs, (std::set<std::string>{"198.18.0.10/32", "198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24",
                                          "198.18.4.0/24", "2001:db8::/32"}))
      << rules.dump();
  const std::string listed = lab_->xthrottle({"rule", "list"}).out;
  EXPECT_NE(listed.find("100Mbit/s"), std::string::npos) << listed;
}

TEST_F(Cli, SystemRefusalsExitOneAndSayWhat) {
  Outcome none = lab_->xthrottle({"rule", "list"});
  EXPECT_EQ(none.rc, 1);
  EXPECT_NE(none.err.find("no xthrottle state"), std::string::npos) << none.err;

  Outcome missing = lab_->xthrottle({"attach", "nosuch0"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("nosuch0"), std::string::npos) << missing.err;
  EXPECT_EQ(lab_->xthrottle({"rule", "list"}).rc, 1) << "the failed attach created state";

  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  Outcome del = lab_->xthrottle({"rule", "del", "198.18.9.0/24"});
  EXPECT_EQ(del.rc, 1);
  EXPECT_NE(del.err.find("198.18.9.0/24"), std::string::npos) << del.err;

  Outcome detach = lab_->xthrottle({"detach", "dut0"});
  EXPECT_EQ(detach.rc, 1);
  EXPECT_NE(detach.err.find("not attached"), std::string::npos) << detach.err;

  Outcome not_bpffs = run({"ip", "netns", "exec", lab_->dut_ns(), XT_BIN, "--pin-dir", "/tmp/xt-e2e-not-bpffs/pins",
                       "rule", "add", "198.18.0.0/15", "--rate", "1/s"});
  EXPECT_EQ(not_bpffs.rc, 1);
  EXPECT_NE(not_bpffs.err.find("not on a BPF file system"), std::string::npos) << not_bpffs.err;
}

TEST_F(Cli, WithoutPrivilegeItSaysSoAndChangesNothing) {
  ok({"attach", "dut0"});
  ok({"rule", "add", "198.18.0.0/15", "--rate", "10/s"});
  const std::string before = lab_->xthrottle({"rule", "list", "--json"}).out;
  auto xthrottle_as_nobody = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {XT_BIN, "--pin-dir", lab_->pin_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    return as_nobody(argv);
  };
  for (const auto& args : std::vector<std::vector<std::string>>{{"rule", "add", "198.18.0.0/15", "--rate", "1000/s"},
                                                                {"rule", "del", "198.18.0.0/15"},
                                                                {"detach", "dut0"},
                                                                {"stats"}}) {
    Outcome r = xthrottle_as_nobody(args);
    EXPECT_EQ(r.rc, 1) << args[0] << " " << args[1] << ": " << r.err;
    EXPECT_NE(r.err.find("needs root"), std::string::npos) << r.err;
  }
  EXPECT_EQ(lab_->xthrottle({"rule", "list", "--json"}).out, before);
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0) << "still attached and protecting";
}

TEST_F(Cli, RuleListShowsWhatWasAdded) {
  // Options before or after the CIDR, global options after the command, and
  // a one-word --bandwidth right before the CIDR.
  ok({"rule", "add", "--per", "24", "--rate", "6000/min", "--bandwidth", "2MB/s", "198.18.0.0/15"});
  EXPECT_EQ(run({"ip", "netns", "exec", lab_->dut_ns(), XT_BIN, "rule", "list", "--pin-dir", lab_->pin_dir()}).rc, 0);
  ok({"rule", "add", "2001:db8::/32", "--rate", "1000/day", "--burst", "50"});
  ok({"rule", "add", "198.18.7.0/24", "--deny", "--dry-run"});
  const json rules = lab_->xthrottle_json({"rule", "list", "--json"});
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0]["cidr"], "198.18.0.0/15");
  EXPECT_EQ(rules[0]["rate"], "6000/min");
  EXPECT_EQ(rules[0]["burst"], 6000);
  EXPECT_EQ(rules[0]["per"], 24);
  EXPECT_EQ(rules[0]["bandwidth"], "2MB/s");
  EXPECT_EQ(rules[0]["burst_bytes"], 2000000);
  EXPECT_EQ(rules[1]["cidr"], "198.18.7.0/24");
  EXPECT_EQ(rules[1]["action"], "deny");
  EXPECT_EQ(rules[1]["dry_run"], true);
  EXPECT_EQ(rules[2]["cidr"], "2001:db8::/32");
  EXPECT_EQ(rules[2]["per"], 64);
  EXPECT_EQ(rules[2]["rate"], "1000/day");
  EXPECT_EQ(rules[2]["burst"], 50);

  ok({"rule", "del", "198.18.7.0/24"});
  EXPECT_EQ(lab_->xthrottle_json({"rule", "list", "--json"}).size(), 2u);
}

TEST_F(Cli, StatusTellsTheTruth) {
  auto check = [&](int rc, const std::string& needle) {
    Outcome r = lab_->xthrottle({"status", "--check"});
    EXPECT_EQ(r.rc, rc) << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << "status does not say '" << needle << "':\n" << r.out;
  };
  check(3, "not protecting");
  ok({"attach", "dut0", "--mode", "native"});
  check(3, "no rules");
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s"});
  check(0, "protected");
  ok({"rule", "add", "198.18.8.0/24", "--rate", "100/s", "--dry-run"});
  check(3, "dry-run on: 198.18.8.0/24");
  ok({"rule", "del", "198.18.8.0/24"});
  check(0, "native mode");

  const json s = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(s["protected"], true);
  ASSERT_EQ(s["interfaces"].size(), 1u);
  EXPECT_EQ(s["interfaces"][0]["ifname"], "dut0");
  EXPECT_EQ(s["interfaces"][0]["mode"], "native");
  EXPECT_EQ(s["interfaces"][0]["requested_mode"], "native");

  // Someone removes the program behind our back: status must notice.
  run({"ip", "-n", lab_->dut_ns(), "link", "set", "dut0", "xdp", "off"});
  check(3, "program is gone");
  // Not to be protected any more: detach forgets the record, and says so
  // (it did, then said "not attached", exit 1).
  const Outcome forget = lab_->xthrottle({"detach", "dut0"});
  EXPECT_EQ(forget.rc, 0) << forget.err;
  EXPECT_NE(forget.out.find("already taken off dut0 (not by xthrottle): its record is forgotten"), std::string::npos)
      << forget.out;
  check(3, "not protecting");
  EXPECT_EQ(lab_->xthrottle({"detach", "dut0"}).rc, 1) << "nothing left to forget";

  ok({"attach", "dut0", "--mode", "skb"});
  check(0, "skb mode");
  // An upgrade without --mode (as the unit's restart does) keeps what was
  // asked: skb on purpose is no fallback to warn about.
  ok({"attach", "dut0", "--replace"});
  check(0, "skb mode");
  EXPECT_EQ(lab_->xthrottle_json({"status", "--json"})["interfaces"][0]["requested_mode"], "skb");

  // An interface deleted while attached takes the program with it; its
  // record is forgotten when the name is attached again, or detached.
  auto in_dut = [&](std::vector<std::string> argv) { ASSERT_EQ(lab_->in_dut(argv).rc, 0); };
  in_dut({"ip", "link", "add", "xtv0", "type", "veth", "peer", "name", "xtv1"});
  ok({"attach", "xtv0", "--mode", "native"});
  check(0, "protected");
  in_dut({"ip", "link", "del", "xtv0"});
  check(3, "xtv0: attached by xthrottle");
  check(3, "the interface is gone");
  in_dut({"ip", "link", "add", "xtv0", "type", "veth", "peer", "name", "xtv1"});
  check(3, "made again since");
  // Not to be protected any more: detach forgets the old one's record,
  // though no program of ours is on the new one.
  const Outcome again = lab_->xthrottle({"detach", "xtv0"});
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_NE(again.out.find("xtv0 is gone"), std::string::npos) << again.out;
  check(0, "protected");
  EXPECT_EQ(lab_->xthrottle({"detach", "xtv0"}).rc, 1) << "nothing left to forget";
  ok({"attach", "xtv0", "--mode", "native"});
  check(0, "protected");
  in_dut({"ip", "link", "del", "xtv0"});
  check(3, "the interface is gone");
  const Outcome forgot = lab_->xthrottle({"detach", "xtv0"});
  EXPECT_EQ(forgot.rc, 0) << forgot.err;
  EXPECT_NE(forgot.out.find("xtv0 is gone"), std::string::npos) << forgot.out;
  check(0, "protected");
  EXPECT_EQ(lab_->xthrottle({"detach", "xtv9"}).rc, 1) << "no such interface, and no record of one";
  // A renamed interface keeps its program, and its record: detach of the
  // old name forgets nothing.
  in_dut({"ip", "link", "add", "xtv0", "type", "veth", "peer", "name", "xtv1"});
  ok({"attach", "xtv0", "--mode", "skb"});
  in_dut({"ip", "link", "set", "xtv0", "name", "xtw0"});
  EXPECT_EQ(lab_->xthrottle({"detach", "xtv0"}).rc, 1) << "no interface of that name";
  check(0, "xtw0");
  const json renamed = lab_->xthrottle_json({"status", "--json"});
  bool kept = false;
  for (const auto& i : renamed["interfaces"])
    kept |= i["ifname"] == "xtw0" && i["requested_mode"] == "skb";
  EXPECT_TRUE(kept) << "the record, and what was asked, kept: " << renamed.dump();
  // Its program taken off behind xthrottle's back: status names it as it
  // is called now.
  in_dut({"ip", "link", "set", "xtw0", "xdpgeneric", "off"});
  check(3, "xtv0: attached by xthrottle");
  check(3, "its index is xtw0's now (renamed, or a new interface given the index), which runs no xthrottle: "
           "`xthrottle attach xtw0` if it is the same one, else `xthrottle detach xtv0` forgets it");
  ok({"attach", "xtw0", "--mode", "skb"});
  check(0, "xtw0");
  ok({"detach", "xtw0"});
  // An index the kernel gave out again, to an interface running nothing of
  // ours: the deleted one's record is forgotten by its name all the same.
  in_dut({"ip", "link", "add", "xtv0", "index", "4000", "type", "veth", "peer", "name", "xtq0"});
  ok({"attach", "xtv0", "--mode", "native"});
  in_dut({"ip", "link", "del", "xtv0"});
  in_dut({"ip", "link", "add", "xtz0", "index", "4000", "type", "veth", "peer", "name", "xtq1"});
  check(3, "xtv0: attached by xthrottle");
  // The index's new owner is not xtv0 renamed: status must not send the
  // operator to it alone (it said "`xthrottle attach xtz0` puts it back").
  check(3, "else `xthrottle detach xtv0` forgets it");
  const Outcome reused = lab_->xthrottle({"detach", "xtv0"});
  EXPECT_EQ(reused.rc, 0) << reused.err;
  check(0, "protected");
  in_dut({"ip", "link", "del", "xtz0"});

  ok({"detach", "dut0"});
  check(3, "not attached");
}

TEST_F(Cli, SourceTableIsSizedAtCreationAndReported) {
  ok({"attach", "dut0", "--max-sources", "4096"});
  json s = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(s["max_sources"], 4096);
  // 512 sets of 15 ways: room for more than --max-sources, and said so
  // (a full table used to read "7680 of 4096 sources tracked").
  EXPECT_EQ(s["table_slots"], 7680);
  Outcome text = lab_->xthrottle({"status"});
  EXPECT_NE(text.out.find("0 sources tracked, room for 7680 (--max-sources 4096, "), std::string::npos) << text.out;
  EXPECT_GT(s["bytes_per_source"].get<uint64_t>(), 56u) << "at least key and value, as the kernel counts it";
  EXPECT_LT(s["bytes_per_source"].get<uint64_t>(), 1024u);
  EXPECT_GT(s["hz"].get<uint32_t>(), 0u);

  // What the whole state costs the host, used or not, as bpftool counts the
  // maps pinned in its directory.
  uint64_t memlock = 0;
  std::set<uint64_t> ids;
  for (const auto& e : std::filesystem::directory_iterator(lab_->pin_dir())) {
    const Outcome m = run({"bpftool", "-j", "map", "show", "pinned", e.path().string()});
    if (m.rc != 0) continue;  // a program, or bpffs's own files
    const json map = json::parse(m.out);
    if (ids.insert(map["id"].get<uint64_t>()).second) memlock += map["bytes_memlock"].get<uint64_t>();
  }
  EXPECT_GT(ids.size(), 20u);
  EXPECT_EQ(s["kernel_memory_bytes"].get<uint64_t>(), memlock);
  uint64_t parts = 0;
  for (const auto& [part, bytes] : s["kernel_memory"].items()) parts += bytes.get<uint64_t>();
  EXPECT_EQ(parts, memlock);
  EXPECT_GE(s["kernel_memory"]["source_table"].get<uint64_t>(), s["bytes_per_source"].get<uint64_t>() * 4096);
  EXPECT_GT(s["kernel_memory"]["blocklists"].get<uint64_t>(), 0u) << "made with the state, whether a list is loaded or not";
  EXPECT_NE(text.out.find("memory:  "), std::string::npos) << text.out;

  Outcome resize = lab_->xthrottle({"attach", "dut0", "--max-sources", "8192"});
  EXPECT_EQ(resize.rc, 1);
  EXPECT_NE(resize.err.find("cannot be resized"), std::string::npos) << resize.err;
  // A size that rounds up to the table's is the table's (it was made so).
  ok({"attach", "dut0", "--max-sources", "4000"});
  // The idle window too is the state's from its creation: the default here.
  EXPECT_EQ(s["idle_seconds"], XT_DEFAULT_IDLE_SECONDS);
  ok({"attach", "dut0", "--idle", "1min"});  // what it is: fine
  Outcome idle = lab_->xthrottle({"attach", "dut0", "--idle", "5s"});
  EXPECT_EQ(idle.rc, 1);
  EXPECT_NE(idle.err.find("untracks a source after 1min"), std::string::npos) << idle.err;
  const json after = lab_->xthrottle_json({"status", "--json"});
  EXPECT_EQ(after["max_sources"], 4096) << "the refusals changed nothing";
  EXPECT_EQ(after["table_slots"], 7680);
  EXPECT_EQ(after["idle_seconds"], XT_DEFAULT_IDLE_SECONDS);
  EXPECT_EQ(after["interfaces"], s["interfaces"]) << "still attached as it was";

  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s", "--new-rate", "50/s"});
  EXPECT_EQ(lab_->xthrottle_json({"rule", "list", "--json"})[0]["new_rate"], "50/s");
}

TEST_F(Cli, StatusWarnsWhenNewSourceBudgetsOutrunTheTable) {
  ok({"attach", "dut0", "--max-sources", "4096"});
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s", "--new-rate", "50/s"});
  EXPECT_EQ(lab_->xthrottle({"status", "--check"}).rc, 0);
  ok({"rule", "add", "198.18.0.0/15", "--rate", "100/s", "--new-rate", "1000/s"});
  Outcome r = lab_->xthrottle({"status", "--check"});
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.out.find("turn the source table (4096) over in 4 s"), std::string::npos) << r.out;
}

TEST_F(Cli, AttachIsIdempotentAndRefusesToChangeModeSilently) {
  ok({"attach", "dut0"});
  Outcome again = lab_->xthrottle({"attach", "dut0"});
  EXPECT_EQ(again.rc, 0);
  EXPECT_NE(again.out.find("already attached"), std::string::npos) << again.out;
  Outcome skb = lab_->xthrottle({"attach", "dut0", "--mode", "skb"});
  EXPECT_EQ(skb.rc, 1);
  EXPECT_NE(skb.err.find("detach it first"), std::string::npos) << skb.err;
}

}  // namespace
}  // namespace xt::test
