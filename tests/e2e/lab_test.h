// SPDX-License-Identifier: MIT
// The fixture of the e2e suites: a fresh lab per test (root only; in CI a
// missing privilege fails), with helpers for the CLI.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "lab.h"
#include "require.h"

namespace xt::test {

// What the file holds, byte for byte ("" if it cannot be read).
inline std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A directory of the test's own, /tmp/xt-WHAT-PID-TEST, made empty and
// removed with it, however the test ends.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& what)
      : path_("/tmp/xt-" + what + "-" + std::to_string(getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class LabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XT_REQUIRE_ROOT();
    ASSERT_NO_THROW(lab_.emplace());
  }
  // xthrottle ARGS..., which must succeed.
  void ok(const std::vector<std::string>& args) {
    Outcome r = lab_->xthrottle(args);
    ASSERT_EQ(r.rc, 0) << "xthrottle " << args.at(0) << ": " << r.err;
  }
  nlohmann::json stats() { return lab_->xthrottle_json({"stats", "--json"}); }
  // Runs argv in the lab's receiving namespace as nobody, with no capabilities.
  Outcome as_nobody(const std::vector<std::string>& argv) const {
    std::vector<std::string> full = {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                     "--inh-caps=-all"};
    full.insert(full.end(), argv.begin(), argv.end());
    return lab_->in_dut(full);
  }

  std::optional<Lab> lab_;
};

}  // namespace xt::test
