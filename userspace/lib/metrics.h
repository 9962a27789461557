// SPDX-License-Identifier: MIT
// Prometheus text exposition of the pinned state, for `serve`'s /metrics.
// Names follow Prometheus' conventions: units in the name, counters end in
// _total, one metric per meaning with labels for the rest.
#pragma once

#include <string>

#include "error.h"

namespace xt {

// Everything a scrape shows, read fresh from the pins in pin_dir.
Result<std::string> render_metrics(const std::string& pin_dir);

}  // namespace xt
