// SPDX-License-Identifier: MIT
// A fleet's charges (issue 15) through the real object: what other hosts
// passed for a source of a --scope fleet rule is taken from this host's
// bucket of that source (XT_RESTORE_CHARGE), exactly, into a debt that is
// bounded, and never into a word of a version of the rule the charge was not
// made for.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "fleet.h"
#include "packet.h"
#include "program.h"
#include "redis_link.h"
#include "rules.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;
using test::kHz;
using test::kSec;

class Fleets : public Program {
 protected:
  void SetUp() override {
    Program::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    load();
  }
  void fleet_rule(const std::string& rate, uint64_t burst) {
    rule("198.18.0.0/15", rate, burst, [](RuleSpec& s) { s.fleet = true; });
  }
  RuleEntry entry() {
    auto rules = state_->rules();
    EXPECT_TRUE(rules.has_value());
    EXPECT_EQ(rules->size(), 1u);
    return rules->at(0);
  }
  static FleetUse use(const std::string& src, uint32_t packets, uint8_t per_len = 32) {
    FleetUse u;
    u.family = XT_FAMILY_V4;
    u.per_len = per_len;
    const Cidr c = *parse_cidr(src + "/32");
    std::memcpy(u.addr, c.addr.data(), 16);
    u.packets = packets;
    return u;
  }
  Charged charge(const RuleEntry& e, const std::vector<FleetUse>& batch, uint64_t now) {
    skel_->bss->xt_test_now = now;
    auto done = charge_use(*state_, e, batch);
    EXPECT_TRUE(done.has_value()) << done.error().message;
    return done.value_or(Charged{});
  }
  static std::vector<uint8_t> from(const std::string& src) { return Packet().ipv4(src, "198.18.0.2").build(); }
};

TEST_F(Fleets, WhatOtherHostsPassedIsTakenExactly) {
  fleet_rule("10/s", 10);
  const uint64_t t = 100 * kSec;
  EXPECT_EQ(passed(from("198.18.1.1"), 3, t), 3);
  const Charged c = charge(entry(), {use("198.18.1.1", 4), use("198.18.1.2", 6), use("198.18.1.3", 1, 24)}, t);
  EXPECT_EQ(c.sources, 2u) << "one bucket found, one claimed";
  EXPECT_EQ(c.packets, 10u);
  EXPECT_EQ(c.refused, 1u) << "another --per makes other buckets than this host's";
  EXPECT_EQ(c.stale, 0u);
  EXPECT_EQ(passed(from("198.18.1.1"), 10, t), 3) << "10 of the burst: 3 here, 4 elsewhere, 3 left";
  EXPECT_EQ(passed(from("198.18.1.2"), 10, t), 4) << "a source seen only by other hosts: 6 taken";
  EXPECT_EQ(passed(from("198.18.1.2"), 2, t + kSec / 10), 1) << "and it refills as any bucket does";
  EXPECT_EQ(rule_stats("198.18.0.0/15").passed_packets, 3u + 3u + 4u + 1u) << "others' use is not this host's pass";
}

TEST_F(Fleets, TheDebtPastEmptyIsBounded) {
  fleet_rule("10/s", 10);
  const uint64_t t = 100 * kSec;
  // A host far behind tells a million packets at once: the bucket is
  // empty for the burst and XT_CHARGE_DEBT_TICKS' refill, no longer.
  const Charged c = charge(entry(), {use("198.18.2.1", 1000000)}, t);
  EXPECT_EQ(c.sources, 1u);
  const uint64_t back = t + XT_CHARGE_DEBT_TICKS + kSec / 10;  // then one packet's refill
  EXPECT_EQ(passed(from("198.18.2.1"), 1, t), 0);
  EXPECT_EQ(passed(from("198.18.2.1"), 1, back - 1), 0);
  EXPECT_EQ(passed(from("198.18.2.1"), 2, back), 1);
  // Charges past the bound add nothing to it.
  charge(entry(), {use("198.18.2.2", 1000000)}, t);
  charge(entry(), {use("198.18.2.2", 1000000)}, t);
  EXPECT_EQ(passed(from("198.18.2.2"), 1, back - 1), 0);
  EXPECT_EQ(passed(from("198.18.2.2"), 2, back), 1);
}

// A charge for a source this host does not track takes a free or idle way
// and never evicts a source in use here, and one for a source the rule does
// not cover is refused: a peer telling made-up sources evicted this host's
// own (each came back untracked, with a fresh burst) and filled the table
// with keys no packet here looks up.
TEST_F(Fleets, ChargesForSourcesNotTrackedHereEvictNoSourceInUse) {
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.fleet = true;
    s.new_rate = *parse_rate("100000000/s");
  });
  const uint64_t t = 100 * kSec;
  EXPECT_EQ(charge(entry(), {use("198.19.200.1", 1)}, t).sources, 1u) << "a free way taken";
  for (int i = 0; i < 3000; i++) run(from(test::nth_source(i)), t);  // the table full of sources in use
  const uint64_t evicted = counter(XT_SOURCES_EVICTED_ACTIVE);
  ASSERT_GT(evicted, 0u) << "more sources than ways";
  std::vector<FleetUse> made_up;
  for (int i = 0; i < 3000; i++) made_up.push_back(use("198.19." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1), 1));
  made_up.push_back(use("10.1.2.3", 1));
  const Charged c = charge(entry(), made_up, t);
  EXPECT_EQ(counter(XT_SOURCES_EVICTED_ACTIVE), evicted) << "no source in use here evicted";
  EXPECT_EQ(c.sources + c.refused, 3001u);
  EXPECT_GE(c.refused, 1u) << "10.1.2.3 is no source of the rule";
}

// A rule of one bucket for the fleet (--per 0, or any --per shorter than
// its prefix): the bucket's key is the prefix cut to --per, which the
// check of a charge's source against the prefix must take as the rule's.
TEST_F(Fleets, AChargeForARuleOfOneBucketIsTaken) {
  rule("198.18.0.0/15", "10/s", 10, [](RuleSpec& s) {
    s.fleet = true;
    s.per = 0;
  });
  const uint64_t t = 100 * kSec;
  FleetUse all = use("0.0.0.0", 4, 0);
  const Charged c = charge(entry(), {all}, t);
  EXPECT_EQ(c.sources, 1u);
  EXPECT_EQ(c.refused, 0u);
  EXPECT_EQ(passed(from("198.18.1.1"), 10, t), 6) << "10 of the burst, 4 taken elsewhere";
  EXPECT_EQ(charge(entry(), {use("198.18.0.0", 1, 0)}, t).refused, 1u) << "bits past --per: no key of the rule's";
}

TEST_F(Fleets, AChargeForAReplacedVersionOfTheRuleIsLeft) {
  fleet_rule("10/s", 10);
  const uint64_t t = 100 * kSec;
  const RuleEntry before = entry();
  // Two sources alike, but for the charges taken from the second.
  for (const char* src : {"198.18.3.1", "198.18.3.2"}) EXPECT_EQ(passed(from(src), 2, t), 2);
  fleet_rule("20/s", 20);  // replaced: a new generation
  for (const char* src : {"198.18.3.1", "198.18.3.2"})
    EXPECT_EQ(passed(from(src), 2, t), 2) << "its words now of the new generation";
  const Charged stale = charge(before, {use("198.18.3.2", 5)}, t);
  EXPECT_EQ(stale.stale, 1u) << "read before the replace: not taken against the new version's limit";
  const Charged fresh = charge(entry(), {use("198.18.3.2", 5)}, t);
  EXPECT_EQ(fresh.stale, 0u);
  EXPECT_EQ(fresh.sources, 1u);
  const int untouched = passed(from("198.18.3.1"), 40, t);
  EXPECT_GT(untouched, 5);
  EXPECT_EQ(passed(from("198.18.3.2"), 40, t), untouched - 5) << "the one charge made for this version taken";
}

// A reply that takes longer than a second to read, arriving all the while
// (40 MB at 20 MB a second: a hundred entries of use in a flood are 150
// MB), is read whole: the deadline goes on while it arrives. (It was a
// second for any reply: such a read failed, the link went down, and the next
// read from the same entry failed again, for good.) A fake Redis on a unix
// socket, made here.
TEST(RedisLinkReplies, AReplyStillArrivingIsNotCutOffAtASecond) {
  const std::string path = "/tmp/xt-fake-redis-" + std::to_string(getpid()) + ".sock";
  ::unlink(path.c_str());
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  constexpr size_t kBytes = 40u << 20, kChunk = 1u << 20;
  std::thread server([&] {
    const int c = ::accept(listener, nullptr, nullptr);
    if (c < 0) return;
    char buf[256];
    (void)::read(c, buf, sizeof(buf));  // the PING
    const std::string head = "$" + std::to_string(kBytes) + "\r\n";
    (void)::send(c, head.data(), head.size(), MSG_NOSIGNAL);
    const std::string chunk(kChunk, 'x');
    bool gone = false;  // the client gave up (and closed): stop
    for (size_t sent = 0; sent < kBytes && !gone; sent += kChunk) {
      for (size_t at = 0; at < kChunk && !gone;) {
        const ssize_t n = ::send(c, chunk.data() + at, kChunk - at, MSG_NOSIGNAL);
        gone = n <= 0;
        at += gone ? 0 : static_cast<size_t>(n);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!gone) (void)::send(c, "\r\n", 2, MSG_NOSIGNAL);
    ::close(c);
  });
  // On every way out (an assertion below returns early): the server let go
  // (accept unblocked) and joined, after the link (declared later, so gone
  // first) closed.
  struct Done {
    int listener;
    std::thread& server;
    std::string path;
    ~Done() {
      ::shutdown(listener, SHUT_RDWR);
      if (server.joinable()) server.join();
      ::close(listener);
      ::unlink(path.c_str());
    }
  } done{listener, server, path};
  auto url = parse_cluster_url("unix://" + path);
  ASSERT_TRUE(url.has_value()) << url.error().message;
  auto link = RedisLink::open(*url, {});
  ASSERT_TRUE(link.has_value()) << link.error().message;
  const auto t0 = std::chrono::steady_clock::now();
  auto reply = (*link)->run(std::vector<std::string>{"PING"});
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  link->reset();  // closed: a server still sending stops
  ASSERT_TRUE(reply.has_value()) << reply.error().message << " (after " << took << " s)";
  EXPECT_EQ((*reply)->type, REDIS_REPLY_STRING);
  EXPECT_EQ((*reply)->len, kBytes);
  std::printf("[ measure  ] a reply of %zu MB read in %.2f s\n", kBytes >> 20, took);
}

}  // namespace
}  // namespace xt
