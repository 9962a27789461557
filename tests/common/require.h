// SPDX-License-Identifier: MIT
// Tests that need root (BPF, namespaces) skip on a developer's unprivileged
// run, but in CI (CI=true) a missing capability is a failure, never a skip.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace xt::test {

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

}  // namespace xt::test

#define XT_REQUIRE_ROOT()                                                              \
  do {                                                                                 \
    if (geteuid() != 0) {                                                              \
      if (::xt::test::in_ci()) FAIL() << "this test needs root, and CI may not skip"; \
      GTEST_SKIP() << "needs root (BPF programs and network namespaces)";              \
    }                                                                                  \
  } while (0)
