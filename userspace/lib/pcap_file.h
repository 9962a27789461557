// SPDX-License-Identifier: MIT
// The pcap file `xthrottle capture` writes, through libpcap. Apart from the
// rest of capture: libpcap's headers and the kernel's BPF headers (which
// libbpf brings) define the same names, so they never meet in one file.
#pragma once

#include <xthrottle/abi.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "error.h"

struct pcap;
struct pcap_dumper;

namespace xt {

// One sample: what the data path said of it, and its first bytes.
struct CaptureSample {
  xt_capture_meta meta{};
  std::span<const uint8_t> bytes;
};

// A pcap file (or standard output, "-") of Ethernet frames. A frame of an
// interface without a link layer (tun) gets an Ethernet header of zeros,
// so that one file holds frames of any interface.
class PcapFile {
 public:
  static Result<PcapFile> open(const std::string& path, uint32_t snaplen);
  void write(const CaptureSample& sample, double unix_seconds);
  // Writes out what is buffered; an error (a full disk) says so.
  Result<void> flush();
  // Whether writing failed because the file's reader went away (EPIPE:
  // standard output into `tshark -c 5`), which is no error.
  bool reader_gone() const { return failed_errno_ == EPIPE; }

 private:
  PcapFile() = default;
  // Keeps the errno of the first write that failed.
  void note_failure();
  std::string path_;
  std::shared_ptr<pcap> pcap_;
  std::shared_ptr<pcap_dumper> dumper_;
  int failed_errno_ = 0;
};

}  // namespace xt
