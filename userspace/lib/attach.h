// SPDX-License-Identifier: MIT
// Putting the program on interfaces (libxdp) and telling the truth about where
// it runs.
#pragma once

#include <xthrottle/abi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "error.h"
#include "state.h"

namespace xt {

Result<xt_mode> parse_mode(const std::string& text);
// What the interface's frames start with, from its link type; an error
// naming the type for devices whose frames xthrottle cannot parse.
Result<xt_link> link_of(const std::string& ifname);
const char* link_name(uint8_t link);
// The interface's MTU.
Result<uint32_t> mtu_of(const std::string& ifname);
// The interface's index in this network namespace, or why there is none.
Result<uint32_t> ifindex_of(const std::string& ifname);
const char* mode_name(uint8_t mode);

struct Attachment {
  std::string ifname;
  uint32_t ifindex = 0;
  uint8_t requested = XT_MODE_AUTO;  // what the operator asked for (xt_mode)
  uint8_t mode = XT_MODE_AUTO;       // what the kernel gave
  bool multiprog = false;            // libxdp dispatcher; false: the only program
  uint8_t link = XT_LINK_ETHER;      // what the program was loaded to parse (xt_link)
  uint32_t mtu = 0;                  // the MTU it was loaded for (0: not recorded)
  uint32_t mtu_now = 0;              // the interface's MTU now (0: unknown)
  uint32_t prog_id = 0;
  bool live = false;      // our program, on our maps, is on the interface now
  bool recorded = false;  // `attach` recorded it in the pinned attach table
  bool already = false;   // attach found it attached already and left it
  uint32_t replaced_prog_id = 0;  // attach swapped this program out for ours
};

// Loads the embedded program on the pinned maps and attaches it to ifname in
// this network namespace. If xthrottle runs there already, a different build
// (or, with replace, even the same one) takes its place in one atomic step.
Result<Attachment> attach(const State& state, const std::string& ifname, xt_mode requested, bool replace = false);
// Takes the program off ifname; if it is not there (no interface has that
// name any more, or the program was taken off behind xthrottle's back),
// forgets its record, and says which.
enum class Detached {
  Program,        // taken off the interface
  InterfaceGone,  // deleted, its program with it: its record forgotten
  ProgramGone,    // the interface is there, the program was taken off behind xthrottle's back: record forgotten
};
Result<Detached> detach(const State& state, const std::string& ifname);
// Whether this state's program is on ifname (an attach that failed after
// the program went on, for one: its record refused).
bool runs_ours(const State& state, const std::string& ifname);
// Every interface of this network namespace that runs our program on our
// maps, and every record whose program has gone.
Result<std::vector<Attachment>> attachments(const State& state);

// xthrottle programs on this namespace's interfaces that do not use the rule
// map with id rules_id (0: any), with the directory their state is pinned
// in, when a BPF file system mounted here holds it ("" if none does).
struct OtherProgram {
  std::string ifname;
  uint32_t prog_id = 0;
  std::string pin_dir;
};
std::vector<OtherProgram> other_xthrottles(uint32_t rules_id);

}  // namespace xt
