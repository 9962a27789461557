// SPDX-License-Identifier: MIT
// Blocklists (issue 14): the sources of a loaded list are dropped whatever
// their rule, but an --allow rule's; a /24 listed whole, a longer prefix
// by its addresses, IPv6 by prefix; loading a list again replaces it, and
// deleting it lets its sources through. Through the real object.
#include <gtest/gtest.h>

#include "packet.h"
#include "program.h"
#include "rules.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;

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

}  // namespace
}  // namespace xt
