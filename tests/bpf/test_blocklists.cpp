// SPDX-License-Identifier: MIT
// Blocklists (issue 14): the sources of a loaded list are dropped whatever
// their rule, but an --allow rule's; a /24 listed whole, a longer prefix
// by its addresses, IPv6 by prefix; loading a list again replaces it, and
// deleting it lets its sources through; a rules file names lists, and
// applying it makes the live lists what it says, or changes nothing.
// Through the real object.
#include <gtest/gtest.h>

#include <ctime>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "apply.h"
#include "blocklist_file.h"
#include "packet.h"
#include "program.h"
#include "rules.h"
#include "rules_file.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;
using test::kSec;

class Blocklists : public Program {
 protected:
  void SetUp() override {
    Program::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    load();
  }
  void load_list(const std::string& name, const std::vector<std::string>& cidrs) {
    std::vector<Cidr> entries;
    for (const auto& c : cidrs) entries.push_back(*parse_cidr(c));
    auto ok = state_->load_blocklist(name, entries);
    ASSERT_TRUE(ok.has_value()) << ok.error().message;
  }
  int verdict(const std::string& src) {
    return run(src.find(':') == std::string::npos ? Packet().ipv4(src).build() : Packet().ipv6(src).build());
  }
};

TEST_F(Blocklists, ListedSourcesAreDroppedAndTheRestPass) {
  rule("198.18.0.0/15", "1000/s");
  EXPECT_EQ(state_->config().value().blocklists, 0u) << "no list: the data path does not look";
  load_list("drop", {"198.18.4.0/22", "198.18.9.128/25", "198.18.10.7", "2001:db8:1::/48"});
  for (const char* listed : {"198.18.4.0", "198.18.7.255", "198.18.9.128", "198.18.9.255", "198.18.10.7",
                             "2001:db8:1::1", "2001:db8:1:ffff::9"})
    EXPECT_EQ(verdict(listed), XDP_DROP) << listed;
  for (const char* free : {"198.18.3.255", "198.18.8.0", "198.18.9.127", "198.18.10.6", "198.18.10.8",
                           "2001:db8:2::1", "2001:db8::1"})
    EXPECT_EQ(verdict(free), XDP_PASS) << free;
  EXPECT_EQ(counter(XT_DROP_BLOCKLISTED), 7u);
  EXPECT_EQ(rule_stats("198.18.0.0/15").dropped_packets, 5u) << "counted as its rule's drops too";
  EXPECT_EQ(verdict("203.0.113.9"), XDP_PASS) << "no rule, not listed";
  load_list("more", {"203.0.113.0/24"});
  EXPECT_EQ(verdict("203.0.113.9"), XDP_DROP) << "no rule needed";
  EXPECT_EQ(verdict("198.18.10.7"), XDP_DROP) << "the first list is still in the union";
}

// A list that repeats a prefix, or nests one in another (a feed's
// mistake, or a hostile snapshot's), loads what it lists, each address
// once: every copy was walked as given, 100,000 of one /1 some 8 x 10^11
// steps under the pin lock (minutes, where this takes a second), and
// copies of a /25 were put in memory an address each before they were
// counted.
TEST_F(Blocklists, RepeatedAndNestedPrefixesAreWalkedOnce) {
  rule("198.18.0.0/15", "1000/s");
  std::vector<std::string> cidrs(100'000, "0.0.0.0/1");
  cidrs.insert(cidrs.end(), 100'000, "198.18.9.128/25");
  for (const char* nested : {"198.18.9.192/26", "198.18.9.200", "10.1.0.0/16", "10.1.2.0/25"})
    cidrs.insert(cidrs.end(), 1000, nested);
  load_list("again", cidrs);
  for (const char* listed : {"10.1.2.3", "127.255.255.255", "0.0.0.1", "198.18.9.128", "198.18.9.255"})
    EXPECT_EQ(verdict(listed), XDP_DROP) << listed;
  for (const char* free : {"198.18.9.127", "198.18.10.0", "128.0.0.1"})
    EXPECT_EQ(verdict(free), XDP_PASS) << free;
}

TEST_F(Blocklists, AnAllowRuleBeatsAList) {
  rule("198.18.0.0/15", "1000/s");
  rule("198.18.1.0/24", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_ALLOW; });
  load_list("drop", {"198.18.0.0/16"});
  EXPECT_EQ(verdict("198.18.1.9"), XDP_PASS);
  EXPECT_EQ(verdict("198.18.2.9"), XDP_DROP);
}

TEST_F(Blocklists, LoadingAgainReplacesAndDeletingLetsThrough) {
  load_list("drop", {"198.18.1.0/24", "198.18.2.5"});
  EXPECT_EQ(verdict("198.18.1.9"), XDP_DROP);
  EXPECT_EQ(verdict("198.18.2.5"), XDP_DROP);
  const uint32_t first = state_->config().value().blocklists;
  load_list("drop", {"198.18.3.0/24"});
  EXPECT_NE(state_->config().value().blocklists, first) << "the other set, switched to in one store";
  EXPECT_EQ(verdict("198.18.1.9"), XDP_PASS) << "replaced, not added to";
  EXPECT_EQ(verdict("198.18.2.5"), XDP_PASS);
  EXPECT_EQ(verdict("198.18.3.9"), XDP_DROP);
  load_list("drop", {"198.18.1.0/24"});  // a third time: the first set, emptied and filled again
  EXPECT_EQ(verdict("198.18.2.5"), XDP_PASS) << "what the set held two loads ago is gone";
  EXPECT_EQ(verdict("198.18.3.9"), XDP_PASS);
  EXPECT_EQ(verdict("198.18.1.9"), XDP_DROP);
  ASSERT_EQ(state_->blocklists().value().size(), 1u);
  EXPECT_EQ(state_->blocklists().value()[0].list.entries, 1u);
  ASSERT_TRUE(state_->del_blocklist("drop").has_value());
  EXPECT_EQ(verdict("198.18.1.9"), XDP_PASS);
  EXPECT_EQ(state_->config().value().blocklists, 0u) << "no list left: the data path stops looking";
  EXPECT_TRUE(state_->blocklists().value().empty());
  EXPECT_FALSE(state_->del_blocklist("drop").has_value()) << "deleting what is not there is an error";
}

// A list's version is the second it was loaded: the fleet's hosts take a
// version no newer than theirs for the one they have. Loaded twice within
// a second (a script's two steps), the second was the same version: every
// other host kept the first one's entries for good, and this host's serve
// did not even tell it. A reload is always a newer version.
TEST_F(Blocklists, AReloadWithinTheSecondIsANewerVersion) {
  std::vector<uint64_t> versions;
  for (const char* cidr : {"198.18.5.0/24", "198.18.6.0/24", "198.18.7.0/24"}) {
    load_list("drop", {cidr});
    versions.push_back(state_->blocklists().value().at(0).list.loaded_unix);
  }
  EXPECT_LT(versions[0], versions[1]);
  EXPECT_LT(versions[1], versions[2]);
  EXPECT_LE(versions[2], static_cast<uint64_t>(std::time(nullptr)) + 2) << "a second or two ahead at most";
  for (int i = 0; i < 5; i++) load_list("drop", {"198.18.8.0/24"});
  EXPECT_LE(state_->blocklists().value().at(0).list.loaded_unix, static_cast<uint64_t>(std::time(nullptr)) + 2)
      << "reloaded many times a second, still two seconds ahead at most";
}

TEST_F(Blocklists, BadNamesAndTooManyListsAreRefusedWithNothingChanged) {
  for (const char* bad : {"", "a/b", "has space", "x.y/z"})
    EXPECT_FALSE(state_->load_blocklist(bad, {*parse_cidr("198.18.1.0/24")}).has_value()) << bad;
  for (int i = 0; i < XT_MAX_BLOCKLISTS; i++) load_list("l" + std::to_string(i), {"198.18.1.0/24"});
  auto full = state_->load_blocklist("one-more", {*parse_cidr("198.18.2.0/24")});
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().kind, ErrorKind::Usage);
  EXPECT_EQ(verdict("198.18.2.9"), XDP_PASS);
  load_list("l3", {"198.18.2.0/24"});  // replacing one still works
  EXPECT_EQ(verdict("198.18.2.9"), XDP_DROP);
}


// A directory of its own for a rules file and its lists, removed after.
class BlocklistsFromAFile : public Blocklists {
 protected:
  void SetUp() override {
    Blocklists::SetUp();
    char tmpl[] = "/tmp/xt-lists-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    Blocklists::TearDown();
  }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }
  // Applies the rules file: what it did, or its error.
  Result<RulesDiff> apply(const std::string& path) {
    auto file = load_rules_file(path);
    if (!file) return std::unexpected(file.error());
    if (auto ok = compile_rules(*file, state_->config().value().hz); !ok) return std::unexpected(ok.error());
    auto diff = diff_rules(*state_, *file);
    if (!diff) return diff;
    if (auto ok = apply_rules(*state_, *file, *diff); !ok) return std::unexpected(ok.error());
    return diff;
  }
  std::vector<std::string> names() {
    std::vector<std::string> out;
    const auto lists = state_->blocklists().value();
    for (const auto& b : lists) out.push_back(b.list.name);
    std::ranges::sort(out);
    return out;
  }
  std::string dir_;
};

TEST_F(BlocklistsFromAFile, ApplyLoadsReloadsAndDeletesWhatTheFileNames) {
  write("drop.txt", "198.18.1.0/24\n");
  write("more.txt", "198.18.2.5\n2001:db8:1::/48\n");
  const std::string both = write("both.toml", R"([[rule]]
cidr = "198.18.0.0/15"
rate = "1000/s"

[[blocklist]]
name = "drop"
file = "drop.txt"

[[blocklist]]
name = "more"
file = ")" + dir_ + R"(/more.txt"
)");
  load_list("by-hand", {"198.18.3.0/24"});  // not in the file: goes
  auto first = apply(both);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->lists_add.size(), 2u);
  EXPECT_EQ(first->lists_remove.size(), 1u);
  EXPECT_EQ(names(), (std::vector<std::string>{"drop", "more"}));
  EXPECT_EQ(verdict("198.18.1.9"), XDP_DROP);
  EXPECT_EQ(verdict("198.18.2.5"), XDP_DROP);
  EXPECT_EQ(verdict("2001:db8:1::7"), XDP_DROP);
  EXPECT_EQ(verdict("198.18.3.9"), XDP_PASS) << "the list loaded by hand is gone";

  auto again = apply(both);
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_TRUE(again->empty()) << diff_text(*again);
  EXPECT_EQ(again->lists_unchanged, 2u);

  // One list's file changes: that list is loaded again, the other is not.
  const uint32_t word = state_->config().value().blocklists;
  write("drop.txt", "198.18.4.0/24\n");
  auto changed = apply(both);
  ASSERT_TRUE(changed.has_value()) << changed.error().message;
  ASSERT_EQ(changed->lists_change.size(), 1u);
  EXPECT_EQ(changed->lists_change[0].name, "drop");
  EXPECT_EQ(changed->lists_unchanged, 1u);
  EXPECT_NE(state_->config().value().blocklists, word) << "switched to the other set";
  EXPECT_EQ(verdict("198.18.1.9"), XDP_PASS);
  EXPECT_EQ(verdict("198.18.4.9"), XDP_DROP);
  EXPECT_EQ(verdict("198.18.2.5"), XDP_DROP);

  // A file naming no list deletes them all, and the data path stops looking.
  auto none = apply(write("none.toml", "[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"1000/s\"\n"));
  ASSERT_TRUE(none.has_value()) << none.error().message;
  EXPECT_EQ(none->lists_remove.size(), 2u);
  EXPECT_TRUE(names().empty());
  EXPECT_EQ(state_->config().value().blocklists, 0u);
}

TEST_F(BlocklistsFromAFile, AFailedStepPutsBackEveryListAndRule) {
  // Fourteen lists, l1 the fleet's, and a file that keeps them (the
  // fleet's without naming it), changes one rule and two lists, and adds
  // three rules and a list: the rules go in, the added list goes in
  // first of the lists, then l0's change, then l2's, which
  // fits on its own and beside the file's other lists but not beside the
  // fleet's l1: together they hold more IPv4 addresses in prefixes longer
  // than /24 than the data path takes. (The file's lists together past
  // that are refused before any step.)
  std::string text = "[[rule]]\ncidr = \"198.18.0.0/15\"\nrate = \"5/s\"\n";
  for (int i = 0; i < 3; i++)  // deleted again together by the undo
    text += "[[rule]]\ncidr = \"198.19." + std::to_string(i) + ".0/24\"\nrate = \"5/s\"\n";
  std::string halves[2];
  for (uint32_t n = 0; n * 128 <= XT_MAX_BLOCK_HOSTS; n++)
    halves[n % 2] += "100." + std::to_string(64 + (n >> 9)) + "." + std::to_string((n >> 1) & 255) + "." +
                     std::to_string((n & 1) * 128) + "/25\n";
  for (int i = 0; i < 14; i++) {
    if (i == 1) {
      auto ok = state_->load_blocklist("l1", *parse_blocklist(halves[0], "fleet"), std::nullopt, true);
      ASSERT_TRUE(ok.has_value()) << ok.error().message;
      continue;
    }
    load_list("l" + std::to_string(i), {"198.18.1.0/24"});
    write("l" + std::to_string(i) + ".txt", i == 0 ? "198.18.9.0/24\n" : i == 2 ? halves[1] : "198.18.1.0/24\n");
    text += "[[blocklist]]\nname = \"l" + std::to_string(i) + "\"\nfile = \"l" + std::to_string(i) + ".txt\"\n";
  }
  write("new.txt", "198.18.2.0/24\n");
  text += "[[blocklist]]\nname = \"new1\"\nfile = \"new.txt\"\n";
  rule("198.18.0.0/15", "1000/s");
  const auto rules_before = state_->rules().value();
  auto r = apply(write("full.toml", text));
  ASSERT_FALSE(r.has_value()) << "l2's new contents cannot be loaded beside the fleet's l1";
  EXPECT_NE(r.error().message.find("blocklist l2"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("restored"), std::string::npos) << r.error().message;
  ASSERT_EQ(names().size(), 14u) << "new1 taken out again";
  EXPECT_EQ(verdict("198.18.2.9"), XDP_PASS);
  EXPECT_EQ(verdict("198.18.1.9"), XDP_DROP) << "l0's old prefixes are back (and the others')";
  EXPECT_EQ(verdict("198.18.9.9"), XDP_PASS) << "l0's new prefixes are gone";
  const auto rules_after = state_->rules().value();
  ASSERT_EQ(rules_after.size(), 1u) << "the rules added taken out again";
  EXPECT_TRUE(same_rule(rules_after[0].spec, rules_before[0].spec)) << "the rule's change undone";
}

TEST_F(BlocklistsFromAFile, AFullTableSwapsAListForAnother) {
  // Sixteen lists live; the file keeps fifteen and names a new one: the
  // one it drops goes first, or there would be no room.
  std::string text;
  for (int i = 0; i < XT_MAX_BLOCKLISTS; i++) {
    load_list("l" + std::to_string(i), {"198.18." + std::to_string(i) + ".0/24"});
    write("l" + std::to_string(i) + ".txt", "198.18." + std::to_string(i) + ".0/24\n");
    if (i > 0) text += "[[blocklist]]\nname = \"l" + std::to_string(i) + "\"\nfile = \"l" + std::to_string(i) + ".txt\"\n";
  }
  write("new.txt", "198.18.100.0/24\n");
  text += "[[blocklist]]\nname = \"new\"\nfile = \"new.txt\"\n";
  auto r = apply(write("swap.toml", text));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(names().size(), static_cast<size_t>(XT_MAX_BLOCKLISTS));
  EXPECT_EQ(verdict("198.18.0.9"), XDP_PASS);
  EXPECT_EQ(verdict("198.18.100.9"), XDP_DROP);
  EXPECT_EQ(verdict("198.18.15.9"), XDP_DROP);
}

// A file that fits once the rules it drops are out goes in, though the
// rules it adds would not fit beside them: here a range moved from port 22
// to 22-23 inside three nested ones (five deep for a moment, where four is
// the most). It was refused, and everything undone.
TEST_F(BlocklistsFromAFile, ARuleThatFitsOnlyOnceAnotherIsOutGoesIn) {
  const std::string nest = "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1-65535\"\nrate = \"100/s\"\n"
                           "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1-1023\"\nrate = \"100/s\"\n"
                           "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"20-25\"\nrate = \"100/s\"\n";
  auto first = apply(write("a.toml", nest + "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = 22\nrate = \"10/s\"\n"));
  ASSERT_TRUE(first) << first.error().message;
  auto moved = apply(write("b.toml", nest + "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"22-23\"\nrate = \"10/s\"\n"));
  ASSERT_TRUE(moved) << moved.error().message;
  std::vector<std::string> live;
  const auto rules = state_->rules().value();  // kept: a loop over .value() of the temporary reads freed memory
  for (const auto& e : rules) live.push_back(rule_name(e.cidr, e.spec.match));
  std::ranges::sort(live);
  EXPECT_EQ(live, (std::vector<std::string>{"0.0.0.0/0 tcp/1-1023", "0.0.0.0/0 tcp/1-65535", "0.0.0.0/0 tcp/20-25",
                                            "0.0.0.0/0 tcp/22-23"}));
}

// Only the rules in the way go before the new ones are in: a range being
// moved (1000-2000 to 1500-2500, which cross) goes first, and UDP/53,
// going too, stays until the new rules are in, so its sources are held
// meanwhile.
TEST_F(BlocklistsFromAFile, OnlyTheRulesInTheWayGoFirst) {
  auto first = apply(write("a.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1000-2000\"\nrate = \"100/s\"\n"
                                     "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"udp\"\nport = 53\nrate = \"100/s\"\n"));
  ASSERT_TRUE(first) << first.error().message;
  bool seen_new = false, udp_then = false;
  state_->set_step_hook([&] {
    if (seen_new) return;
    const auto rules = state_->rules().value();
    std::set<std::string> names;
    for (const auto& e : rules) names.insert(rule_name(e.cidr, e.spec.match));
    if (names.contains("0.0.0.0/0 tcp/1500-2500")) {
      seen_new = true;
      udp_then = names.contains("0.0.0.0/0 udp/53");
    }
  });
  auto moved = apply(write("b.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1500-2500\"\nrate = \"100/s\"\n"));
  state_->set_step_hook(nullptr);
  ASSERT_TRUE(moved) << moved.error().message;
  ASSERT_TRUE(seen_new);
  EXPECT_TRUE(udp_then) << "udp/53 went before the new rule was in";
  EXPECT_EQ(state_->rules().value().size(), 1u);
}

// A rule whose options are too long to record (255 bytes of text) passed
// `apply --dry-run` and failed half-way through `apply`, after the rules in
// its way were out: the undo put those back as new rules, their buckets
// gone, so a throttled source had its burst again and the rule's counters
// read 0. It is refused at its line, before anything changes.
TEST_F(BlocklistsFromAFile, ARuleTooLongToRecordIsRefusedAtItsLineBeforeAnyChange) {
  auto first = apply(write("a.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1000-2000\"\n"
                                     "rate = \"1/hour\"\nburst = 1\n"));
  ASSERT_TRUE(first) << first.error().message;
  const auto to1500 = Packet().ipv4("198.18.0.9").tcp().ports(40000, 1500).build();
  EXPECT_EQ(run(to1500, kSec), XDP_PASS);
  EXPECT_EQ(run(to1500, kSec), XDP_DROP) << "its one packet an hour spent";
  const std::string wordy =
      "[[rule]]\ncidr = \"198.18.0.0/16\"\nproto = \"tcp\"\nport = \"1024-65535\"\nsyn = true\nper = 24\n"
      "rate = [\"1000000/s\", \"20000000/min\", \"400000000/hour\"]\nburst = [1000000000, 2000000000, 3000000000]\n"
      "new_rate = \"123456/s\"\nverify_rate = \"654321/s\"\nremember = \"86399s\"\nban_after = \"64799s\"\n"
      "ban_for = \"4294967s\"\nscope = \"fleet\"\ndry_run = true\n";
  const std::string path = write("b.toml", "[[rule]]\ncidr = \"0.0.0.0/0\"\nproto = \"tcp\"\nport = \"1500-2500\"\n"
                                           "rate = \"1/hour\"\nburst = 1\n\n" + wordy);
  auto moved = apply(path);
  ASSERT_FALSE(moved.has_value());
  EXPECT_NE(moved.error().message.find(path + ":8:"), std::string::npos) << moved.error().message;
  EXPECT_NE(moved.error().message.find("too long to record"), std::string::npos) << moved.error().message;
  const auto rules = state_->rules().value();
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rule_name(rules[0].cidr, rules[0].spec.match), "0.0.0.0/0 tcp/1000-2000");
  EXPECT_EQ(run(to1500, 2 * kSec), XDP_DROP) << "its bucket kept: no second packet within the hour";
  EXPECT_EQ(state_->rule_counters().value().at(0).stats.passed_packets, 1u) << "its counters kept";
}

// A file that swaps some rules of a full table goes in in one apply: as
// many of the rules going as the new ones need room for go first.
TEST_F(BlocklistsFromAFile, AFullRuleTableSwapsRulesInOneApply) {
  auto rules_from = [](int from, int to, const char* net) {
    std::string text;
    for (int i = from; i < to; i++)
      text += "[[rule]]\ncidr = \"" + std::string(net) + "." + std::to_string(i / 256) + "." + std::to_string(i % 256) +
              ".0/24\"\nrate = \"10/s\"\n";
    return text;
  };
  auto full = apply(write("a.toml", rules_from(0, XT_MAX_RULES, "10")));
  ASSERT_TRUE(full) << full.error().message;
  auto swapped = apply(write("b.toml", rules_from(0, XT_MAX_RULES - 96, "10") + rules_from(0, 96, "11")));
  ASSERT_TRUE(swapped) << swapped.error().message;
  EXPECT_EQ(swapped->remove.size(), 96u);
  const auto rules = state_->rules().value();
  EXPECT_EQ(rules.size(), size_t{XT_MAX_RULES});
  EXPECT_EQ(std::ranges::count_if(rules, [](const RuleEntry& e) { return format_cidr(e.cidr).starts_with("11."); }), 96);
}

TEST_F(BlocklistsFromAFile, BadListsAreRulesFileLineOrListLine) {
  write("good.txt", "198.18.1.0/24\n");
  const std::string bad_list = write("bad.txt", "198.18.2.0/24\n\nexample.com\n");
  write("all.txt", "198.18.2.0/24\n0.0.0.0/0\n");
  struct Case {
    std::string text, says;
  } cases[] = {
      {"[[blocklist]]\nname = \"a\"\n", "x.toml:1: a blocklist needs file"},
      {"[[blocklist]]\nfile = \"good.txt\"\n", "x.toml:1: a blocklist needs name"},
      {"[[blocklist]]\nname = \"a/b\"\nfile = \"good.txt\"\n", "x.toml:1: bad blocklist name 'a/b'"},
      {"[[blocklist]]\nname = \"a\"\nfile = \"good.txt\"\nformat = \"ipset\"\n", "x.toml:4: unknown key 'format'"},
      {"[[blocklist]]\nname = \"a\"\nfile = \"good.txt\"\n[[blocklist]]\nname = \"a\"\nfile = \"good.txt\"\n",
       "x.toml:4: blocklist a is named already, at line 1"},
      {"blocklist = \"good.txt\"\n", "x.toml:1: blocklist must be an array of tables"},
      {"[[blocklist]]\nname = \"a\"\nfile = \"missing.txt\"\n", "x.toml:1: blocklist a: no such file " + dir_ + "/missing.txt"},
      {"[[blocklist]]\nname = \"a\"\nfile = \"bad.txt\"\n", bad_list + ":3:"},
      {"[[blocklist]]\nname = \"a\"\nfile = \"all.txt\"\n", "x.toml:1: blocklist a lists 0.0.0.0/0, every source"},
  };
  load_list("kept", {"198.18.5.0/24"});
  for (const auto& c : cases) {
    const std::string path = write("x.toml", c.text);
    auto r = apply(path);
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_EQ(r.error().kind, ErrorKind::Usage) << r.error().message;
    const std::string want = c.says.starts_with("x.toml") ? dir_ + "/" + c.says : c.says;
    EXPECT_NE(r.error().message.find(want), std::string::npos) << "expected '" << want << "' in " << r.error().message;
    EXPECT_EQ(names(), std::vector<std::string>{"kept"}) << c.text << " changed the lists";
  }
}

}  // namespace
}  // namespace xt
