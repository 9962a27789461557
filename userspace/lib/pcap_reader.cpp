// SPDX-License-Identifier: MIT
#include "pcap_reader.h"

#include <pcap/pcap.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xt {
namespace {

constexpr int kLinktypeIpv4 = 228, kLinktypeIpv6 = 229, kLinktypeSll2 = 276;
constexpr uint16_t kPacketOutgoing = 4;  // sll_pkttype of a frame the host sent

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

Result<PcapReader> PcapReader::open(const std::string& path) {
  // A file that is not there, or not ours to read, is the system's no
  // (exit 1, as for a rules file); one libpcap cannot read is bad input.
  // Opened once and handed to libpcap (a FIFO opened twice lost its writer),
  // "-" being standard input, as libpcap reads it.
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = nullptr;
  if (path == "-") {
    p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  } else {
    FILE* file = std::fopen(path.c_str(), "rbe");
    if (!file) return system_error("cannot read " + path, errno);
    p = pcap_fopen_offline_with_tstamp_precision(file, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) std::fclose(file);  // libpcap closes it only once it holds it
  }
  if (!p) return usage_error(path + ": not a capture libpcap reads (pcap or pcapng): " + err);
  PcapReader r;
  r.path_ = path;
  r.pcap_ = std::shared_ptr<pcap>(p, pcap_close);
  r.dlt_ = pcap_datalink(p);
  switch (r.dlt_) {
    case DLT_EN10MB:
    case DLT_LINUX_SLL:
    case kLinktypeSll2:
      r.link_ = XT_LINK_ETHER;
      break;
    case DLT_RAW:
    case kLinktypeIpv4:
    case kLinktypeIpv6:
      r.link_ = XT_LINK_IP;
      break;
    default: {
      const char* name = pcap_datalink_val_to_name(r.dlt_);
      return usage_error(path + ": link type " + std::to_string(r.dlt_) + " (" + (name ? name : "unknown") +
                         ") has no program: Ethernet, Linux cooked or raw IP captures only");
    }
  }
  return r;
}

Result<bool> PcapReader::next(CaptureFrame& frame) {
  for (;;) {
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    const int got = pcap_next_ex(pcap_.get(), &h, &data);
    if (got == PCAP_ERROR_BREAK) return false;
    if (got != 1)
      return usage_error(path_ + ": unreadable after " + std::to_string(frames_) +
                         " frames (cut short?): " + pcap_geterr(pcap_.get()));
    frames_++;
    frame.ts_ns = static_cast<int64_t>(h->ts.tv_sec) * 1'000'000'000 + h->ts.tv_usec;  // nanoseconds (opened so)
    frame.wire_len = h->len;
    const uint8_t* at = data;
    uint32_t len = h->caplen;
    uint16_t proto = 0;
    const uint8_t* mac = nullptr;
    if (dlt_ == DLT_LINUX_SLL || dlt_ == kLinktypeSll2) {
      const uint32_t head = dlt_ == DLT_LINUX_SLL ? 16 : 20;
      if (len < head) {
        skipped_++;
        continue;
      }
      const uint16_t type = dlt_ == DLT_LINUX_SLL ? be16(at) : at[10];
      proto = dlt_ == DLT_LINUX_SLL ? be16(at + 14) : be16(at);
      mac = dlt_ == DLT_LINUX_SLL ? at + 6 : at + 12;
      if (type == kPacketOutgoing) {
        skipped_++;
        continue;
      }
      at += head;
      len -= head;
      frame.wire_len = frame.wire_len >= head ? frame.wire_len - head + 14 : len + 14;
      frame.bytes.assign(14, 0);
      std::memcpy(frame.bytes.data() + 6, mac, 6);
      frame.bytes[12] = static_cast<uint8_t>(proto >> 8);
      frame.bytes[13] = static_cast<uint8_t>(proto);
      frame.bytes.insert(frame.bytes.end(), at, at + len);
    } else {
      frame.bytes.assign(at, at + len);
    }
    return true;
  }
}

}  // namespace xt
