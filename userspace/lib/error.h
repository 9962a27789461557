// SPDX-License-Identifier: MIT
// Errors above the libbpf boundary: a message that says what failed and why,
// and the exit code it maps to (1 the system refused, 2 bad input; README, "Usage").
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>

namespace xt {

enum class ErrorKind {
  System = 1,  // the kernel or the machine said no
  Usage = 2,   // the operator's input is wrong
};

struct Error {
  ErrorKind kind;
  std::string message;
  int exit_code() const { return static_cast<int>(kind); }
};

template <class T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> usage_error(std::string message) {
  return std::unexpected(Error{ErrorKind::Usage, std::move(message)});
}

// `what` failed because of errno value `err` (positive or negative). A
// permission error says what xthrottle needs.
inline std::unexpected<Error> system_error(const std::string& what, int err) {
  if (err < 0) err = -err;
  std::string message = what + ": " + std::strerror(err);
  if (err == EPERM || err == EACCES)
    message += " (xthrottle needs root: CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)";
  return std::unexpected(Error{ErrorKind::System, std::move(message)});
}

inline std::unexpected<Error> system_error(std::string message) {
  return std::unexpected(Error{ErrorKind::System, std::move(message)});
}

}  // namespace xt
