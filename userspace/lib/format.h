// SPDX-License-Identifier: MIT
// Text for people and JSON for scripts: printf-style formatting into a
// string, and JSON that is always valid.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace xt {

// printf into a string (at most 1 KiB: for table rows and messages).
std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));

// A JSON document as text. A string that is not valid UTF-8 (a file name can
// hold any bytes) is written with U+FFFD in place of its bad bytes: the
// output is always valid JSON, and never aborts the program.
std::string json_text(const nlohmann::json& j, int indent = -1);

}  // namespace xt
