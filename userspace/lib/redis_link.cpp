// SPDX-License-Identifier: MIT
#include "redis_link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace xt {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kConnect = std::chrono::milliseconds(500);
// A batch's deadline: a second, and a second more for each 8 MB it sends;
// a reply still coming at kKeepGoing a second or more keeps it going (a
// second from when the last such share arrived), up to kLongest: a link
// that gives a few bytes a second must not hold the fleet's thread.
constexpr auto kReply = std::chrono::seconds(1);
constexpr auto kLongest = std::chrono::seconds(60);
constexpr size_t kKeepGoing = 256 << 10;
constexpr size_t kBytesASecond = 8 << 20;
// The most one batch's replies may hold: past it the link is done.
constexpr size_t kMaxReplyBytes = 256 << 20;

std::string ssl_error(const std::string& what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = {};
  if (e) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return what + (e ? std::string(": ") + buf : std::string());
}

// Connects a non-blocking socket within kConnect; the fd, or -1 and why.
int connect_within(int family, const sockaddr* addr, socklen_t len, std::string& why) {
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    why = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (connect(fd, addr, len) != 0 && errno != EINPROGRESS) {
    why = std::strerror(errno);
    close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, static_cast<int>(kConnect.count())) != 1) {
    why = "no answer within " + std::to_string(kConnect.count()) + " ms";
    close(fd);
    return -1;
  }
  int err = 0;
  socklen_t el = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err) {
    why = std::strerror(err);
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

struct RedisLink::Impl {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  redisReader* reader = nullptr;
  Clock::time_point deadline;  // of what the link is doing now
  Clock::time_point started;   // the batch's, which kLongest bounds
  size_t fed = 0;              // reply bytes read for the batch
  size_t fed_kept = 0;         // of them, when the deadline last moved on

  ~Impl() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
    if (fd >= 0) close(fd);
    if (reader) redisReaderFree(reader);
  }

  // Waits until fd can be read (or written), before the deadline: one for
  // the whole batch, not one for each byte (a Redis that trickles bytes
  // cannot hold the link).
  bool wait(short events) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd, events, 0};
      const int n = poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      return n == 1;
    }
  }

  Result<void> write_all(const std::string& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      if (ssl) {
        ERR_clear_error();
        const int n = SSL_write(ssl, bytes.data() + at, static_cast<int>(std::min<size_t>(bytes.size() - at, 1 << 30)));
        if (n > 0) {
          at += static_cast<size_t>(n);
          continue;
        }
        const int e = SSL_get_error(ssl, n);
        if ((e == SSL_ERROR_WANT_WRITE && wait(POLLOUT)) || (e == SSL_ERROR_WANT_READ && wait(POLLIN)))
          continue;
        return system_error(ssl_error("TLS write"));
      }
      const ssize_t n = send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n > 0) {
        at += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (errno == EAGAIN && !wait(POLLOUT)) return system_error("write: Redis took no more before the deadline");
        continue;
      }
      return system_error("write", errno);
    }
    return {};
  }

  // Reads what there is (before the deadline) into the reader.
  Result<void> read_some() {
    char buf[65536];
    for (;;) {
      ssize_t n = 0;
      if (ssl) {
        ERR_clear_error();
        const int r = SSL_read(ssl, buf, sizeof(buf));
        if (r > 0) {
          n = r;
        } else {
          const int e = SSL_get_error(ssl, r);
          if (e == SSL_ERROR_WANT_READ && wait(POLLIN)) continue;
          if (e == SSL_ERROR_WANT_WRITE && wait(POLLOUT)) continue;
          if (e == SSL_ERROR_ZERO_RETURN) return system_error("Redis closed the connection");
          if (e == SSL_ERROR_WANT_READ) return system_error("no reply before the deadline");
          return system_error(ssl_error("TLS read"));
        }
      } else {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
          if (!wait(POLLIN)) return system_error("no reply before the deadline");
          continue;
        }
        if (n < 0) return system_error("read", errno);
        if (n == 0) return system_error("Redis closed the connection");
      }
      // Each kKeepGoing read: a second more from now (a reply of a hundred
      // entries of 1.5 MB is no stall, over a slow link as a fast one), as
      // long as the batch's longest.
      fed += static_cast<size_t>(n);
      if (fed - fed_kept >= kKeepGoing) {
        deadline = std::max(deadline, std::min(Clock::now() + kReply, started + kLongest));
        fed_kept = fed;
      }
      if (fed > kMaxReplyBytes)
        return system_error("Redis' replies passed " + std::to_string(kMaxReplyBytes >> 20) + " MB");
      if (redisReaderFeed(reader, buf, static_cast<size_t>(n)) != REDIS_OK)
        return system_error("cannot take Redis' reply");
      return {};
    }
  }

  Result<Reply> reply() {
    for (;;) {
      void* r = nullptr;
      if (redisReaderGetReply(reader, &r) != REDIS_OK)
        return system_error(std::string("not Redis' protocol: ") + reader->errstr);
      if (r) return Reply(static_cast<redisReply*>(r));
      auto got = read_some();
      if (!got) return std::unexpected(got.error());
    }
  }

  Result<void> handshake(const ClusterUrl& url, const TlsFiles& tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return system_error(ssl_error("TLS"));
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (tls.ca.empty() ? SSL_CTX_set_default_verify_paths(ctx) != 1
                       : SSL_CTX_load_verify_locations(ctx, tls.ca.c_str(), nullptr) != 1)
      return system_error(ssl_error("cannot load the CA " + (tls.ca.empty() ? "the system has" : tls.ca)));
    if (!tls.cert.empty() && (SSL_CTX_use_certificate_chain_file(ctx, tls.cert.c_str()) != 1 ||
                              SSL_CTX_use_PrivateKey_file(ctx, tls.key.c_str(), SSL_FILETYPE_PEM) != 1))
      return system_error(ssl_error("cannot load the client certificate " + tls.cert + " and key " + tls.key));
    ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) return system_error(ssl_error("TLS"));
    // The certificate must name the host the URL does: an address, or a name.
    in6_addr any;
    const bool literal = inet_pton(AF_INET, url.host.c_str(), &any) == 1 || inet_pton(AF_INET6, url.host.c_str(), &any) == 1;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (literal ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str()) != 1
                : (SSL_set_tlsext_host_name(ssl, url.host.c_str()) != 1 || SSL_set1_host(ssl, url.host.c_str()) != 1))
      return system_error(ssl_error("TLS: cannot check the server's name"));
    for (;;) {
      ERR_clear_error();
      const int r = SSL_connect(ssl);
      if (r == 1) return {};
      const int e = SSL_get_error(ssl, r);
      if ((e == SSL_ERROR_WANT_READ && wait(POLLIN)) || (e == SSL_ERROR_WANT_WRITE && wait(POLLOUT)))
        continue;
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) {
        ERR_clear_error();
        return system_error(std::string("TLS: the server's certificate is not trusted: ") +
                            X509_verify_cert_error_string(verify));
      }
      return system_error(ssl_error("TLS handshake"));
    }
  }
};

RedisLink::RedisLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RedisLink::~RedisLink() = default;

Result<std::unique_ptr<RedisLink>> RedisLink::open(const ClusterUrl& url, const TlsFiles& tls) {
  auto impl = std::make_unique<Impl>();
  std::string why;
  if (url.unix_socket) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (url.host.size() >= sizeof(a.sun_path)) return usage_error("the socket's path is too long: " + url.host);
    std::memcpy(a.sun_path, url.host.c_str(), url.host.size());
    impl->fd = connect_within(AF_UNIX, reinterpret_cast<sockaddr*>(&a), sizeof(a), why);
  } else {
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (int e = getaddrinfo(url.host.c_str(), std::to_string(url.port).c_str(), &hints, &found); e != 0)
      return system_error("cannot resolve " + url.host + ": " + gai_strerror(e));
    for (addrinfo* ai = found; ai && impl->fd < 0; ai = ai->ai_next)
      impl->fd = connect_within(ai->ai_family, ai->ai_addr, ai->ai_addrlen, why);
    freeaddrinfo(found);
  }
  if (impl->fd < 0) return system_error(why);
  impl->deadline = Clock::now() + kConnect + kReply;
  if (url.tls) {
    auto done = impl->handshake(url, tls);
    if (!done) return std::unexpected(done.error());
  }
  impl->reader = redisReaderCreate();
  if (!impl->reader) return system_error("cannot make a reply reader");
  return std::unique_ptr<RedisLink>(new RedisLink(std::move(impl)));
}

Result<std::vector<Reply>> RedisLink::run(const std::vector<std::vector<std::string>>& commands) {
  std::string out;
  for (const auto& args : commands) {
    std::vector<const char*> argv;
    std::vector<size_t> len;
    for (const auto& a : args) {
      argv.push_back(a.data());
      len.push_back(a.size());
    }
    char* cmd = nullptr;
    const long long n = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), len.data());
    if (n < 0) return system_error("cannot format a command");
    out.append(cmd, static_cast<size_t>(n));
    redisFreeCommand(cmd);
  }
  impl_->started = Clock::now();
  impl_->deadline = impl_->started + kReply + std::chrono::seconds(out.size() / kBytesASecond);
  impl_->fed = 0;
  impl_->fed_kept = 0;
  if (auto w = impl_->write_all(out); !w) return std::unexpected(w.error());
  std::vector<Reply> replies;
  for (size_t i = 0; i < commands.size(); i++) {
    auto r = impl_->reply();
    if (!r) return std::unexpected(r.error());
    replies.push_back(std::move(*r));
  }
  return replies;
}

Result<Reply> RedisLink::run(const std::vector<std::string>& command) {
  auto r = run(std::vector<std::vector<std::string>>{command});
  if (!r) return std::unexpected(r.error());
  return std::move(r->front());
}

}  // namespace xt
