// SPDX-License-Identifier: MIT
// The fixture of the BPF_PROG_TEST_RUN suites: the real XDP object with
// private, unpinned maps per test and a clock the test sets, driven through
// the same state layer as the CLI.
#pragma once

#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "object.h"
#include "packet.h"
#include "policy.h"
#include "rules.h"
#include "require.h"
#include "slots.h"
#include "keys.h"
#include "state.h"

namespace xt::test {

// The tests compile their rules for 1000 ticks a second: a tick is a ms.
constexpr uint32_t kHz = 1000;
constexpr uint64_t kMs = 1;
constexpr uint64_t kSec = 1000;

class Program : public ::testing::Test {
 protected:
  // Each test in a network namespace of its own: BPF_PROG_TEST_RUN hands
  // the program that namespace's loopback device (whose MTU the program
  // reads for super-packets), and nothing a test does reaches the host's.
  void SetUp() override {
    XT_REQUIRE_ROOT();
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "cannot make a network namespace: " << std::strerror(errno);
  }
  // The MTU of the namespace's loopback device, which BPF_PROG_TEST_RUN's
  // frames arrive on.
  void set_mtu(int mtu) {
    Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq req{};
    std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
    req.ifr_mtu = mtu;
    ASSERT_EQ(ioctl(sock.get(), SIOCSIFMTU, &req), 0) << std::strerror(errno);
  }

  // Runs the calling thread on CPU `cpu` alone: whether it could.
  static bool pin_to_cpu(int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  // Runs this test on CPU 0 alone: what is per CPU (the hot cache, the
  // proof budget) is then one CPU's.
  static void on_one_cpu() { ASSERT_TRUE(pin_to_cpu(0)); }

  // Loads the object with a bucket table of max_sources.
  void load(uint32_t max_sources = XT_MIN_MAX_SOURCES, bool frags = false, xt_link link = XT_LINK_ETHER) {
    auto skel = open_object({.pin_dir = std::nullopt,
                             .test_clock = true,
                             .max_sources = max_sources,
                             .frags = frags,
                             .link = link});
    ASSERT_TRUE(skel.has_value()) << skel.error().message;
    skel_ = std::move(*skel);
    ASSERT_EQ(xthrottle__load(skel_.get()), 0) << "the verifier refused the program (run with -v for its log)";
    auto state = State::from_object(skel_->obj);
    ASSERT_TRUE(state.has_value()) << state.error().message;
    state_.emplace(std::move(*state));
    ASSERT_TRUE(state_->init_config(kHz, max_sources).has_value());
  }

  // Adds or replaces a rule from CLI-style words.
  void rule(const std::string& cidr, std::optional<std::string> rate, std::optional<uint64_t> burst = std::nullopt,
            std::function<void(RuleSpec&)> tweak = nullptr) {
    RuleSpec spec;
    auto c = parse_cidr(cidr);
    ASSERT_TRUE(c.has_value()) << c.error().message;
    spec.cidr = *c;
    if (rate) spec.rates = {*parse_rate(*rate)};
    if (burst) spec.bursts = {*burst};
    if (tweak) tweak(spec);
    auto compiled = compile_rule(spec, kHz);
    ASSERT_TRUE(compiled.has_value()) << compiled.error().message;
    auto put = state_->put_rule(spec, *compiled);
    ASSERT_TRUE(put.has_value()) << put.error().message;
  }

  // Writes the data path's configuration as given (an epoch moved on, a
  // flag cleared: what no controller call would do).
  void write_config(const xt_config& cfg) {
    const uint32_t zero = 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.xt_config), &zero, &cfg, BPF_ANY), 0);
  }

  // Runs one frame at tick `now`; returns the XDP action.
  int run(const std::vector<uint8_t>& frame, uint64_t now = 0) {
    skel_->bss->xt_test_now = now;
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
                .repeat = 1);
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.xthrottle), &opts);
    EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN failed";
    return static_cast<int>(opts.retval);
  }

  // Runs one frame at tick `now`; returns the XDP action, and the frame as
  // the program left it in *out (what XDP_TX sends).
  int run(const std::vector<uint8_t>& frame, uint64_t now, std::vector<uint8_t>* out) {
    skel_->bss->xt_test_now = now;
    out->assign(frame.size() + 256, 0);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out->data(),
                .data_size_in = static_cast<uint32_t>(frame.size()),
                .data_size_out = static_cast<uint32_t>(out->size()), .repeat = 1);
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.xthrottle), &opts);
    EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN failed";
    out->resize(opts.data_size_out);
    return static_cast<int>(opts.retval);
  }

  // The events in serve's ring so far.
  std::vector<xt_event> events() {
    std::vector<xt_event> out;
    auto sink = [](void* ctx, void* data, size_t size) {
      if (size >= sizeof(xt_event)) static_cast<std::vector<xt_event>*>(ctx)->push_back(*static_cast<xt_event*>(data));
      return 0;
    };
    std::unique_ptr<ring_buffer, decltype(&ring_buffer__free)> rb(
        ring_buffer__new(bpf_map__fd(skel_->maps.xt_events), sink, &out, nullptr), ring_buffer__free);
    EXPECT_TRUE(rb) << "cannot read the events ring";
    if (rb) ring_buffer__consume(rb.get());
    return out;
  }

  // Runs n copies at `now`; returns how many passed.
  int passed(const std::vector<uint8_t>& frame, int n, uint64_t now = 0) {
    int pass = 0;
    for (int i = 0; i < n; i++) pass += run(frame, now) == XDP_PASS;
    return pass;
  }

  uint64_t counter(xt_reason reason) { return state_->counters().value()[reason].packets; }
  uint64_t counter(xt_counter which) { return state_->counters().value()[which].packets; }

  // The counters of the rule named so: "198.18.0.0/15", "0.0.0.0/0 udp/53".
  xt_rule_stats rule_stats(const std::string& name) {
    const auto all = state_->rule_counters().value();
    for (const auto& r : all)
      if (rule_name(r.cidr, r.spec.match) == name) return r.stats;
    ADD_FAILURE() << "no rule " << name;
    return {};
  }

  size_t buckets() {
    size_t n = 0;
    EXPECT_TRUE(state_->for_each_bucket([&](const BucketEntry&) { n++; }).has_value());
    return n;
  }

  // Puts buckets straight into the table where the data path looks for
  // them, as of the test clock (tests only: nothing else may write the
  // table meanwhile). A bucket whose set is full is left out.
  void plant(const std::vector<std::pair<xt_bucket_key, xt_bucket>>& buckets) {
    const xt_config cfg = state_->config().value();
    const int sets_fd = bpf_map__fd(skel_->maps.xt_buckets), tags_fd = bpf_map__fd(skel_->maps.xt_bucket_tags),
              marks_fd = bpf_map__fd(skel_->maps.xt_bucket_marks);
    const uint16_t unit = xt_used_now(&cfg, skel_->bss->xt_test_now);
    struct Set {
      xt_bucket_set slots;
      xt_set_tags tags;
      xt_set_marks marks;
    };
    std::map<uint32_t, Set> touched;
    auto at = [&](uint32_t idx) -> Set& {
      auto it = touched.find(idx);
      if (it == touched.end()) {
        Set v{};
        EXPECT_EQ(bpf_map_lookup_elem(sets_fd, &idx, &v.slots), 0);
        EXPECT_EQ(bpf_map_lookup_elem(tags_fd, &idx, &v.tags), 0);
        EXPECT_EQ(bpf_map_lookup_elem(marks_fd, &idx, &v.marks), 0);
        it = touched.emplace(idx, v).first;
      }
      return it->second;
    };
    for (const auto& [key, bucket] : buckets) {
      const uint64_t h = xt_hash_bucket(cfg.hash_key, &key);
      const uint32_t idx = xt_home_set(h, cfg.bucket_bits);
      // Where xt_newcomer_place puts it; a source whose way there holds a
      // source in use (no free way in either set) is left out: the data
      // path would evict, which the claim tells by the same tag word.
      auto& home = at(idx);
      auto& next = at(xt_place_set(idx, XT_PLACE(1, 0), cfg.bucket_bits));
      const uint16_t ahead = xt_age_ahead(&cfg);
      xt_way_tag judged{};
      const int r = xt_newcomer_place(&home.tags, &next.tags, unit, cfg.used_idle, ahead, &judged.word);
      if (judged.half[XT_TAG_FP] && xt_stamp_recent(judged.half[XT_TAG_USED], unit, cfg.used_idle, ahead)) continue;
      const int w = XT_PLACE_WAY(r);
      auto* place = XT_PLACE_NEXT(r) ? &next : &home;
      if (XT_PLACE_NEXT(r)) home.marks.spilled = 1;
      place->tags.way[w].half[XT_TAG_FP] = xt_fp_of(h);
      place->tags.way[w].half[XT_TAG_USED] = unit;
      place->marks.way[w] = xt_mark_of(h);
      place->slots.way[w] = xt_slot{key, bucket};
    }
    for (auto& [idx, v] : touched) {
      ASSERT_EQ(bpf_map_update_elem(sets_fd, &idx, &v.slots, BPF_ANY), 0);
      ASSERT_EQ(bpf_map_update_elem(tags_fd, &idx, &v.tags, BPF_ANY), 0);
      ASSERT_EQ(bpf_map_update_elem(marks_fd, &idx, &v.marks, BPF_ANY), 0);
    }
  }

  Skeleton skel_;
  std::optional<State> state_;
};

inline std::string nth_source(int i) { return "198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }

}  // namespace xt::test
