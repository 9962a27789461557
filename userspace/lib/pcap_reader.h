// SPDX-License-Identifier: MIT
// Reading a capture (pcap or pcapng, as tcpdump, tshark or dumpcap write
// them) through libpcap, for `xthrottle replay`: each frame as the data path
// would see it on an interface. Apart from the BPF side for the same reason
// as pcap_file.h: libpcap's headers and the kernel's define the same names.
#pragma once

#include <xthrottle/abi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "error.h"

struct pcap;

namespace xt {

struct CaptureFrame {
  int64_t ts_ns = 0;      // the capture's timestamp, ns since 1970
  uint32_t wire_len = 0;  // the frame's length on the wire (len), at least bytes.size()
  std::vector<uint8_t> bytes;  // what was captured (caplen), Linux cooked headers turned into Ethernet ones
};

class PcapReader {
 public:
  // A file that libpcap cannot read, or of a link type the data path has no
  // program for, is a usage error naming the file.
  static Result<PcapReader> open(const std::string& path);
  // The link layer of the frames next() gives: Ethernet (also for Linux
  // cooked captures, converted), or none (raw IP).
  xt_link link() const { return link_; }
  // The next frame the data path would see; false at the end. Frames a
  // Linux cooked capture marks as sent by the host are skipped (skipped()).
  // A file cut short is an error naming how many frames were read.
  Result<bool> next(CaptureFrame& frame);
  uint64_t frames() const { return frames_; }
  uint64_t skipped() const { return skipped_; }

 private:
  PcapReader() = default;
  std::string path_;
  std::shared_ptr<pcap> pcap_;
  xt_link link_ = XT_LINK_ETHER;
  int dlt_ = 0;
  uint64_t frames_ = 0, skipped_ = 0;
};

}  // namespace xt
