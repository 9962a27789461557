// SPDX-License-Identifier: MIT
// The embedded BPF object (bpftool skeleton) and libbpf/libxdp logging.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "error.h"
#include "xthrottle.skel.h"

namespace xt {

struct SkeletonDeleter {
  void operator()(xthrottle* skel) const { xthrottle__destroy(skel); }
};
using Skeleton = std::unique_ptr<xthrottle, SkeletonDeleter>;

struct ObjectOptions {
  // Pin maps by name under this directory, reusing pins that exist. Without
  // it the maps are private to the object (tests).
  std::optional<std::string> pin_dir;
  // Read the clock from the object's xt_test_now_ns (BPF_PROG_TEST_RUN tests).
  bool test_clock = false;
};

// Opens (does not load) the embedded object.
Result<Skeleton> open_object(const ObjectOptions& options);

// libbpf's and libxdp's own messages go to stderr only when verbose.
void set_library_logging(bool verbose);

}  // namespace xt
