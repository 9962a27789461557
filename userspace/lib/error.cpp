// SPDX-License-Identifier: MIT
#include "error.h"

#include "files.h"

namespace xt {

bool holds_needed_caps() {
  const auto text = read_file("/proc/self/status");
  return text && (effective_caps(*text) & kNeededCaps) == kNeededCaps;
}

}  // namespace xt
