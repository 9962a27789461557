// SPDX-License-Identifier: MIT
// One connection to Redis for a fleet (fleet.h): TCP, a unix socket, or TLS
// over TCP (rediss://, OpenSSL), with hiredis for what it is good at, the
// protocol (commands formatted by redisFormatCommandArgv, replies parsed by
// its reader). hiredis 0.14, Debian 12's, has no TLS of its own, and a
// socket it writes to raises SIGPIPE; this one writes with MSG_NOSIGNAL or
// through OpenSSL, and every wait is bounded.
#pragma once

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "fleet_wire.h"

namespace xt {

struct ReplyFree {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

// What TLS takes beyond the URL: the CA bundle that vouches for the server
// (empty: the system's), and a client certificate and key for servers that
// ask for one (tls-auth-clients).
struct TlsFiles {
  std::string ca, cert, key;
};

class RedisLink {
 public:
  // Connects (0.5 s at most; a host name is resolved first, as the
  // system's resolver bounds it), and for rediss:// makes the TLS handshake
  // (1 s),
  // checking the server's certificate against the CA and the URL's host.
  // The error says what failed, never the password (nothing is sent yet).
  static Result<std::unique_ptr<RedisLink>> open(const ClusterUrl& url, const TlsFiles& tls);
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  // Sends the commands in one write, then reads one reply each, all
  // before one deadline (a second, and a second more for each 8 MB sent; a
  // reply still arriving at 256 KB a second or more keeps it going, 60 s at
  // most), and at most 256 MB of replies. A reply of Redis' own error is a reply;
  // a failure of the link is the error, after which the link is done.
  Result<std::vector<Reply>> run(const std::vector<std::vector<std::string>>& commands);
  Result<Reply> run(const std::vector<std::string>& command);

  struct Impl;

 private:
  explicit RedisLink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xt
