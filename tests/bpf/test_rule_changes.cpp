// SPDX-License-Identifier: MIT
// Rule changes while packets flow, through the real object: every packet
// sees the old rule or the new one, a replacement never hands a source
// tokens it spent, counters never go backwards, and a walk of a table that
// keeps changing under it says when it could not finish.
#include <gtest/gtest.h>

#include <bpf/bpf.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "keys.h"
#include "meter.h"
#include "map_util.h"
#include "apply.h"
#include "program.h"
#include "rules_file.h"
#include "snapshot.h"
#include "snapshot_file.h"

namespace xt {
namespace {

using test::Packet;
using test::Program;
using test::kMs;
using test::kSec;

// What one frame got: its verdict and the reason it was counted under.
struct Verdict {
  int action;
  int reason;
  bool operator==(const Verdict&) const = default;
};

class RuleChanges : public Program {
 protected:
  // A version of 198.18.0.0/15 with a second window (300/min, burst 20)
  // beside 10/s burst 2, which takes the second word.
  static void two_windows(RuleSpec& s) {
    s.rates = {*parse_rate("10/s"), *parse_rate("300/min")};
    s.bursts = {2, 20};
  }
  // The next version of 198.18.0.0/15 (its only rule) as `tweak` makes it,
  // the generation it will have, and a word of its second window of that
  // generation and in debt there up to a second: what a removed window's
  // word left fifteen versions back could hold.
  struct Next {
    xt_rule rule;
    uint8_t gen;
    __u64 in_debt;
  };
  Next next_version(const std::function<void(RuleSpec&)>& tweak) {
    RuleSpec spec;
    spec.cidr = *parse_cidr("198.18.0.0/15");
    tweak(spec);
    Next n{*compile_rule(spec, test::kHz),
           static_cast<uint8_t>(state_->rules().value().at(0).rule.gen % XT_GEN_MAX + 1), 0};
    n.in_debt = xt_word(xt_scaled(&n.rule.limit[1], kSec) + n.rule.limit[1].cap, n.gen);
    return n;
  }
  Verdict verdict(const std::vector<uint8_t>& frame, uint64_t now) {
    const auto before = state_->counters().value();
    const int action = run(frame, now);
    const auto after = state_->counters().value();
    for (int r = 0; r < XT_REASONS; r++)
      if (after[r].packets != before[r].packets) return {action, r};
    return {action, -1};
  }
  // Tokens a bucket has now under its rule (the rule's current generation).
  uint64_t tokens(const std::string& source, uint64_t now) {
    const xt_rule rule = state_->rules().value().at(0).rule;
    uint64_t left = 0;
    EXPECT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
      if (format_addr(e.key.family, e.key.addr) == source)
        left = xt_available(&rule.limit[0], XT_REGEN(&rule, 0, e.bucket.word[0], now), now);
    }));
    return left;
  }
  // Applies the rules file `text` as `apply` does; the diff it applied.
  std::optional<RulesDiff> apply_file(const std::string& text) {
    auto file = parse_rules_file(text, "test.toml");
    EXPECT_TRUE(file.has_value()) << file.error().message;
    if (!file) return std::nullopt;
    auto compiled = compile_rules(*file, test::kHz);
    EXPECT_TRUE(compiled.has_value()) << compiled.error().message;
    if (!compiled) return std::nullopt;
    auto diff = diff_rules(*state_, *file);
    EXPECT_TRUE(diff.has_value()) << diff.error().message;
    if (!diff) return std::nullopt;
    auto applied = apply_rules(*state_, *file, *diff);
    EXPECT_TRUE(applied.has_value()) << applied.error().message;
    if (!applied) return std::nullopt;
    return std::move(*diff);
  }
  // Writes word p of source's bucket as given: what only a test does.
  void set_word(const std::string& source, int p, __u64 value) {
    uint64_t slot = ~0ull;
    ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
      if (format_addr(e.key.family, e.key.addr) == source) slot = e.slot;
    }));
    ASSERT_NE(slot, ~0ull) << "no bucket for " << source;
    const uint32_t set = static_cast<uint32_t>(slot / XT_BUCKET_WAYS);
    xt_bucket_set v{};
    const int sets_fd = bpf_map__fd(skel_->maps.xt_buckets);
    ASSERT_EQ(bpf_map_lookup_elem(sets_fd, &set, &v), 0);
    v.way[slot % XT_BUCKET_WAYS].bucket.word[p] = value;
    ASSERT_EQ(bpf_map_update_elem(sets_fd, &set, &v, BPF_ANY), 0);
  }
  // Sets word p of source's bucket back (or on) to generation gen, its
  // tokens kept: what a bucket quiet through replacements holds.
  void set_gen(const std::string& source, int p, uint8_t gen) {
    set_word(source, p, xt_word(bucket_of(source).word[p] >> XT_GEN_BITS, gen));
  }
  xt_bucket bucket_of(const std::string& source) {
    xt_bucket out{};
    bool found = false;
    EXPECT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
      if (format_addr(e.key.family, e.key.addr) == source) out = e.bucket, found = true;
    }));
    if (!found) ADD_FAILURE() << "no bucket for " << source;
    return out;
  }
};

// Issue 9.2: adding a longer prefix must not, between its insert and its
// publication, let one packet's lookup decide a whole block of addresses.
// At every step of each change, each address gets the verdict of the rules
// before the change or of the rules after it.
TEST_F(RuleChanges, PacketsSeeTheOldRulesOrTheNewAtEveryStep) {
  load();
  rule("0.0.0.0/0", "1000000/s");
  rule("10.0.0.0/16", "1000000/s");
  const std::vector<std::string> sources = {"10.9.0.1", "10.9.200.200", "10.9.100.1", "10.0.0.1", "198.18.0.1"};
  const Verdict pass{XDP_PASS, XT_PASS_LIMIT}, deny{XDP_DROP, XT_DROP_DENY};
  const auto deny_rule = [](RuleSpec& s) { s.action = XT_ACT_DENY; };
  // Each change with the verdicts of the sources above before it and after
  // it. The caches are cold for each change's epoch when it starts (the
  // previous change bumped it): a packet whose lookup misses them midway is
  // what must not decide for its neighbours.
  struct Change {
    const char* what;
    std::function<void()> apply;
    std::vector<Verdict> before, after;
  } changes[] = {
      {"add 10.9.0.1/32 deny", [&] { rule("10.9.0.1/32", std::nullopt, std::nullopt, deny_rule); },
       {pass, pass, pass, pass, pass}, {deny, pass, pass, pass, pass}},
      {"add 10.9.0.0/24 deny", [&] { rule("10.9.0.0/24", std::nullopt, std::nullopt, deny_rule); },
       {deny, pass, pass, pass, pass}, {deny, pass, pass, pass, pass}},
      {"delete 10.9.0.1/32", [&] { ASSERT_TRUE(state_->del_rule(*parse_cidr("10.9.0.1/32"))); },
       {deny, pass, pass, pass, pass}, {deny, pass, pass, pass, pass}},
      {"add 10.9.128.0/17 deny", [&] { rule("10.9.128.0/17", std::nullopt, std::nullopt, deny_rule); },
       {deny, pass, pass, pass, pass}, {deny, deny, pass, pass, pass}},
      {"delete 10.9.0.0/24", [&] { ASSERT_TRUE(state_->del_rule(*parse_cidr("10.9.0.0/24"))); },
       {deny, deny, pass, pass, pass}, {pass, deny, pass, pass, pass}},
      {"delete 10.9.128.0/17", [&] { ASSERT_TRUE(state_->del_rule(*parse_cidr("10.9.128.0/17"))); },
       {pass, deny, pass, pass, pass}, {pass, pass, pass, pass, pass}},
  };
  uint64_t now = 0;
  for (const auto& change : changes) {
    SCOPED_TRACE(change.what);
    int steps = 0;
    state_->set_step_hook([&] {
      steps++;
      now += kSec;  // well within every limit
      for (size_t i = 0; i < sources.size(); i++) {
        const Verdict seen = verdict(Packet().ipv4(sources[i]).build(), now);
        EXPECT_TRUE(seen == change.before[i] || seen == change.after[i])
            << sources[i] << " got action " << seen.action << ", reason " << seen.reason << " at step " << steps
            << ": neither the old rules' verdict nor the new rules'";
      }
    });
    change.apply();
    state_->set_step_hook(nullptr);
    ASSERT_GT(steps, 0);
    now += kSec;
    for (size_t i = 0; i < sources.size(); i++)
      EXPECT_EQ(verdict(Packet().ipv4(sources[i]).build(), now), change.after[i]) << sources[i] << " after";
  }
}

// Port ranges change in steps too (a range, its children's parents, the
// port map): at each, every packet gets the old rules' verdict or the new
// ones'. The third change puts a range between a range and the ranges
// that held it before, with an id above its new child's.
TEST_F(RuleChanges, PortRangesChangeWithoutAGap) {
  load();
  rule("0.0.0.0/0", "1000000/s");
  // A host rule far away makes the rule cache's blocks single addresses,
  // and each check below sends from addresses of its own: every packet
  // walks the ranges as they are at that step, none is answered by a cache
  // entry an earlier step filled.
  rule("192.0.2.1/32", "1000000/s");
  const Verdict limit{XDP_PASS, XT_PASS_LIMIT}, allow{XDP_PASS, XT_PASS_ALLOW}, deny{XDP_DROP, XT_DROP_DENY};
  auto with = [](uint8_t action, uint16_t lo, uint16_t hi) {
    return [=](RuleSpec& s) {
      s.action = static_cast<xt_action>(action);
      s.match = Match{6, std::pair(lo, hi), false};
    };
  };
  struct Probe {
    const char* src;
    uint16_t port;
  } probes[] = {{"198.18.0.1", 22}, {"198.18.0.1", 80}, {"198.18.0.1", 2000}, {"10.0.0.1", 22}};
  struct Change {
    const char* what;
    std::function<void()> apply;
    std::vector<Verdict> before, after;
  } changes[] = {
      {"add 10.0.0.0/8 tcp/22 deny", [&] { rule("10.0.0.0/8", std::nullopt, std::nullopt, with(XT_ACT_DENY, 22, 22)); },
       {limit, limit, limit, limit}, {limit, limit, limit, deny}},
      {"add 0.0.0.0/0 tcp/1-65535 allow",
       [&] { rule("0.0.0.0/0", std::nullopt, std::nullopt, with(XT_ACT_ALLOW, 1, 65535)); },
       {limit, limit, limit, deny}, {allow, allow, allow, deny}},
      {"add 198.18.0.0/16 tcp/1-1023 deny",
       [&] { rule("198.18.0.0/16", std::nullopt, std::nullopt, with(XT_ACT_DENY, 1, 1023)); },
       {allow, allow, allow, deny}, {deny, deny, allow, deny}},
      {"delete it", [&] { ASSERT_TRUE(state_->del_rule(*parse_cidr("198.18.0.0/16"), Match{6, std::pair<uint16_t, uint16_t>(1, 1023), false})); },
       {deny, deny, allow, deny}, {allow, allow, allow, deny}},
      {"delete 10.0.0.0/8 tcp/22", [&] { ASSERT_TRUE(state_->del_rule(*parse_cidr("10.0.0.0/8"), Match{6, std::pair<uint16_t, uint16_t>(22, 22), false})); },
       {allow, allow, allow, deny}, {allow, allow, allow, allow}},
  };
  uint64_t now = 0;
  for (const auto& change : changes) {
    SCOPED_TRACE(change.what);
    int steps = 0;
    auto check = [&](const std::vector<Verdict>* only) {
      now += kSec;
      for (size_t i = 0; i < std::size(probes); i++) {
        std::string src = probes[i].src;
        src = src.substr(0, src.rfind('.') + 1) + std::to_string(now / kSec % 250 + 1);
        const auto frame = Packet().ipv4(src).tcp().ports(40000, probes[i].port).build();
        const Verdict seen = verdict(frame, now);
        if (only)
          EXPECT_EQ(seen, (*only)[i]) << probes[i].src << ":" << probes[i].port << " after";
        else
          EXPECT_TRUE(seen == change.before[i] || seen == change.after[i])
              << probes[i].src << ":" << probes[i].port << " got action " << seen.action << ", reason " << seen.reason
              << " at step " << steps << ": neither the old rules' verdict nor the new rules'";
      }
    };
    state_->set_step_hook([&] {
      steps++;
      check(nullptr);
    });
    change.apply();
    state_->set_step_hook(nullptr);
    ASSERT_GT(steps, 0);
    check(&change.after);
  }
}

// An add that fails after its match's port range went in takes the range
// out again, and starts a new epoch: the next add may take the range's id
// for another range, and packets of that one must not find the rule cache's
// entries of when the id meant this one (there, the TCP rule's).
// The state of the test's maps through an object without its sweep, which
// therefore cannot load its walks (as where the verifier or a memory limit
// refuses them); *skel keeps that object. Nothing where it cannot be made.
std::optional<State> without_sweep(std::optional<Skeleton>& skel, bpf_object* live_obj) {
  auto opened = open_object({.pin_dir = std::nullopt, .test_clock = true, .max_sources = XT_MIN_MAX_SOURCES});
  if (!opened) {
    ADD_FAILURE() << opened.error().message;
    return std::nullopt;
  }
  skel = std::move(*opened);
  bpf_map* map;
  bpf_object__for_each_map(map, (*skel)->obj) {
    if (bpf_map__is_internal(map)) continue;
    const bpf_map* live = bpf_object__find_map_by_name(live_obj, bpf_map__name(map));
    if (!live || bpf_map__reuse_fd(map, bpf_map__fd(live)) != 0) {
      ADD_FAILURE() << "cannot share " << bpf_map__name(map);
      return std::nullopt;
    }
  }
  if (bpf_program__set_autoload((*skel)->progs.xt_sweep, false) != 0 || xthrottle__load(skel->get()) != 0) {
    ADD_FAILURE() << "cannot load the object without its sweep";
    return std::nullopt;
  }
  auto state = State::from_object((*skel)->obj);
  if (!state) {
    ADD_FAILURE() << state.error().message;
    return std::nullopt;
  }
  return std::move(*state);
}

// A deletion runs a control program (the sweep of the rule's buckets),
// loaded on first use. It deleted the rule first and loaded the program
// after, so a load that failed (a verifier or memory limit) made `rule del`
// fail with the rule already gone: run again, "no rule for ...".
TEST_F(RuleChanges, ADeletionThatCannotLoadItsSweepChangesNothing) {
  load();
  rule("198.18.0.0/15", "10/s");
  std::optional<Skeleton> skel;
  std::optional<State> lame = without_sweep(skel, skel_->obj);
  ASSERT_TRUE(lame.has_value());
  auto del = lame->del_rule(*parse_cidr("198.18.0.0/15"));
  ASSERT_FALSE(del.has_value()) << "the control programs cannot be loaded here";
  std::printf("[ refused  ] %s\n", del.error().message.c_str());
  auto rules = state_->rules();
  ASSERT_TRUE(rules.has_value()) << rules.error().message;
  EXPECT_EQ(rules->size(), 1u) << "the rule is still there";
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 20, kSec), 10) << "and still limits";
}

// So does a change of --per, which frees the old --per's buckets after the
// swap (it walks the table once, not before the swap too): refused whole
// when that walk cannot be loaded, not made and then reported failed.
TEST_F(RuleChanges, AChangeOfPerThatCannotLoadItsSweepChangesNothing) {
  load();
  rule("198.18.0.0/15", "10/s");
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 20, kSec), 10);
  const xt_rule before = state_->rules().value().at(0).rule;
  std::optional<Skeleton> skel;
  std::optional<State> lame = without_sweep(skel, skel_->obj);
  ASSERT_TRUE(lame.has_value());
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  spec.rates = {*parse_rate("10/s")};
  spec.per = 24;
  auto put = lame->put_rule(spec, *compile_rule(spec, test::kHz));
  ASSERT_FALSE(put.has_value()) << "the control programs cannot be loaded here";
  std::printf("[ refused  ] %s\n", put.error().message.c_str());
  const xt_rule after = state_->rules().value().at(0).rule;
  EXPECT_EQ(after.per_len, before.per_len) << "the rule is as it was";
  EXPECT_EQ(after.gen, before.gen) << "the rule is as it was";
  EXPECT_EQ(buckets(), 1u) << "the /32 bucket is still there";
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 20, kSec), 0) << "and still spent";
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.2").build(), 20, 2 * kSec), 10) << "another /32 has its own";
}

// A replacement writes the rule's record (its options as given), then
// swaps the rule. Killed in between (an OOM kill, a stop's timeout during
// serve's reload), the record said the new rule while the kernel kept the
// old, and the same `rule add`, or the same file applied, found it
// unchanged for good: the kernel's rule is compared too. A rule as it was
// put, whatever it holds, is still unchanged.
TEST_F(RuleChanges, ARecordAheadOfItsRuleIsNotTakenForUnchanged) {
  load();
  const Cidr cidr = *parse_cidr("198.18.0.0/15");
  const auto spec = [&](const std::string& options) {
    auto s = spec_from_options_text(cidr, options);
    if (!s) ADD_FAILURE() << options << ": " << s.error().message;
    return s.value_or(RuleSpec{.cidr = cidr});
  };
  const auto put = [&](const RuleSpec& s) {
    auto compiled = compile_rule(s, test::kHz, online_cpus());
    ASSERT_TRUE(compiled.has_value()) << compiled.error().message;
    ASSERT_TRUE(state_->put_rule(s, *compiled).has_value());
  };
  const auto live = [&] { return state_->rules().value().at(0); };
  for (const char* options :
       {"--rate 10/s", "--rate 1/s --rate 1000/day", "--rate 10/s --rate 100/min --rate 1000/day",
        "--rate 10/s --bandwidth 1Mbit/s", "--rate 100/s --total 1000/s", "--rate 10/s --per 24 --dry-run",
        "--rate 10/s --new-rate 5/s --verify off --remember 0", "--rate 10/s --ban-after 10s --ban-for 60s --over ecn",
        "--deny", "--allow"}) {
    const RuleSpec s = spec(options);
    put(s);
    EXPECT_TRUE(rule_unchanged(*state_, live(), s, *compile_rule(s, test::kHz, online_cpus()))) << options << ": as put";
  }
  put(spec("--rate 10/s"));
  const RuleSpec want = spec("--rate 20/s");
  const std::string text = options_text(want);
  char record[XT_RULE_TEXT_SIZE] = {};
  std::memcpy(record, text.data(), text.size());
  const uint32_t id = live().rule.id;
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.xt_rule_text), &id, record, BPF_EXIST), 0);
  ASSERT_TRUE(same_rule(live().spec, want)) << "the record says the new rule";
  const xt_rule compiled = *compile_rule(want, test::kHz, online_cpus());
  EXPECT_FALSE(rule_unchanged(*state_, live(), want, compiled)) << "the kernel still has the old";
  put(want);
  EXPECT_TRUE(rule_unchanged(*state_, live(), want, compiled));
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 30, kSec), 20);
}

TEST_F(RuleChanges, AFailedAddLeavesNoCacheEntryOfItsRange) {
  load();
  rule("0.0.0.0/0", "1000000/s", std::nullopt, [](RuleSpec& s) { s.match = Match{6, std::nullopt, false}; });
  rule("192.0.2.1/32", "1000000/s");  // the rule cache's blocks single addresses (above)
  RuleSpec wordy;
  wordy.cidr = *parse_cidr("0.0.0.0/0");
  wordy.match = Match{6, std::pair<uint16_t, uint16_t>(2222, 2222), false};
  wordy.rates = {*parse_rate("1000/s"), *parse_rate("20000/min")};
  wordy.bursts = {1000000, 2000000};
  wordy.bandwidths = {*parse_bandwidth("1234567kbit/s")};
  wordy.burst_bytes = {1234567890};
  wordy.dry_run = true;
  wordy.ecn = true;
  wordy.new_rate = *parse_rate("123456/s");
  wordy.verify_rate = *parse_rate("654321/s");
  wordy.remember = 86399;
  wordy.ban_after = 64799;
  wordy.ban_for = 4294967;
  ASSERT_GE(options_text(wordy).size(), size_t{XT_RULE_TEXT_SIZE}) << options_text(wordy);
  EXPECT_FALSE(compile_rule(wordy, test::kHz).has_value()) << "refused when compiled, before any change";
  // put_rule keeps its own check, a step that fails half-way: reached here
  // with the rule of a shorter spec of the same range.
  RuleSpec plain;
  plain.cidr = wordy.cidr;
  plain.match = wordy.match;
  plain.rates = {*parse_rate("1000/s")};
  auto compiled = compile_rule(plain, test::kHz);
  ASSERT_TRUE(compiled.has_value()) << compiled.error().message;
  const auto tcp22 = Packet().ipv4("198.18.0.7").tcp().ports(40000, 2222).build();
  const auto udp53 = Packet().ipv4("198.18.0.7").ports(40000, 53).build();  // UDP unless told
  uint64_t now = kSec;
  state_->set_step_hook([&] { (void)verdict(tcp22, now += kMs); });  // cached under the range's id
  ASSERT_FALSE(state_->put_rule(wordy, *compiled).has_value()) << "too long to record";
  const Verdict unmatched{XDP_PASS, XT_PASS_UNMATCHED}, deny{XDP_DROP, XT_DROP_DENY};
  int steps = 0;
  state_->set_step_hook([&] {
    steps++;
    const Verdict seen = verdict(udp53, now += kMs);
    EXPECT_TRUE(seen == unmatched || seen == deny)
        << "UDP/53 got action " << seen.action << ", reason " << seen.reason << " at step " << steps
        << ": a cache entry of the failed add's range";
  });
  rule("0.0.0.0/0", std::nullopt, std::nullopt, [](RuleSpec& s) {
    s.action = XT_ACT_DENY;
    s.match = Match{17, std::pair<uint16_t, uint16_t>(53, 53), false};
  });
  state_->set_step_hook(nullptr);
  EXPECT_GT(steps, 0);
  EXPECT_EQ(verdict(udp53, now += kMs), deny);
}

// Issue 9.1: a replacement brings lagging buckets up to date while sources
// keep sending. What a source spends meanwhile stays spent: its passed
// packets plus the tokens it has left equal what it had, exactly, and its
// counter keeps every packet. Three sources: A current and sending all
// along; B lagging, the first bucket a walk reaches, sending from 200 ms on
// (what the old userspace walk restored, a second burst); C lagging and
// sending from the start, against the kernel's walk over a million buckets.
TEST_F(RuleChanges, AReplacementNeverGivesBackWhatWasSpentDuringIt) {
  load(1 << 21);
  const uint64_t burst = 100'000'000;
  rule("0.0.0.0/0", "1/hour", burst);
  const std::string a = "198.18.0.1";
  ASSERT_EQ(run(Packet().ipv4(a).build(), 0), XDP_PASS);
  rule("0.0.0.0/0", "1/hour", burst);  // from here on, a bucket last written before lags one generation

  // A million quiet sources whose buckets lag, so that the catch-up takes
  // a while; C is one of them.
  const xt_rule r = state_->rules().value().at(0).rule;
  std::vector<std::pair<xt_bucket_key, xt_bucket>> quiet;
  for (uint32_t i = 0; i < 1'000'000; i++) {
    xt_pkt src{};
    src.family = XT_FAMILY_V4;
    const uint8_t addr[4] = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    std::memcpy(src.addr, addr, sizeof(addr));
    xt_bucket_key k;
    xt_bucket_key_for(&src, r.id, r.per_len, &k);
    xt_bucket b;
    xt_bucket_init(&b, &r, 0);
    b.word[0] = (b.word[0] & ~static_cast<uint64_t>(XT_GEN_MAX)) | r.prev_gen;  // written under the previous version
    quiet.emplace_back(k, b);
  }
  plant(quiet);
  // B: the first bucket the catch-up reaches (it walks the sets in order).
  std::string b;
  ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
    const std::string s = format_addr(e.key.family, e.key.addr);
    if (b.empty() && s != a) b = s;
  }));
  const std::string c = b == "10.7.161.32" ? "10.7.161.33" : "10.7.161.32";

  std::atomic<bool> done = false;
  std::thread replace([&] {
    rule("0.0.0.0/0", "1/hour", burst);
    done = true;
  });
  uint64_t passed_a = 1, passed_b = 0, passed_c = 0;
  const auto a_frame = Packet().ipv4(a).build(), b_frame = Packet().ipv4(b).build(), c_frame = Packet().ipv4(c).build();
  const auto b_from = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (!done) {
    passed_a += run(a_frame, 0) == XDP_PASS;
    passed_c += run(c_frame, 0) == XDP_PASS;
    if (std::chrono::steady_clock::now() > b_from) passed_b += run(b_frame, 0) == XDP_PASS;
  }
  replace.join();
  std::cout << passed_a - 1 << " packets of A, " << passed_b << " of B and " << passed_c
            << " of C passed during the replacement\n";
  ASSERT_GT(passed_a, 1u) << "A must send during the replacement";
  ASSERT_GT(passed_c, 0u) << "C must send during the replacement";
  passed_b += passed(b_frame, 1000, 0);  // and after it, B too
  for (const auto& [source, sent] : {std::pair{a, passed_a}, std::pair{b, passed_b}, std::pair{c, passed_c}}) {
    EXPECT_EQ(sent + tokens(source, 0), burst) << "tokens " << source << " spent during the replacement came back";
    EXPECT_EQ(bucket_of(source).passed_packets, sent) << source << "'s counter lost packets";
  }
}

// A catch-up (a replacement's walk of the table) converts a bucket's words
// one by one, each by compare-and-swap, once it has seen that the way holds
// a bucket of its rule. A newcomer of another rule may take the way
// meanwhile (an idle source's, which a lagging bucket usually is): it
// clears the key's family, writes its fresh words, then its key. Checked
// once before the words, the key let the walk convert the newcomer's fresh
// words as its own rule's, into that rule's generation (and, where the
// generations agreed, its units). Here a table of idle buckets of one rule
// is walked over and over on CPU 0 while newcomers of another rule take
// their ways on CPU 1: no newcomer's word may come out of a generation not
// its rule's, whether the walk swaps the words no limit uses or not.
TEST_F(RuleChanges, ACatchUpLeavesANewcomerOfAnotherRuleAlone) {
  load();
  rule("198.18.0.0/15", "1/hour", 10, [](RuleSpec& s) { s.new_rate = *parse_rate("100000000/s"); });
  // The walked rule two versions on: its buckets lag one behind, and
  // neither generation is the newcomers'.
  for (int i = 0; i < 3; i++) rule("10.0.0.0/8", "1/hour", 10);
  std::optional<xt_rule> walked, other;
  const auto rules = state_->rules().value();
  for (const auto& r : rules) (r.cidr.len == 8 ? walked : other) = r.rule;
  ASSERT_TRUE(walked && other);
  ASSERT_NE(walked->gen, other->gen);
  ASSERT_NE(walked->prev_gen, other->gen);
  xt_control walk{};
  walk.rule = *walked;
  const uint32_t zero = 0;

  const xt_config cfg = state_->config().value();
  const uint32_t sets = 1u << cfg.bucket_bits;
  const uint64_t flood_at = 1000 * kSec, planted_at = flood_at - 200 * kSec;  // idle by the flood
  std::vector<std::pair<xt_bucket_key, xt_bucket>> idle;
  for (uint32_t i = 0; i < sets * XT_BUCKET_WAYS * 2; i++) {
    xt_pkt src{};
    src.family = XT_FAMILY_V4;
    const uint8_t addr[4] = {10, 0, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    std::memcpy(src.addr, addr, sizeof(addr));
    xt_bucket_key k;
    xt_bucket_key_for(&src, walked->id, walked->per_len, &k);
    xt_bucket b;
    xt_bucket_init(&b, &*walked, planted_at);
    for (auto& w : b.word) w = (w & ~static_cast<__u64>(XT_GEN_MAX)) | walked->prev_gen;
    idle.emplace_back(k, b);
  }
  std::vector<std::vector<uint8_t>> newcomers;
  for (uint32_t i = 0; i < sets * XT_BUCKET_WAYS / 2; i++) newcomers.push_back(Packet().ipv4(test::nth_source(i)).build());

  const xt_bucket_set empty_set{};
  const xt_set_tags empty_tags{};
  const xt_set_marks empty_marks{};
  uint64_t converted = 0, taken = 0, walks = 0;
  constexpr int kRounds = 100;
  for (int round = 0; round < kRounds && !HasFatalFailure(); round++) {
    for (uint32_t s = 0; s < sets; s++) {
      ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.xt_buckets), &s, &empty_set, BPF_ANY), 0);
      ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.xt_bucket_tags), &s, &empty_tags, BPF_ANY), 0);
      ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.xt_bucket_marks), &s, &empty_marks, BPF_ANY), 0);
    }
    skel_->bss->xt_test_now = planted_at;
    plant(idle);
    skel_->bss->xt_test_now = flood_at;
    // Every other round, the two words no limit uses swapped too (as where
    // the rule's next version makes them limits').
    walk.catch_up_bare = round % 2 ? 0b110 : 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.xt_ctl), &zero, &walk, BPF_ANY), 0);
    std::atomic<bool> flooded = false, failed = false;
    std::atomic<uint64_t> ran = 0;
    std::thread walker([&] {
      unsigned char frame[64] = {};
      LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof(frame), .repeat = 4);
      if (!pin_to_cpu(0)) failed = true;
      while (!failed && !flooded) {
        if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.xt_catch_up), &opts) != 0) failed = true;
        ran += 4;
      }
    });
    std::thread flood([&] {
      if (!pin_to_cpu(1)) failed = true;
      for (const auto& frame : newcomers) {
        if (failed) break;
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                    .data_size_in = static_cast<uint32_t>(frame.size()), .repeat = 1);
        if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.xthrottle), &opts) != 0) failed = true;
      }
      flooded = true;
    });
    flood.join();
    walker.join();
    ASSERT_FALSE(failed) << "cannot run on CPUs 0 and 1";
    walks += ran;
    ASSERT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) {
      if (e.key.rule_id != other->id) return;
      taken++;
      for (int p = 0; p < XT_MAX_LIMITS; p++) converted += xt_word_gen(e.bucket.word[p]) != other->gen;
    }));
  }
  std::cout << taken << " newcomers' buckets after " << walks << " walks; " << converted
            << " of their words converted\n";
  EXPECT_GT(taken, kRounds * newcomers.size() / 2) << "the newcomers must take the idle ways";
  EXPECT_EQ(converted, 0u) << "a newcomer's words converted as another rule's";
}

// A replacement first brings every bucket of the rule to the rule's
// generation (the data path converts one generation back, no more): the
// words of its limits, by compare-and-swap. A word no limit uses reads as
// the bare generation whatever it holds, and is brought up only by a
// replacement that makes it a limit's: left generations behind (a removed
// window's, in that window's units), it could come round to the new
// version's generation and read as in debt. The case: a throttled source
// gone quiet, its bucket unwritten between replacements (as it is while
// the hot cache drops its packets).
TEST_F(RuleChanges, AReplacementLeavesNoWordOfABucketBehind) {
  load();
  rule("198.18.0.0/15", "10/s", 2);
  const auto frame = Packet().ipv4("198.18.0.1").build();
  EXPECT_EQ(passed(frame, 20, 0), 2);
  for (int i = 0; i < 3; i++) {
    rule("198.18.0.0/15", "10/s", 2);
    const xt_rule r = state_->rules().value().at(0).rule;
    EXPECT_EQ(xt_word_gen(bucket_of("198.18.0.1").word[0]), r.prev_gen) << "replacement " << i + 1;
  }
  // A second window, which takes the second word; that word as a removed
  // window's could hold.
  const Next next = next_version(two_windows);
  set_word("198.18.0.1", 1, next.in_debt);

  rule("198.18.0.0/15", std::nullopt, std::nullopt, two_windows);
  const xt_rule r = state_->rules().value().at(0).rule;
  ASSERT_EQ(r.gen, next.gen);
  ASSERT_EQ(r.limit[1].cap, next.rule.limit[1].cap) << "the new window is the second word's";
  EXPECT_EQ(bucket_of("198.18.0.1").word[1], r.prev_gen) << "the new window's word brought up: full from there";
  EXPECT_EQ(passed(frame, 5, 0), 0) << "no fresh burst";
  EXPECT_EQ(passed(frame, 5, 100 * kMs), 1) << "and it refills at the rate";
}

// The same for a change that keys the buckets anew, which makes no walk
// before its swap for the limits' words: a bucket of the --per it goes to
// may be there from before (a packet under an older version after that
// version's sweep had passed its set), and it is kept. A word no limit
// uses that the change makes a limit's is brought up first all the same.
TEST_F(RuleChanges, AChangeOfPerThatAddsAWindowBringsItsWordUpFirst) {
  load();
  rule("198.18.0.0/15", "10/s", 2);
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 5, 0), 2);
  auto per_24_two_windows = [](RuleSpec& s) {
    two_windows(s);
    s.per = 24;
  };
  const Next next = next_version(per_24_two_windows);
  const xt_rule now = state_->rules().value().at(0).rule;
  // A /24 bucket left over, full, its second word a removed window's of the
  // next version's generation and in debt there.
  xt_pkt src{};
  src.family = XT_FAMILY_V4;
  const uint8_t addr[4] = {198, 18, 0, 0};
  std::memcpy(src.addr, addr, sizeof(addr));
  xt_bucket_key k;
  xt_bucket_key_for(&src, now.id, 24, &k);
  xt_bucket b;
  xt_bucket_init(&b, &now, 0);
  b.word[1] = next.in_debt;
  plant({{k, b}});
  ASSERT_EQ(buckets(), 2u);

  rule("198.18.0.0/15", std::nullopt, std::nullopt, per_24_two_windows);
  const xt_rule r = state_->rules().value().at(0).rule;
  ASSERT_EQ(r.gen, next.gen);
  ASSERT_EQ(r.limit[1].cap, next.rule.limit[1].cap) << "the new window is the second word's";
  EXPECT_EQ(buckets(), 1u) << "the /32 bucket freed, the /24 kept";
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.9").build(), 5, 0), 2) << "the /24's bucket full in both windows";
}

// Buckets keyed by another --per are freed when a replacement changes it;
// a replacement that keeps it keeps them, spent tokens and all.
TEST_F(RuleChanges, OnlyAChangeOfPerFreesTheBuckets) {
  load();
  rule("198.18.0.0/15", "1/s", 2);
  const auto one = Packet().ipv4("198.18.0.1").build(), two = Packet().ipv4("198.18.0.2").build();
  EXPECT_EQ(passed(one, 5, 0), 2);
  EXPECT_EQ(passed(two, 5, 0), 2);
  rule("198.18.0.0/15", "1/s", 2);
  EXPECT_EQ(buckets(), 2u) << "the same --per";
  EXPECT_EQ(passed(one, 5, 0), 0) << "its spent tokens stay spent";
  rule("198.18.0.0/15", "1/s", 2, [](RuleSpec& s) { s.per = 24; });
  EXPECT_EQ(buckets(), 0u) << "the buckets of /32 sources can never be hit again";
  EXPECT_EQ(passed(one, 5, 0), 2) << "the /24's own bucket, new";
  EXPECT_EQ(passed(two, 5, 0), 0) << "shared by the /24";
}

// A change of --per frees the old --per's buckets after the swap, and the
// same walk brings the buckets it keeps to the rule's new generation; it
// makes no walk before the swap (a catch-up there, as a replacement that
// keeps the keys makes, took a change at 4M sources to 0.2 s). So a
// controller stopped before that walk leaves buckets a generation further
// behind at each such change, and they would come round to a generation
// the rule has again, to be read in another version's units. The rule
// stays marked until the walk has finished, and the next change, of
// whatever, brings every bucket up first and walks after: here two
// changes stopped after the swap, then one of the rate alone, and the /24
// bucket spent before the first is still spent, at the rule's generation,
// where without the mark it was three behind and read as full. The mark
// is no change of the rule's options.
TEST_F(RuleChanges, AChangeOfPerStoppedBeforeItsSweepIsFinishedByTheNext) {
  load();
  rule("198.18.0.0/15", "1/s", 2, [](RuleSpec& s) { s.per = 24; });
  const auto one = Packet().ipv4("198.18.0.1").build(), other = Packet().ipv4("198.18.1.1").build();
  EXPECT_EQ(passed(one, 5, 0), 2);

  struct Killed {};
  RuleSpec s;
  s.cidr = *parse_cidr("198.18.0.0/15");
  s.rates = {*parse_rate("1/s")};
  s.bursts = {2};
  for (uint8_t to : {32, 24}) {
    int steps = 0;
    state_->set_step_hook([&] {
      if (++steps == 2) throw Killed{};  // the rule swapped and published, not yet swept
    });
    s.per = to;
    EXPECT_THROW((void)state_->put_rule(s, *compile_rule(s, test::kHz)), Killed) << "to /" << int{to};
    state_->set_step_hook(nullptr);
    EXPECT_TRUE(state_->rules().value().at(0).rule.flags & XT_RULE_REKEYED)
        << "to /" << int{to} << ": marked until its walk finishes";
    if (to == 32) {
      EXPECT_EQ(passed(other, 5, 0), 2) << "a /32 bucket of this version";
    }
  }
  EXPECT_EQ(buckets(), 2u) << "nothing swept: the /24 and the /32";
  EXPECT_TRUE(rule_unchanged(*state_, state_->rules().value().at(0), s, *compile_rule(s, test::kHz)))
      << "the mark is no difference of the rule";

  rule("198.18.0.0/15", "2/s", 2, [](RuleSpec& s) { s.per = 24; });  // the same keys
  const xt_rule r = state_->rules().value().at(0).rule;
  EXPECT_FALSE(r.flags & XT_RULE_REKEYED) << "the walk finished";
  EXPECT_EQ(buckets(), 1u) << "the /32 bucket freed";
  const xt_bucket b = bucket_of("198.18.0.0");
  EXPECT_EQ(xt_word_gen(b.word[0]), r.gen) << "its limit's word behind the rule";
  EXPECT_EQ(passed(one, 5, 0), 0) << "spent before the first change: still spent";
  EXPECT_EQ(passed(one, 5, kSec), 2) << "and refilled at the new rate";
  EXPECT_EQ(passed(Packet().ipv4("198.18.2.1").build(), 5, 0), 2) << "another /24, new";
}

// A change of --per that finishes leaves no mark; one that keeps the keys
// makes none.
TEST_F(RuleChanges, OnlyAChangeOfPerThatIsStoppedLeavesItsRuleMarked) {
  load();
  rule("198.18.0.0/15", "1/s", 2);
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 5, 0), 2);
  rule("198.18.0.0/15", "1/s", 2, [](RuleSpec& s) { s.per = 24; });
  EXPECT_FALSE(state_->rules().value().at(0).rule.flags & XT_RULE_REKEYED);
  EXPECT_EQ(buckets(), 0u);
  rule("198.18.0.0/15", "2/s", 2, [](RuleSpec& s) { s.per = 24; });
  EXPECT_FALSE(state_->rules().value().at(0).rule.flags & XT_RULE_REKEYED);
}

// Issue 9.5: drops the per-CPU hot cache holds for a source are neither
// lost nor taken back when an unrelated rule change bumps the epoch.
TEST_F(RuleChanges, HotCacheDropsSurviveAnUnrelatedRuleChange) {
  load();
  rule("198.18.0.0/15", "10/s", 2);
  const auto frame = Packet().ipv4("198.18.0.1").build();
  EXPECT_EQ(passed(frame, 100, 0), 2);
  auto top_drops = [&] {
    uint64_t drops = bucket_of("198.18.0.1").dropped_packets;
    const PendingDrops pending = state_->hot_pending().value();
    for (const auto& [key, n] : pending) drops += n;
    return drops;
  };
  EXPECT_EQ(top_drops(), 98u);
  rule("203.0.113.0/24", "10/s");  // unrelated
  EXPECT_EQ(top_drops(), 98u) << "an unrelated rule change took drops back";
  EXPECT_EQ(passed(frame, 10, 1), 0);
  EXPECT_EQ(top_drops(), 108u);
  EXPECT_EQ(passed(frame, 1, kSec), 1);
  EXPECT_EQ(bucket_of("198.18.0.1").dropped_packets, 108u) << "the bucket's own counter";
}

// A deny rule replaced by a limit keeps its id: the drops the hot cache
// made for the deny (counted as denied when they were made) are no drops of
// the limit's bucket for the source, in the data path or in what `top`
// adds. (They were added to it: a source that never went over its limit
// showed the deny's 9 drops.)
TEST_F(RuleChanges, ADenysDropsAreNoneOfTheLimitThatReplacesIt) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the hot cache is per CPU
  load();
  rule("198.18.0.0/16", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  const auto frame = Packet().ipv4("198.18.0.9").build();
  EXPECT_EQ(passed(frame, 10, 0), 0);
  EXPECT_EQ(counter(XT_DROP_DENY), 10u);
  rule("198.18.0.0/16", "1000/s");
  EXPECT_TRUE(state_->hot_pending().value().empty()) << "nothing pending for the limit's buckets";
  EXPECT_EQ(passed(frame, 1, 1), 1);
  EXPECT_EQ(bucket_of("198.18.0.9").dropped_packets, 0u);
  EXPECT_EQ(rule_stats("198.18.0.0/16").dropped_packets, 10u) << "the rule's own count: the deny's drops";
}

// Issue 9.6: a walk that keeps being sent back to the start (the key it
// stands on deleted under it, as an LRU evicting under churn does) must say
// it did not finish rather than report success.
TEST_F(RuleChanges, AWalkThatCannotFinishSaysSo) {
  XT_REQUIRE_ROOT();
  Fd map(bpf_map_create(BPF_MAP_TYPE_HASH, "xt_walk_test", sizeof(uint32_t), sizeof(uint32_t), 4096, nullptr));
  ASSERT_TRUE(map) << "cannot create a hash map";
  for (uint32_t k = 0; k < 1000; k++) ASSERT_EQ(bpf_map_update_elem(map.get(), &k, &k, BPF_ANY), 0);
  size_t visited = 0;
  std::optional<uint32_t> parked;
  auto walked = walk_keys<uint32_t>(map.get(), "the test map", [&](const uint32_t& key) {
    visited++;
    // The key the walk stands on goes (so the walk starts over), and the one
    // that went before comes back (so starting over passes keys seen already).
    bpf_map_delete_elem(map.get(), &key);
    if (parked) bpf_map_update_elem(map.get(), &*parked, &*parked, BPF_ANY);
    parked = key;
  });
  EXPECT_FALSE(walked.has_value()) << "visited " << visited << " of 1000 keys and reported a finished walk";
  if (!walked) std::cout << walked.error().message << "\n";
}

// Status, serve's scrapes and the recorder read the rules while another
// command changes them, without a lock. A rule deleted as they read must
// read as gone, never as damaged state, nor as the rule that covers it.
// (A reader whose lookup came after the key's deletion was given the
// /16's rule under the /24's name; one between the key's deletion and its
// record's release failed with "the record of rule ... does not read
// back: the state is damaged".)
TEST_F(RuleChanges, ARuleDeletedWhileRulesAreReadIsGoneNotDamaged) {
  load();
  rule("0.0.0.0/0", "1000/s");
  auto reader = State::from_object(skel_->obj);
  ASSERT_TRUE(reader.has_value()) << reader.error().message;
  const Match dns{.proto = kProtoUdp, .ports = std::pair<uint16_t, uint16_t>{53, 53}};
  rule("198.18.0.0/16", "1000/s", std::nullopt, [&](RuleSpec& s) { s.match = dns; });  // covers the /24
  std::atomic<bool> stop = false;
  std::atomic<int> reads = 0, errors = 0, wrong = 0;
  std::string last_error;
  std::thread read([&] {
    while (!stop) {
      auto rules = reader->rules();
      reads++;
      if (!rules) {
        if (errors++ == 0) last_error = rules.error().message;
        continue;
      }
      for (const RuleEntry& e : *rules)
        if (e.spec.rates.at(0).count != (e.cidr.len == 24 ? 50u : 1000u) || (e.cidr.len > 0) != (e.spec.match == dns))
          wrong++;
    }
  });
  // An assertion that fails below returns with the reader stopped and joined
  // (a joinable thread's destructor would abort the whole binary).
  struct Joined {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joined() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joined{stop, read};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (int i = 0; i < 1000 && std::chrono::steady_clock::now() < deadline; i++) {
    rule("198.18.0.0/24", "50/s", std::nullopt, [&](RuleSpec& s) { s.match = dns; });
    ASSERT_TRUE(state_->del_rule(*parse_cidr("198.18.0.0/24"), dns).has_value());
  }
  stop = true;
  read.join();
  std::printf("[ measure  ] %d reads of the rules beside the changes\n", reads.load());
  EXPECT_EQ(errors, 0) << last_error;
  EXPECT_EQ(wrong, 0) << "a rule shown with another's options";
  EXPECT_GT(reads, 100) << "the reads overlapped the changes";
}

// An apply deletes its rules together: the rules read once, one walk of
// the table for all their buckets. Each deleted rule's buckets and slot go,
// and no other's; a list naming a rule that is not there changes nothing.
TEST_F(RuleChanges, RulesDeletedTogetherFreeTheirBucketsAndSlotsAndNoOthers) {
  load();
  const char* cidrs[] = {"198.18.0.0/24", "198.18.1.0/24", "198.18.2.0/24"};
  const char* sources[] = {"198.18.0.1", "198.18.1.1", "198.18.2.1"};
  for (const char* c : cidrs) rule(c, "1/hour", 1);
  for (const char* src : sources) EXPECT_EQ(passed(Packet().ipv4(src).build(), 2, 0), 1);
  ASSERT_EQ(buckets(), 3u);
  auto pair = [](const char* cidr) { return std::pair<Cidr, Match>{*parse_cidr(cidr), Match{}}; };

  auto refused = state_->del_rules({pair(cidrs[0]), pair("198.18.9.0/24")});
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("no rule for 198.18.9.0/24"), std::string::npos) << refused.error().message;
  EXPECT_EQ(state_->rules().value().size(), 3u) << "nothing deleted";
  EXPECT_EQ(buckets(), 3u);

  ASSERT_TRUE(state_->del_rules({pair(cidrs[0]), pair(cidrs[2])}).has_value());
  const auto left = state_->rules().value();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(format_cidr(left[0].cidr), cidrs[1]);
  EXPECT_EQ(buckets(), 1u) << "the deleted rules' buckets freed, the other's kept";
  EXPECT_EQ(passed(Packet().ipv4(sources[1]).build(), 1, kSec), 0) << "its spent token stays spent";
  EXPECT_EQ(passed(Packet().ipv4(sources[0]).build(), 3, kSec), 3) << "no rule of its own any more";
  rule("198.18.7.0/24", "1/hour", 1);
  rule("198.18.8.0/24", "1/hour", 1);
  std::set<uint32_t> ids;
  const auto now = state_->rules().value();
  for (const RuleEntry& e : now) ids.insert(e.rule.id);
  EXPECT_EQ(ids, (std::set<uint32_t>{0, 1, 2})) << "the two slots free again";
}

// An apply frees what deleted rules left in the slots its new rules take
// (a deletion whose walk lost every race to the data path, or a controller
// stopped before it) in one walk before the first of them goes in, not one
// walk a rule: a source the slot's last rule had drained gets the new
// rule's burst. A slot no new rule takes keeps its leftovers for the walk
// of the rule that takes it.
TEST_F(RuleChanges, AnApplysNewRulesFindNothingTheirSlotsLastRulesLeft) {
  load();
  rule("198.19.0.0/16", "1/hour", 1);  // slot 0
  const auto drained = Packet().ipv4("198.19.0.1").build();
  EXPECT_EQ(passed(drained, 2, 0), 1);
  const BucketEntry spent = [&] {
    BucketEntry out{};
    EXPECT_TRUE(state_->for_each_bucket([&](const BucketEntry& e) { out = e; }));
    return out;
  }();
  // That drained bucket, as slots 1, 2 and 3 would hold it for sources of
  // the rules the file adds.
  std::vector<std::pair<xt_bucket_key, xt_bucket>> left;
  for (uint32_t id = 1; id <= 3; id++) {
    xt_pkt src{};
    src.family = XT_FAMILY_V4;
    const uint8_t addr[4] = {198, 18, static_cast<uint8_t>(id), 1};
    std::memcpy(src.addr, addr, sizeof(addr));
    xt_bucket_key k;
    xt_bucket_key_for(&src, id, 32, &k);
    left.emplace_back(k, spent.bucket);
  }
  plant(left);
  ASSERT_EQ(buckets(), 4u);

  const auto diff = apply_file(R"([[rule]]
cidr = "198.19.0.0/16"
rate = "1/hour"
burst = 1

[[rule]]
cidr = "198.18.1.0/24"
rate = "1/hour"
burst = 1

[[rule]]
cidr = "198.18.2.0/24"
rate = "1/hour"
burst = 1
)");
  ASSERT_TRUE(diff.has_value());
  ASSERT_EQ(diff->add.size(), 2u);
  std::map<std::string, uint32_t> id_of;
  const auto now = state_->rules().value();
  for (const RuleEntry& e : now) id_of[format_cidr(e.cidr)] = e.rule.id;
  ASSERT_EQ(id_of["198.18.1.0/24"], 1u);
  ASSERT_EQ(id_of["198.18.2.0/24"], 2u);
  EXPECT_EQ(buckets(), 2u) << "the source of slot 0's rule, and slot 3's leftover";
  EXPECT_EQ(passed(Packet().ipv4("198.18.1.1").build(), 2, kSec), 1) << "a full burst under the rule new in slot 1";
  EXPECT_EQ(passed(Packet().ipv4("198.18.2.1").build(), 2, kSec), 1) << "and in slot 2";
  EXPECT_EQ(passed(drained, 1, kSec), 0) << "the live rule's bucket is its own";
}

// A slot made ready is taken without a walk of its own: what an apply's
// one walk is for. (Here a bucket planted in the slot after that walk is
// still there once the rule is in; nothing but a test writes one there.)
TEST_F(RuleChanges, ASlotMadeReadyIsTakenWithoutAWalkOfItsOwn) {
  load();
  rule("198.19.0.0/16", "1/hour", 1);  // slot 0
  auto ready = state_->ready_new_slots(1);
  ASSERT_TRUE(ready.has_value()) << ready.error().message;
  xt_pkt src{};
  src.family = XT_FAMILY_V4;
  const uint8_t addr[4] = {198, 18, 1, 1};
  std::memcpy(src.addr, addr, sizeof(addr));
  xt_bucket_key k;
  xt_bucket_key_for(&src, 1, 32, &k);
  xt_bucket b;
  xt_bucket_init(&b, &state_->rules().value().at(0).rule, 0);
  plant({{k, b}});
  rule("198.18.1.0/24", "1/hour", 1);
  EXPECT_EQ(state_->rule_of(*parse_cidr("198.18.1.0/24"), Match{}).value().id, 1u) << "the slot made ready";
  EXPECT_EQ(buckets(), 1u) << "no walk freed it";
}

// The rules an apply changes have their buckets brought up to date in one
// walk before their swaps (State::catch_up_changes), each to its own
// version's generation, and no other rule's: here every bucket is one
// version behind its rule, as a source quiet through a replacement leaves
// it. The rule left as it is has slot 0 (what a zeroed entry of the walk's
// rules names); the changed ones are past the first 64 slots (the rule
// set's second word).
TEST_F(RuleChanges, TheRulesAnApplyChangesAreBroughtUpTogetherAndNoOthers) {
  load();
  const std::string kept = "198.19.128.0/17", a = "198.18.0.0/16", b = "198.19.64.0/18";
  const std::string kept_src = "198.19.128.1", a_src = "198.18.0.1", b_src = "198.19.64.1";
  std::vector<std::string> fillers;  // slots 1 to 64, no source of theirs
  for (int i = 0; i < 64; i++) fillers.push_back("198.19." + std::to_string(i) + ".0/24");
  rule(kept, "10/s", 2);
  for (const auto& f : fillers) rule(f, "10/s", 2);
  rule(a, "10/s", 2);
  rule(b, "10/s", 2);
  auto rule_at = [&](const std::string& cidr) { return state_->rule_of(*parse_cidr(cidr), Match{}).value(); };
  ASSERT_EQ(rule_at(kept).id, 0u);
  ASSERT_EQ(rule_at(a).id, 65u);
  ASSERT_EQ(rule_at(b).id, 66u);
  for (const auto& src : {kept_src, a_src, b_src})
    EXPECT_EQ(passed(Packet().ipv4(src).build(), 1, 0), 1) << src;
  for (const auto& c : {kept, a, b}) rule(c, "10/s", 2);  // the buckets stay where they were: one behind
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  for (const auto& [c, src] : Pairs{{kept, kept_src}, {a, a_src}, {b, b_src}})
    ASSERT_EQ(xt_word_gen(bucket_of(src).word[0]), rule_at(c).prev_gen) << src;

  auto changed = [&](const std::string& cidr) {
    RuleSpec spec;
    spec.cidr = *parse_cidr(cidr);
    spec.rates = {*parse_rate("20/s")};
    spec.bursts = {2};
    return std::pair{spec, *compile_rule(spec, test::kHz)};
  };
  {
    // An earlier walk of this controller's, for the rule left as it is,
    // whose version stays in xt_catch_up_in; two replacements since, each
    // walking for itself.
    auto earlier = state_->catch_up_changes({changed(kept)});
    ASSERT_TRUE(earlier.has_value()) << earlier.error().message;
  }
  rule(kept, "10/s", 2);
  rule(kept, "10/s", 2);
  ASSERT_EQ(xt_word_gen(bucket_of(kept_src).word[0]), rule_at(kept).prev_gen);

  // The walk alone.
  {
    auto walked = state_->catch_up_changes({changed(a), changed(b)});
    ASSERT_TRUE(walked.has_value()) << walked.error().message;
    EXPECT_EQ(xt_word_gen(bucket_of(a_src).word[0]), rule_at(a).gen) << "brought to its live version's generation";
    EXPECT_EQ(xt_word_gen(bucket_of(b_src).word[0]), rule_at(b).gen) << "and the other's, past slot 63";
    EXPECT_EQ(xt_word_gen(bucket_of(kept_src).word[0]), rule_at(kept).prev_gen) << "the rule left as it is, left";
  }
  ASSERT_NO_FATAL_FAILURE(set_gen(a_src, 0, rule_at(a).prev_gen));
  ASSERT_NO_FATAL_FAILURE(set_gen(b_src, 0, rule_at(b).prev_gen));

  // The apply, with the walk's rules emptied first: it writes them again,
  // the versions it replaces, if it walks for them.
  const int walk_rules = bpf_map__fd(skel_->maps.xt_catch_up_in);
  for (uint32_t id : {65u, 66u}) {
    const xt_catch_up_rule none{};
    ASSERT_EQ(bpf_map_update_elem(walk_rules, &id, &none, BPF_ANY), 0);
  }
  const uint8_t a_was = rule_at(a).gen, b_was = rule_at(b).gen;
  std::string text;
  auto entry = [&](const std::string& cidr, const char* rate) {
    text += "[[rule]]\ncidr = \"" + cidr + "\"\nrate = \"" + rate + "\"\nburst = 2\n\n";
  };
  entry(kept, "10/s");
  for (const auto& f : fillers) entry(f, "10/s");
  entry(a, "20/s");
  entry(b, "20/s");
  const auto diff = apply_file(text);
  ASSERT_TRUE(diff.has_value());
  ASSERT_EQ(diff->change.size(), 2u);
  for (const auto& [id, gen] : {std::pair{65u, a_was}, std::pair{66u, b_was}}) {
    xt_catch_up_rule walked{};
    ASSERT_EQ(bpf_map_lookup_elem(walk_rules, &id, &walked), 0);
    EXPECT_EQ(walked.rule.id, id) << "the apply walked for rule " << id;
    EXPECT_EQ(walked.rule.gen, gen) << "for its version before the apply";
  }
  for (const auto& [c, src] : Pairs{{a, a_src}, {b, b_src}})
    EXPECT_EQ(xt_word_gen(bucket_of(src).word[0]), rule_at(c).prev_gen)
        << src << ": brought to the version replaced, one behind the new, not two";
  EXPECT_EQ(xt_word_gen(bucket_of(kept_src).word[0]), rule_at(kept).prev_gen) << "the rule left as it is, left";
  EXPECT_EQ(passed(Packet().ipv4(a_src).build(), 3, 0), 1) << "its burst less what it spent, not a fresh one";
}

// An apply that fails after changing rules puts them back with one walk for
// all of them before their swaps, as it made its own, and the rules it took
// out into slots made ready in one walk: here the last rule of the file
// sends its drops out an interface that is not there (which the command
// refuses before any change; apply_rules itself finds it at that rule's
// turn), after a port rule in the way of a new one went first.
TEST_F(RuleChanges, AFailedApplyPutsItsChangesBackWithOneWalk) {
  load();
  const std::string a = "198.18.0.0/16", b = "198.19.64.0/18", c = "198.19.128.0/17";
  const std::string a_src = "198.18.0.1", b_src = "198.19.64.1";
  std::vector<std::string> fillers;  // slots 0 to 63
  for (int i = 0; i < 64; i++) fillers.push_back("198.19." + std::to_string(i) + ".0/24");
  for (const auto& f : fillers) rule(f, "10/s", 2);
  for (const auto& r : {a, b, c}) rule(r, "10/s", 2);
  const Match web{.proto = 6, .ports = std::pair<uint16_t, uint16_t>{80, 90}};
  rule("198.18.0.0/15", "10/s", 2, [&](RuleSpec& s) { s.match = web; });  // slot 67
  auto rule_at = [&](const std::string& cidr) { return state_->rule_of(*parse_cidr(cidr), Match{}).value(); };
  ASSERT_EQ(rule_at(a).id, 64u);
  ASSERT_EQ(rule_at(b).id, 65u);
  for (const auto& src : {a_src, b_src}) EXPECT_EQ(passed(Packet().ipv4(src).build(), 1, 0), 1) << src;
  for (const auto& r : {a, b}) rule(r, "10/s", 2);  // each bucket one version behind
  const uint8_t a_was = rule_at(a).gen, b_was = rule_at(b).gen;

  std::string text;
  for (const auto& f : fillers) text += "[[rule]]\ncidr = \"" + f + "\"\nrate = \"10/s\"\nburst = 2\n\n";
  for (const auto& r : {a, b}) text += "[[rule]]\ncidr = \"" + r + "\"\nrate = \"20/s\"\nburst = 2\n\n";
  // tcp/85-95 crosses tcp/80-90: that rule goes before it comes in.
  text += "[[rule]]\ncidr = \"198.18.0.0/15\"\nproto = \"tcp\"\nport = \"85-95\"\nrate = \"10/s\"\n\n";
  text += "[[rule]]\ncidr = \"" + c + "\"\nrate = \"20/s\"\nburst = 2\nover = \"redirect:xtnosuch0\"\n";
  auto file = parse_rules_file(text, "test.toml");
  ASSERT_TRUE(file.has_value()) << file.error().message;
  ASSERT_TRUE(compile_rules(*file, test::kHz).has_value());
  auto diff = diff_rules(*state_, *file);
  ASSERT_TRUE(diff.has_value()) << diff.error().message;
  ASSERT_EQ(diff->change.size(), 3u);
  ASSERT_EQ(diff->add.size(), 1u);
  ASSERT_EQ(diff->remove.size(), 1u);
  auto applied = apply_rules(*state_, *file, *diff);
  ASSERT_FALSE(applied.has_value()) << "no interface xtnosuch0";
  EXPECT_NE(applied.error().message.find("restored"), std::string::npos) << applied.error().message;
  const Match new_web{.proto = 6, .ports = std::pair<uint16_t, uint16_t>{85, 95}};
  EXPECT_FALSE(state_->rule_of(*parse_cidr("198.18.0.0/15"), new_web).has_value()) << "the new rule taken out";
  const auto back = state_->rule_of(*parse_cidr("198.18.0.0/15"), web);
  ASSERT_TRUE(back.has_value()) << "the rule in its way put back";
  // Slot 67 was the new rule's when the undo made a slot ready for it (one
  // walk, before the new rule's deletion); a put of its own would have
  // made ready the lowest free slot after that deletion, 67.
  EXPECT_EQ(back->id, 68u) << "the slot the undo made ready";

  const int walk_rules = bpf_map__fd(skel_->maps.xt_catch_up_in);
  for (const auto& [r, was] : {std::pair{a, a_was}, std::pair{b, b_was}}) {
    const xt_rule now = rule_at(r);
    EXPECT_EQ(now.limit[0].cost, rule_at(c).limit[0].cost) << r << ": back at 10/s";
    EXPECT_EQ(now.prev_gen, static_cast<uint8_t>(was % XT_GEN_MAX + 1)) << r << ": replaced twice, there and back";
    xt_catch_up_rule walked{};
    ASSERT_EQ(bpf_map_lookup_elem(walk_rules, &now.id, &walked), 0);
    EXPECT_EQ(walked.rule.gen, now.prev_gen) << r << ": the undo's one walk, for the apply's version";
  }
  for (const auto& [r, src] : std::vector<std::pair<std::string, std::string>>{{a, a_src}, {b, b_src}})
    EXPECT_EQ(xt_word_gen(bucket_of(src).word[0]), rule_at(r).prev_gen) << src << ": one behind, not two";
}

// A restore that changes live rules (the snapshot's versions of them)
// brings their buckets up in one walk before the swaps, as an apply does,
// and leaves the rules it does not change alone: a restore of 4096 changed
// rules walked the table 4096 times.
TEST_F(RuleChanges, TheRulesARestoreChangesAreBroughtUpTogether) {
  load();
  const std::string kept = "198.19.128.0/17", a = "198.18.0.0/16", b = "198.19.64.0/18";
  const std::string kept_src = "198.19.128.1", a_src = "198.18.0.1", b_src = "198.19.64.1";
  rule(kept, "10/s", 2);
  for (int i = 0; i < 64; i++) rule("198.19." + std::to_string(i) + ".0/24", "10/s", 2);  // slots 1 to 64
  rule(a, "20/s", 2);
  rule(b, "20/s", 2);
  auto rule_at = [&](const std::string& cidr) { return state_->rule_of(*parse_cidr(cidr), Match{}).value(); };
  ASSERT_EQ(rule_at(a).id, 65u);
  ASSERT_EQ(rule_at(b).id, 66u);
  char dir[] = "/tmp/xt-restore-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/state.snap";
  auto saved = save_snapshot(*state_, path);  // no bucket yet: the restore brings none back
  ASSERT_TRUE(saved.has_value()) << saved.error().message;

  // The live rules since: a and b at 10/s, each bucket one version behind.
  rule(a, "10/s", 2);
  rule(b, "10/s", 2);
  for (const auto& src : {kept_src, a_src, b_src})
    EXPECT_EQ(passed(Packet().ipv4(src).build(), 1, 0), 1) << src;
  for (const auto& c : {kept, a, b}) rule(c, "10/s", 2);
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  for (const auto& [c, src] : Pairs{{kept, kept_src}, {a, a_src}, {b, b_src}})
    ASSERT_EQ(xt_word_gen(bucket_of(src).word[0]), rule_at(c).prev_gen) << src;
  const int walk_rules = bpf_map__fd(skel_->maps.xt_catch_up_in);
  for (uint32_t id : {0u, 65u, 66u}) {
    const xt_catch_up_rule none{};
    ASSERT_EQ(bpf_map_update_elem(walk_rules, &id, &none, BPF_ANY), 0);
  }
  const uint8_t a_was = rule_at(a).gen, b_was = rule_at(b).gen, kept_was = rule_at(kept).gen;

  auto file = read_snapshot(path);
  ASSERT_TRUE(file.has_value()) << file.error().message;
  auto restored = restore_snapshot(*state_, *file, path, 1);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  for (const auto& [id, gen] : {std::pair{65u, a_was}, std::pair{66u, b_was}}) {
    xt_catch_up_rule walked{};
    ASSERT_EQ(bpf_map_lookup_elem(walk_rules, &id, &walked), 0);
    EXPECT_EQ(walked.rule.id, id) << "the restore walked for rule " << id;
    EXPECT_EQ(walked.rule.gen, gen) << "for its version before the restore";
  }
  xt_catch_up_rule left{};
  const uint32_t zero = 0;
  ASSERT_EQ(bpf_map_lookup_elem(walk_rules, &zero, &left), 0);
  EXPECT_EQ(left.rule.gen, 0) << "nothing for the rule the restore does not change";
  EXPECT_EQ(rule_at(kept).gen, kept_was) << "and that rule as it was";
  RuleSpec at20;
  at20.cidr = *parse_cidr(a);
  at20.rates = {*parse_rate("20/s")};
  at20.bursts = {2};
  const xt_limit want = compile_rule(at20, test::kHz).value().limit[0];
  for (const auto& [c, src] : Pairs{{a, a_src}, {b, b_src}}) {
    const xt_limit got = rule_at(c).limit[0];
    EXPECT_TRUE(got.fill == want.fill && got.cost == want.cost && got.cap == want.cap) << c << ": the snapshot's 20/s";
    EXPECT_EQ(xt_word_gen(bucket_of(src).word[0]), rule_at(c).prev_gen)
        << src << ": brought to the version replaced, one behind the new, not two";
  }
  EXPECT_EQ(xt_word_gen(bucket_of(kept_src).word[0]), rule_at(kept).prev_gen) << "the rule left as it is, left";
}

// A rule whose buckets catch_up_changes brought up is replaced without a
// walk of its own: what an apply's one walk is for. (Here a word set one
// version back after that walk is still there once the rule is replaced;
// nothing but a test writes one there.) But a change that makes a word the
// walk left bare a window's walks all the same.
TEST_F(RuleChanges, ARuleBroughtUpBeforeItsChangeMakesNoWalkOfItsOwn) {
  load();
  rule("198.18.0.0/15", "10/s", 2);
  EXPECT_EQ(passed(Packet().ipv4("198.18.0.1").build(), 1, 0), 1);
  rule("198.18.0.0/15", "10/s", 2);
  auto version = [&](const std::function<void(RuleSpec&)>& tweak) {
    RuleSpec spec;
    spec.cidr = *parse_cidr("198.18.0.0/15");
    spec.rates = {*parse_rate("20/s")};
    spec.bursts = {2};
    if (tweak) tweak(spec);
    return std::pair{spec, *compile_rule(spec, test::kHz)};
  };
  auto walk_then_put = [&](const std::pair<RuleSpec, xt_rule>& walked_for, const std::pair<RuleSpec, xt_rule>& put) {
    const xt_rule live = state_->rules().value().at(0).rule;
    ASSERT_EQ(xt_word_gen(bucket_of("198.18.0.1").word[0]), live.prev_gen);
    auto caught = state_->catch_up_changes({walked_for});
    ASSERT_TRUE(caught.has_value()) << caught.error().message;
    ASSERT_EQ(xt_word_gen(bucket_of("198.18.0.1").word[0]), live.gen) << "brought to the live version's generation";
    ASSERT_NO_FATAL_FAILURE(set_gen("198.18.0.1", 0, live.prev_gen));
    auto ok = state_->put_rule(put.first, put.second);
    ASSERT_TRUE(ok.has_value()) << ok.error().message;
  };
  auto word_gen = [&] { return xt_word_gen(bucket_of("198.18.0.1").word[0]); };
  auto live_gen = [&] { return state_->rules().value().at(0).rule.prev_gen; };  // the version replaced
  const auto plain = version(nullptr), windows = version(two_windows);
  ASSERT_NO_FATAL_FAILURE(walk_then_put(plain, plain));
  EXPECT_NE(word_gen(), live_gen()) << "no walk brought it up";

  ASSERT_NO_FATAL_FAILURE(set_gen("198.18.0.1", 0, live_gen()));  // one behind again
  ASSERT_NO_FATAL_FAILURE(walk_then_put(plain, windows));
  EXPECT_EQ(word_gen(), live_gen()) << "a second window where the walk left the word bare: walked again";

  rule("198.18.0.0/15", "20/s", 2);  // one window again, its second word bare
  ASSERT_NO_FATAL_FAILURE(walk_then_put(windows, windows));
  EXPECT_NE(word_gen(), live_gen()) << "the walk for the second window brought that word up: no walk again";
}

}  // namespace
}  // namespace xt
