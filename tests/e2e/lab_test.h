// SPDX-License-Identifier: MIT
// The fixture of the e2e suites: a fresh lab per test (root only; in CI a
// missing privilege fails), with helpers for the CLI.
#pragma once

#include <gtest/gtest.h>

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
