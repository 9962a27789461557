// SPDX-License-Identifier: MIT
// The state's pins, on a BPF file system of the test's own (mounted under
// /run, removed on every exit path).
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <string>

#include <bpf/bpf.h>

#include "fd.h"
#include "policy.h"
#include "rules.h"
#include "state.h"

namespace xt {
namespace {

// A bpffs of its own, mounted for the test and taken away after it.
class OwnBpffs {
 public:
  OwnBpffs() : path_("/run/xt-bpf-pins-" + std::to_string(getpid()) + "-" + std::to_string(next_++)) {
    std::filesystem::create_directories(path_);
    mounted_ = mount("bpf", path_.c_str(), "bpf", 0, "mode=0700") == 0;
  }
  ~OwnBpffs() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  OwnBpffs(const OwnBpffs&) = delete;
  OwnBpffs& operator=(const OwnBpffs&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& path() const { return path_; }

 private:
  static inline std::atomic<int> next_{0};
  std::string path_;
  bool mounted_ = false;
};

// A state made on a bpffs of the test's own.
class Pins : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs_.mounted()) << "cannot mount a bpffs at " << fs_.path() << ": " << std::strerror(errno);
    auto made = State::open_or_create(dir_, State::Create{.table = {}, .hz = 1000});
    ASSERT_TRUE(made.has_value()) << made.error().message;
  }
  OwnBpffs fs_;
  const std::string dir_ = fs_.path() + "/xthrottle";
};

// A command that had opened the state (status, a scrape, top) loaded its
// clock program with libbpf pinning by name under the pin directory: where
// the state had been removed meanwhile (an upgrade's `rm -r`, an attach
// that failed and took its state out), libbpf made every missing map anew
// and pinned it, and the next command found a state of ABI 0 and refused
// it. Now the pins must be there, or the load fails saying so.
TEST_F(Pins, AStateRemovedUnderAnOpenOneIsNotMadeAgain) {
  auto open = State::open(dir_);
  ASSERT_TRUE(open.has_value()) << open.error().message;
  ASSERT_TRUE(State::unpin(dir_).has_value());
  ASSERT_FALSE(State::exists(dir_));

  auto now = open->now();
  ASSERT_FALSE(now.has_value()) << "the clock loaded on pins made anew";
  EXPECT_NE(now.error().message.find("is gone"), std::string::npos) << now.error().message;
  EXPECT_FALSE(State::exists(dir_));
  std::error_code ec;
  EXPECT_TRUE(!std::filesystem::exists(dir_, ec) || std::filesystem::is_empty(dir_, ec)) << "pins put back in " << dir_;
}

// A creation or a removal cut short (a kill between two pins) leaves pins
// without the rule table's, which says a state exists: no state, so every
// command tried to make one, and failed on the first pin left ("cannot pin
// ...: File exists"). Nothing took them away.
TEST_F(Pins, PinsLeftByARemovalCutShortDoNotBlockTheNextState) {
  ASSERT_EQ(unlink((dir_ + "/" XT_MAP_RULES).c_str()), 0) << "unpin's first step, then the kill";
  ASSERT_FALSE(State::exists(dir_));
  auto again = State::open_or_create(dir_, State::Create{.table = {}, .hz = 1000});
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_TRUE(State::exists(dir_));
  auto rules = again->rules();
  ASSERT_TRUE(rules.has_value()) << rules.error().message;
  EXPECT_TRUE(rules->empty());
}

// A pin that is not the map this build makes for the state (another entry
// count, as a build that sizes a table otherwise would find): libbpf's own
// reuse of pins refused it, and opening each pin as it is must too.
TEST_F(Pins, APinOfAnotherShapeIsRefused) {
  const std::string path = dir_ + "/xt_known_tags";
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  {
    Fd fd(bpf_obj_get(path.c_str()));
    ASSERT_TRUE(fd) << std::strerror(errno);
    ASSERT_EQ(bpf_obj_get_info_by_fd(fd.get(), &info, &len), 0);
  }
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = info.map_flags);
  Fd other(bpf_map_create(static_cast<bpf_map_type>(info.type), "xt_known_tags", info.key_size, info.value_size,
                          info.max_entries * 2, &opts));
  ASSERT_TRUE(other) << std::strerror(errno);
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(bpf_obj_pin(other.get(), path.c_str()), 0) << std::strerror(errno);
  auto open = State::open(dir_);
  ASSERT_TRUE(open.has_value()) << open.error().message;
  auto now = open->now();
  ASSERT_FALSE(now.has_value()) << "the clock loaded on a table of another size";
  EXPECT_NE(now.error().message.find("xt_known_tags is not the map"), std::string::npos) << now.error().message;
}

// How many of this process's open fds are programs named `name`: the
// control programs a State loaded (other processes' do not count, so tests
// running beside this one do not either).
int own_programs_named(const std::string& name) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    if (std::filesystem::read_symlink(entry.path()).string() != "anon_inode:bpf-prog") continue;
    const int fd = std::stoi(entry.path().filename().string());
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && name == info.name) n++;
  }
  return n;
}

// A rule's replacement loads the walks it runs and not the ageing program,
// whose verification took 0.1 s of every `rule add` (0.19-0.30 s at 4M
// sources, over issue 11's 200 ms); serve's ageing loads that alone.
TEST_F(Pins, ARuleChangeLoadsTheWalksAndTheAgeingLoadsItsOwn) {
  auto state = State::open(dir_);
  ASSERT_TRUE(state.has_value()) << state.error().message;
  RuleSpec spec;
  spec.cidr = *parse_cidr("198.18.0.0/15");
  for (const char* rate : {"100/s", "200/s"}) {  // the second replaces the first
    spec.rates = {*parse_rate(rate)};
    auto compiled = compile_rule(spec, 1000);
    ASSERT_TRUE(compiled.has_value()) << compiled.error().message;
    auto put = state->put_rule(spec, *compiled);
    ASSERT_TRUE(put.has_value()) << put.error().message;
  }
  EXPECT_EQ(own_programs_named("xt_catch_up"), 1) << "the replacement's walk";
  EXPECT_EQ(own_programs_named("xt_age"), 0);
  auto aged = state->age_stamps();
  ASSERT_TRUE(aged.has_value()) << aged.error().message;
  EXPECT_EQ(aged->stamps, 0u);
  EXPECT_EQ(own_programs_named("xt_age"), 1);
  EXPECT_EQ(own_programs_named("xt_catch_up"), 1) << "the walks not loaded again";
}

}  // namespace
}  // namespace xt
