// SPDX-License-Identifier: MIT
// PacketBuilder: crafted frames for the parser and program tests.
//   Packet().vlan(10).ipv4("198.18.0.1").fragment(185, false).build()
//   Packet().ipv6("2001:db8::1").ext(0).ext(43).ext(44).build()
//   Packet().ipv4("198.18.0.1").tcp(8).total_length(42000).size(14 + 42000).build()  // a super-packet
//   Packet().no_link().ipv4("198.18.0.1").build()  // from a tun device
#pragma once

#include <arpa/inet.h>

#include <algorithm>
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
  // The ECN field (0 not capable, 1 ECT(1), 2 ECT(0), 3 CE); an IPv4
  // header then gets its checksum, so that a change to it can be checked.
  Packet& ecn(uint8_t bits) {
    ecn_ = bits;
    return *this;
  }
  // IPv4 total length field (IPv6: the payload length); by default the IP
  // header and what follows.
  Packet& total_length(uint16_t bytes) {
    total_ = bytes;
    return *this;
  }
  // An IPv4 fragment: offset in 8-byte units, more fragments follow or not.
  Packet& fragment(uint16_t offset8, bool more) {
    frag_ = static_cast<uint16_t>((more ? 0x2000 : 0) | (offset8 & 0x1fff));
    return *this;
  }
  // An IPv6 extension header (0 hop-by-hop, 43 routing, 44 fragment, 60
  // destination options, ...) after the fixed header, in order; 8 bytes each.
  Packet& ext(uint8_t type) {
    exts_.push_back(type);
    return *this;
  }
  // TCP instead of UDP after the IP header, with a header of doff 4-byte words.
  Packet& tcp(uint8_t doff = 5) {
    tcp_doff_ = doff;
    return *this;
  }
  // The TCP header's flags (default ACK), ports, sequence and
  // acknowledgement numbers.
  Packet& flags(uint8_t f) {
    tcp_flags_ = f;
    return *this;
  }
  // Another IP protocol than UDP or TCP after the IP header (ICMP: 1), with
  // 8 bytes of zeros for its header.
  Packet& proto(uint8_t p) {
    proto_ = p;
    return *this;
  }
  // An IPv6 fragment header (ext(44)) that says this offset, in 8-byte units.
  Packet& ext_fragment_offset(uint16_t offset8) {
    ext_frag_offset_ = offset8;
    return *this;
  }
  // TCP's or UDP's ports.
  Packet& ports(uint16_t sport, uint16_t dport) {
    sport_ = sport;
    dport_ = dport;
    return *this;
  }
  Packet& seq(uint32_t n) {
    seq_ = n;
    return *this;
  }
  Packet& ack(uint32_t n) {
    ack_ = n;
    return *this;
  }
  // No link layer: the frame starts at the IP header (tun, WireGuard).
  // Sent to the link's broadcast address (ff:ff:ff:ff:ff:ff), not to this host's.
  Packet& broadcast() {
    broadcast_ = true;
    return *this;
  }
  // Sent from a group's link address (01:00:5e:00:00:01), which no host has.
  Packet& from_group() {
    from_group_ = true;
    return *this;
  }
  Packet& no_link() {
    no_link_ = true;
    return *this;
  }
  // Frame size including headers (padded with zeros); 0: just the headers + 8.
  Packet& size(size_t bytes) {
    size_ = bytes;
    return *this;
  }

  // The IPv4 header checksum of the header at h (its checksum field taken
  // as it is: 0 to compute one, the one there to check it, giving 0).
  static uint16_t ipv4_checksum(const uint8_t* h, size_t len) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(h[i] << 8 | h[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
  }

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
    if (broadcast_) std::fill(f.begin(), f.begin() + 6, 0xff);
    if (from_group_) std::copy_n(std::begin({0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}), 6, f.begin() + 6);
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
      const size_t total = total_.value_or(ip.size() + l4_len());
      ip[2] = static_cast<uint8_t>(total >> 8);
      ip[3] = static_cast<uint8_t>(total);
      ip[6] = static_cast<uint8_t>(frag_ >> 8);
      ip[7] = static_cast<uint8_t>(frag_);
      ip[8] = 64;  // ttl
      ip[9] = l4_proto();
      addr(ip.data() + 12, AF_INET, src_);
      addr(ip.data() + 16, AF_INET, dst_);
      if (ecn_) {
        ip[1] = *ecn_;
        const uint16_t check = ipv4_checksum(ip.data(), ip.size());
        ip[10] = static_cast<uint8_t>(check >> 8);
        ip[11] = static_cast<uint8_t>(check);
      }
      f.insert(f.end(), ip.begin(), ip.end());
      l4(f);
    } else if (l3_ == 6) {
      std::vector<uint8_t> ip(40, 0);
      ip[0] = static_cast<uint8_t>(version_.value_or(6) << 4);
      ip[1] = static_cast<uint8_t>(ecn_.value_or(0) << 4);  // the traffic class's low bits
      const size_t payload = total_.value_or(exts_.size() * 8 + l4_len());  // IPv6: the payload length
      ip[4] = static_cast<uint8_t>(payload >> 8);
      ip[5] = static_cast<uint8_t>(payload);
      ip[6] = exts_.empty() ? l4_proto() : exts_[0];  // next header: the chain, then udp or tcp
      ip[7] = 64;                             // hop limit
      addr(ip.data() + 8, AF_INET6, src_);
      addr(ip.data() + 24, AF_INET6, dst_);
      f.insert(f.end(), ip.begin(), ip.end());
      for (size_t i = 0; i < exts_.size(); i++) {
        std::vector<uint8_t> h(8, 0);  // next header, length 0 (8 bytes), zeros
        h[0] = i + 1 < exts_.size() ? exts_[i + 1] : l4_proto();
        if (exts_[i] == 44) put16at(h, 2, static_cast<uint16_t>(ext_frag_offset_ << 3));
        f.insert(f.end(), h.begin(), h.end());
      }
      l4(f);
    } else {
      f.insert(f.end(), 28, 0);  // an ARP-sized payload
    }
    if (no_link_) f.erase(f.begin(), f.begin() + static_cast<long>(14 + 4 * tags_.size()));
    if (size_ && f.size() < size_) f.resize(size_, 0);
    if (size_ && f.size() > size_) f.resize(size_);  // truncation on purpose
    return f;
  }

 private:
  struct Tag {
    uint16_t tpid, id;
  };
  uint8_t l4_proto() const { return proto_ ? *proto_ : tcp_doff_ ? 6 : 17; }
  // The transport header's length: what the IP length fields count past
  // the IP headers (the builder sends no payload).
  size_t l4_len() const { return tcp_doff_ && !proto_ ? tcp_doff_ * 4u : 8u; }
  void l4(std::vector<uint8_t>& f) const {
    if (!tcp_doff_ || proto_) {
      std::vector<uint8_t> udp(8, 0);  // UDP header (or another protocol's 8 bytes)
      if (!proto_) {
        put16at(udp, 0, sport_);
        put16at(udp, 2, dport_);
      }
      f.insert(f.end(), udp.begin(), udp.end());
      return;
    }
    std::vector<uint8_t> tcp(tcp_doff_ * 4u, 0);
    put16at(tcp, 0, sport_);
    put16at(tcp, 2, dport_);
    put32at(tcp, 4, seq_);
    put32at(tcp, 8, ack_);
    tcp[12] = static_cast<uint8_t>(tcp_doff_ << 4);
    tcp[13] = tcp_flags_;
    f.insert(f.end(), tcp.begin(), tcp.end());
  }
  static void put16(std::vector<uint8_t>& f, uint16_t v) {
    f.push_back(static_cast<uint8_t>(v >> 8));
    f.push_back(static_cast<uint8_t>(v));
  }
  static void put16at(std::vector<uint8_t>& f, size_t at, uint16_t v) {
    f[at] = static_cast<uint8_t>(v >> 8);
    f[at + 1] = static_cast<uint8_t>(v);
  }
  static void put32at(std::vector<uint8_t>& f, size_t at, uint32_t v) {
    put16at(f, at, static_cast<uint16_t>(v >> 16));
    put16at(f, at + 2, static_cast<uint16_t>(v));
  }
  static void addr(uint8_t* out, int af, const std::string& text) {
    if (inet_pton(af, text.c_str(), out) != 1) throw std::invalid_argument("bad address " + text);
  }

  std::vector<Tag> tags_;
  int l3_ = 0;
  uint16_t ethertype_ = 0x0806;
  std::string src_, dst_;
  uint8_t ihl_ = 5;
  std::optional<uint16_t> total_;
  uint16_t frag_ = 0;
  std::vector<uint8_t> exts_;
  std::optional<uint8_t> version_;
  std::optional<uint8_t> ecn_;
  size_t size_ = 0;
  uint8_t tcp_doff_ = 0;
  std::optional<uint8_t> proto_;
  uint16_t ext_frag_offset_ = 0;
  uint8_t tcp_flags_ = 0x10;  // ACK
  uint16_t sport_ = 0, dport_ = 0;
  uint32_t seq_ = 0, ack_ = 0;
  bool no_link_ = false;
  bool broadcast_ = false;
  bool from_group_ = false;
};

}  // namespace xt::test
