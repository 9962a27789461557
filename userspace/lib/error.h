// SPDX-License-Identifier: MIT
// Errors above the libbpf boundary: a message that says what failed and why,
// and the exit code it maps to (1 the system refused, 2 bad input; README, "Usage").
#pragma once

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <expected>
#include <string>
#include <string_view>

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

// The capabilities xthrottle needs: CAP_NET_ADMIN (12), CAP_SYS_ADMIN (21)
// and CAP_BPF (39), as bits of a capability set.
inline constexpr uint64_t kNeededCaps = uint64_t{1} << 12 | uint64_t{1} << 21 | uint64_t{1} << 39;

// The effective capability set in the text of /proc/PID/status (its CapEff
// line, in hex); 0 if there is none.
inline uint64_t effective_caps(std::string_view status) {
  constexpr std::string_view key = "CapEff:";
  const size_t at = status.find(key);
  if (at == std::string_view::npos) return 0;
  const size_t start = status.find_first_not_of(" \t", at + key.size());
  uint64_t caps = 0;
  if (start != std::string_view::npos) std::from_chars(status.data() + start, status.data() + status.size(), caps, 16);
  return caps;
}

// Whether this process holds every capability in kNeededCaps (error.cpp).
bool holds_needed_caps();

// What a permission error (EPERM, EACCES) adds to its message: what
// xthrottle needs, or, if it holds that already, what else refuses. The
// kernel's verifier answers EACCES for a program it cannot prove safe.
inline std::string permission_hint(bool holds_caps) {
  if (!holds_caps) return " (xthrottle needs root: CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)";
  return " (xthrottle holds CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN, so something else refused: the kernel's "
         "verifier, for a program it cannot prove safe (-v prints its log), or a security policy such as lockdown "
         "or an LSM)";
}

// `what` failed because of errno value `err` (positive or negative). A
// permission error says what xthrottle needs, or what else refused.
inline std::unexpected<Error> system_error(const std::string& what, int err) {
  if (err < 0) err = -err;
  std::string message = what + ": " + std::strerror(err);
  if (err == EPERM || err == EACCES) message += permission_hint(holds_needed_caps());
  return std::unexpected(Error{ErrorKind::System, std::move(message)});
}

inline std::unexpected<Error> system_error(std::string message) {
  return std::unexpected(Error{ErrorKind::System, std::move(message)});
}

}  // namespace xt
