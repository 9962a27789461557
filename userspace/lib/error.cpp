// SPDX-License-Identifier: MIT
#include "error.h"

#include <fstream>
#include <sstream>

namespace xt {

bool holds_needed_caps() {
  std::ifstream in("/proc/self/status");
  std::stringstream text;
  text << in.rdbuf();
  return (effective_caps(text.str()) & kNeededCaps) == kNeededCaps;
}

}  // namespace xt
