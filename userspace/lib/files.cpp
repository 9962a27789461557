// SPDX-License-Identifier: MIT
#include "files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "fd.h"

namespace xt {

// With read(2), not a stream: libstdc++'s filebuf throws from inside an
// istreambuf_iterator when a read fails (a directory, EIO), which no caller
// catches.
std::optional<std::string> read_file(const std::string& path) {
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  return read_fd(fd.get());
}

std::optional<std::string> read_fd(int fd) {
  // One buffer, read in one go where the size is known (a byte spare to see
  // the end); a pipe or /proc file grows it.
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  if (S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    return std::nullopt;
  }
  std::string bytes(S_ISREG(st.st_mode) ? static_cast<size_t>(st.st_size) + 1 : 65536, '\0');
  size_t used = 0;
  for (;;) {
    if (used == bytes.size()) bytes.resize(bytes.size() * 2);
    const ssize_t n = ::read(fd, bytes.data() + used, bytes.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  bytes.resize(used);
  return bytes;
}

}  // namespace xt
