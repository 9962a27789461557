// SPDX-License-Identifier: MIT
// PacketBuilder: crafted frames for the parser and program tests.
//   Packet().vlan(10).ipv4("198.18.0.1").udp().build()
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace xt::test {

class Packet {
 public:
  Packet& vlan(uint16_t id, uint16_t tpid = 0x8100) {
    tags_.push_back({tpid, id});
    return *this;
  }
  Packet& ipv4(const std::string& src, const std::string& dst = "198.19.0.1") {
    l3_ = 4;
    src_ = src;
    dst_ = dst;
    return *this;
  }
  Packet& ipv6(const std::string& src, const std::string& dst = "2001:db8:ffff::1") {
    l3_ = 6;
    src_ = src;
    dst_ = dst;
    return *this;
  }
  Packet& ethertype(uint16_t type) {
    l3_ = 0;
    ethertype_ = type;
    return *this;
  }
  Packet& ihl(uint8_t words) {
    ihl_ = words;
    return *this;
  }
  Packet& ip_version(uint8_t v) {
    version_ = v;
    return *this;
  }
  // Frame size including headers (padded with zeros); 0: just the headers + 8.
  Packet& size(size_t bytes) {
    size_ = bytes;
    return *this;
  }

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
    uint16_t type = l3_ == 4 ? 0x0800 : l3_ == 6 ? 0x86DD : ethertype_;
    for (const auto& t : tags_) {
      put16(f, t.tpid);
      put16(f, t.id);
    }
    put16(f, type);
    if (l3_ == 4) {
      const size_t opts = ihl_ > 5 ? (ihl_ - 5) * 4u : 0;
      std::vector<uint8_t> ip(20 + opts, 0);  // options (zeros) follow the addresses
      ip[0] = static_cast<uint8_t>(version_.value_or(4) << 4 | ihl_);
      ip[8] = 64;  // ttl
      ip[9] = 17;  // udp
      addr(ip.data() + 12, AF_INET, src_);
      addr(ip.data() + 16, AF_INET, dst_);
      f.insert(f.end(), ip.begin(), ip.end());
      f.insert(f.end(), 8, 0);  // UDP header
    } else if (l3_ == 6) {
      std::vector<uint8_t> ip(40, 0);
      ip[0] = static_cast<uint8_t>(version_.value_or(6) << 4);
      ip[6] = 17;  // udp
      ip[7] = 64;  // hop limit
      addr(ip.data() + 8, AF_INET6, src_);
      addr(ip.data() + 24, AF_INET6, dst_);
      f.insert(f.end(), ip.begin(), ip.end());
      f.insert(f.end(), 8, 0);
    } else {
      f.insert(f.end(), 28, 0);  // an ARP-sized payload
    }
    if (size_ && f.size() < size_) f.resize(size_, 0);
    if (size_ && f.size() > size_) f.resize(size_);  // truncation on purpose
    return f;
  }

 private:
  struct Tag {
    uint16_t tpid, id;
  };
  static void put16(std::vector<uint8_t>& f, uint16_t v) {
    f.push_back(static_cast<uint8_t>(v >> 8));
    f.push_back(static_cast<uint8_t>(v));
  }
  static void addr(uint8_t* out, int af, const std::string& text) {
    if (inet_pton(af, text.c_str(), out) != 1) throw std::invalid_argument("bad address " + text);
  }

  std::vector<Tag> tags_;
  int l3_ = 0;
  uint16_t ethertype_ = 0x0806;
  std::string src_, dst_;
  uint8_t ihl_ = 5;
  std::optional<uint8_t> version_;
  size_t size_ = 0;
};

}  // namespace xt::test
