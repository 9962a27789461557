// SPDX-License-Identifier: MIT
// Whether the host is protected, told truthfully: where xthrottle runs, on
// which state, in which mode, and every reason it may not protect as it
// should (status, status --check, the health metrics).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "attach.h"
#include "error.h"
#include "fleet_wire.h"
#include "rules_file.h"
#include "state.h"
#include "stats.h"

namespace xt {

struct Status {
  std::string pin_dir;
  bool state = false;  // pinned maps exist
  std::vector<RuleEntry> rules;
  std::vector<Attachment> interfaces;
  uint64_t tracked_sources = 0;  // used within the idle window
  uint64_t idle_sources = 0;     // quiet longer: still in the table, buckets kept
  uint32_t max_sources = 0;
  // Slots of the table (sets of XT_BUCKET_WAYS): room for more sources than
  // --max-sources, 15 for every 8 of it, so that sets the hash fills
  // unevenly still hold theirs.
  uint64_t table_slots = 0;
  uint32_t idle_seconds = 0;  // a source quiet this long is untracked (attach --idle)
  uint64_t bytes_per_source = 0;
  // The kernel memory of the state's maps, used or not, by part:
  // source_table, hot_cache, known_table, blocklists, other.
  std::map<std::string, uint64_t> kernel_memory;
  uint32_t hz = 0;
  uint64_t table_full_drops = 0;
  // Buckets made, and slots taken for newcomers, since the state was made
  // (with what a restore added); of the evictions, those of sources still
  // sending (within the idle window), whose limits no longer hold.
  uint64_t sources_admitted = 0, sources_evicted = 0, sources_evicted_active = 0;
  uint64_t new_source_drops = 0;
  // The known table: sources let in outside the new-source budget (those it
  // admits now, of which proven, and entries whose time is over; its size
  // and kernel memory), and what it did.
  uint64_t known_sources = 0, known_proven = 0, known_expired = 0, known_max = 0, known_bytes = 0;
  uint64_t known_recorded = 0;
  uint64_t proofs_sent = 0, proofs_passed = 0, admitted_by_proof = 0, admitted_by_memory = 0;
  // The config file last applied (apply, serve --config), if any.
  std::string config_path, config_sha256;
  std::string state_id;  // which state (state_identity): another after a reboot
  uint64_t config_applied_at = 0;
  bool config_changed = false;  // the file on disk is not what was applied
  bool rules_drifted = false;   // it is, but the live rules are not what it says
  std::vector<Saturation> saturated;
  // xthrottle programs on this namespace's interfaces that use state other
  // than pin_dir's (found: the directory holding their pins, if any).
  struct Elsewhere {
    std::string ifname;
    uint32_t prog_id = 0;
    std::string pin_dir;
  };
  std::vector<Elsewhere> elsewhere;
  // The fleet link of serve --cluster on this state, as it last wrote it
  // (fleet_wire.h), and how old that is.
  std::optional<FleetHealth> fleet;
  double fleet_age = 0;
  std::vector<std::string> warnings;         // not protecting as it should: empty means protected
  std::vector<std::string> config_warnings;  // the live rules are not what the config file says
  std::vector<std::string> notes;            // worth knowing, nothing wrong
};
// How long the rules of one family keep a known source: the longest
// --remember among its limit rules, and whether any of them takes proofs.
struct KnownWindow {
  uint64_t remember = 0;
  bool proofs = false;
};
// Counts one entry of the known table into s: known now if the data path
// would still admit its source at `secs` (the program's clock in seconds)
// under some rule of its family: a proof for XT_PROOF_SECONDS, good
// behaviour for the window's --remember; else expired.
void count_known(Status& s, const xt_known& e, uint32_t secs, const KnownWindow& window);

// Reads the state (if any) and works out every warning.
Result<Status> read_status(const std::string& pin_dir);
nlohmann::json status_json(const Status& status);
std::string status_text(const Status& status);

}  // namespace xt
