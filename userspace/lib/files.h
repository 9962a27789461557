// SPDX-License-Identifier: MIT
// Reading a whole file, for every part of the controller that does: rules
// and config files, snapshots, /proc, the fleet's health file.
#pragma once

#include <optional>
#include <string>

namespace xt {

// A file's bytes; nothing if it cannot be read (errno says why).
std::optional<std::string> read_file(const std::string& path);
// The same of a file open for reading, from where it is to its end.
std::optional<std::string> read_fd(int fd);

}  // namespace xt
