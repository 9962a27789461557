// SPDX-License-Identifier: MIT
// The pinned state: rules, buckets and counters in maps under the pin
// directory. Every CLI command is a fresh process that reopens them here, so
// protection and state outlive the controller.
#pragma once

#include <xthrottle/abi.h>

#include <bpf/libbpf.h>

#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "error.h"
#include "fd.h"
#include "pins.h"
#include "object.h"
#include "policy.h"
#include "rules.h"
#include "table.h"

namespace xt {

// The index of the interface a rule sends its drops out (--over
// redirect:IFACE) in this network namespace; 0 for a rule that drops.
// Fails if there is no such interface.
Result<uint32_t> redirect_ifindex(const RuleSpec& spec);

// The kernel tick rate limits are compiled for: that of the state in
// pin_dir, or measured now if there is none yet.
Result<uint32_t> tick_rate(const std::string& pin_dir);

struct RuleCounters {
  Cidr cidr;
  xt_rule rule;
  RuleSpec spec;
  xt_rule_stats stats;
  xt_rule_state state;  // the new-source budget's saturation among others
};

struct BucketEntry {
  xt_bucket_key key;
  xt_bucket bucket;
  uint64_t slot = 0;  // where in the table: set * XT_BUCKET_WAYS + way
};

// For the walks that keep something of every slot from one read to the next
// (top --watch, the recorder, the fleet): how many slots the table has, and
// which key a slot held when read, as the low bits of the key's keyed hash,
// never 0 (0: a slot never read). Two keys sharing them (about one pair in
// 2^31) make a new occupant's count read as the old one's moving on.
size_t table_slots(const xt_config& cfg);
uint32_t slot_key_hash(const xt_config& cfg, const xt_bucket_key& key);

struct BucketKeyLess {
  bool operator()(const xt_bucket_key& a, const xt_bucket_key& b) const {
    return std::memcmp(&a, &b, sizeof(a)) < 0;
  }
};
// Drops per bucket that per-CPU hot caches hold and have not added yet,
// sorted by key: 32 bytes an entry. (A std::map's node took about 80, and a
// botnet over its limit leaves drops in nearly every hot-cache entry: a
// million of them at --max-sources 4194304 on two CPUs.)
class PendingDrops {
 public:
  using Entry = std::pair<xt_bucket_key, uint64_t>;
  void add(const xt_bucket_key& key, uint64_t n) { entries_.emplace_back(key, n); }
  // Sorts, and adds up the entries of a key that several CPUs hold.
  void finish();
  // The drops pending for key: 0 if none.
  uint64_t of(const xt_bucket_key& key) const;
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
};

// Whether a ban has ended at tick now (signed: a ban the data path made
// on another CPU may begin a tick ahead of the clock read here).
inline bool ban_ended(const xt_ban& ban, uint64_t now) { return static_cast<int64_t>(ban.until - now) <= 0; }

class State {
 public:
  // Opens existing pins; fails (exit 1) if there is no state in pin_dir.
  static Result<State> open(const std::string& pin_dir);
  // Creates and pins the maps first if they do not exist yet, with the
  // table `create.table` asks (each setting unset: the default). Asking an
  // existing state for settings other than its own fails (exit 1): a table
  // is not resized, nor its idle window changed, under the programs that
  // use it.
  struct Create {
    TableSettings table;
    std::optional<uint32_t> hz;  // measured if not given
  };
  static Result<State> open_or_create(const std::string& pin_dir, const Create& create = {});
  static bool exists(const std::string& pin_dir);
  // Takes the state out of pin_dir: the rule table's pin first (it says
  // the state exists), then the rest. For a state just made, which nothing
  // uses yet: attach's, when the attach then failed.
  static Result<void> unpin(const std::string& pin_dir);
  // The maps of a loaded object that pins nothing: the BPF_PROG_TEST_RUN
  // tests drive the real program through the same state layer.
  static Result<State> from_object(const bpf_object* obj);
  // Writes the settings of a new state (epoch 1, the tick rate, the tables'
  // geometry, the hash key): by open_or_create, and by tests on private maps.
  Result<void> init_config(uint32_t hz, uint32_t max_sources, uint32_t idle_seconds = XT_DEFAULT_IDLE_SECONDS);

  Result<xt_config> config() const;
  // The kernel memory of every map pinned in the state's directory (the
  // kernel's own account, fdinfo "memlock"), by map name: what the state
  // costs the host, used or not (empty for a state not pinned).
  std::map<std::string, uint64_t> map_memory() const;
  // The program's clock now, in ticks: through the object's own clock
  // program for from_object() (so tests' clocks apply), else the control
  // programs', loaded once on demand.
  Result<uint64_t> now() const;

  const std::string& pin_dir() const { return pin_dir_; }
  // Whether pin_dir still holds this state: not taken out, nor made anew
  // (detach, the pins removed, attach: another --max-sources, an ABI
  // upgrade), which leaves an open State reading maps nothing uses.
  bool still_pinned() const;
  // Whether other is this same state (opened twice: the same maps).
  bool same_state(const State& other) const;

  Result<std::vector<RuleEntry>> rules() const;
  // The rule of exactly this CIDR and match, if there is one.
  std::optional<xt_rule> rule_of(const Cidr& cidr, const Match& match) const;
  // Adds a rule, or replaces the rule for the same CIDR and match in place: it keeps its
  // id and counters, and its sources' buckets carry their budget over. rule
  // is spec compiled. Returns true if an existing rule was replaced. A rule
  // that sends its drops out an interface this namespace lacks is refused,
  // unless redirect_may_wait (a restore at boot, before the interface is
  // made): then it drops them meanwhile, status says so (redirect_gone),
  // and adding it again once the interface is there sends them out.
  Result<bool> put_rule(const RuleSpec& spec, xt_rule rule, bool redirect_may_wait = false);
  // Deletes the rule for exactly this CIDR and match, and the buckets it owned.
  Result<void> del_rule(const Cidr& cidr, const Match& match = {});
  // Deletes the rules for exactly these CIDRs and matches, as del_rule does
  // each, but with the rules read once, one new epoch for them all and one
  // walk of the table that frees all their buckets: an apply that deletes
  // thousands of rules. Each is looked for before anything changes.
  Result<void> del_rules(const std::vector<std::pair<Cidr, Match>>& which);
  // Frees, in one walk of the table, what the last rules of the n lowest
  // free rule slots left in them, and keeps those slots for the next n new
  // rules put_rule adds while the object returned lives: each takes one
  // without the walk (and the read of every slot) a new rule makes alone,
  // through this same call for one slot. An apply or a restore adding
  // thousands of rules.
  class [[nodiscard]] SlotsReady {
   public:
    explicit SlotsReady(State* state) : state_(state) {}
    SlotsReady(SlotsReady&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    SlotsReady& operator=(SlotsReady&&) = delete;
    ~SlotsReady() {
      if (state_) state_->ready_.clear();
    }

   private:
    State* state_;
  };
  Result<SlotsReady> ready_new_slots(size_t n);
  // Brings the buckets of the rules these changes replace (each a spec and
  // the rule compiled from it, as put_rule takes them) up to date in one
  // walk of the table for all of them, where each replacement would walk
  // the table before its swap. While the object returned lives, put_rule's
  // replacement of one of them makes no walk of its own if the rule in the
  // table is still the version walked for (each rule walks on its own where
  // the one walk lost a race to the data path eight rounds running). An
  // apply changing thousands of rules. One such object at a time, as
  // SlotsReady: a second call starts over, and the first's end clears it.
  class [[nodiscard]] ChangesCaughtUp {
   public:
    explicit ChangesCaughtUp(State* state) : state_(state) {}
    ChangesCaughtUp(ChangesCaughtUp&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    ChangesCaughtUp& operator=(ChangesCaughtUp&&) = delete;
    ~ChangesCaughtUp() {
      if (state_) state_->caught_up_.clear();
    }

   private:
    State* state_;
  };
  Result<ChangesCaughtUp> catch_up_changes(const std::vector<std::pair<RuleSpec, xt_rule>>& changes);

  Result<std::vector<xt_count>> counters() const;  // summed over CPUs, by enum xt_reason then xt_counter
  Result<std::vector<RuleCounters>> rule_counters() const;
  // The table's slots that hold a source: tracked (used within the idle
  // window) and idle (its bucket kept, but to the new-source budget it is a
  // newcomer again).
  struct SourceCount {
    uint64_t tracked = 0, idle = 0;
  };
  Result<SourceCount> count_sources() const;
  Result<void> for_each_bucket(const std::function<void(const BucketEntry&)>& fn) const;
  // Every entry of the known table (sources admitted outside the new-source
  // budget), and the table's size in entries.
  Result<void> for_each_known(const std::function<void(const xt_known&)>& fn) const;
  uint64_t known_capacity() const;
  Result<PendingDrops> hot_pending() const;
  // The bucket of key, if the table holds it (tracked or gone idle).
  Result<std::optional<xt_bucket>> find_bucket(const xt_bucket_key& key) const;

  int attach_fd() const { return attach_.get(); }
  int events_fd() const { return events_.get(); }
  int events_cli_fd() const { return events_cli_.get(); }
  int capture_fd() const { return capture_.get(); }

  // What `xthrottle capture` asks of the data path (abi.h, xt_config's
  // capture_*): start (the budget full, the reasons written last), move its
  // end on (and the reasons again, should the data path have ended it),
  // and stop (the reasons cleared first).
  struct CaptureSettings {
    uint32_t reasons = 0;  // a bit per enum xt_reason
    uint32_t rule = XT_CAPTURE_ANY_RULE;
    uint32_t snaplen = XT_CAPTURE_MAX_SNAPLEN;
    xt_limit limit{};
  };
  Result<void> start_capture(const CaptureSettings& settings);
  Result<void> renew_capture();
  void stop_capture();

  // Called after each step of a rule change that the data path can see (a
  // write to the rule table or to the published epoch): the seam through
  // which tests check that every packet meanwhile sees the old rule or the
  // new one.
  void set_step_hook(std::function<void()> hook) { step_hook_ = std::move(hook); }
  // The hook's call: each step of a rule change, and in the walks of the
  // fair words and of a save, where the data path may run meanwhile.
  void step() const {
    if (step_hook_) step_hook_();
  }

  // Where each kind of rule id's drops (enum xt_over_kind) is sent now:
  // an interface index, or 0 (dropped). An interface removed since the
  // rule was written reads 0: the kernel empties its keys.
  Result<std::array<uint32_t, XT_OVER_KINDS>> redirects_of(uint32_t id) const;
  // Whether a rule that sends its drops out an interface has a key of a
  // kind it sends that is empty, or that points elsewhere than the
  // interface of that name now (it went, and perhaps came back).
  Result<bool> redirect_gone(const RuleEntry& e) const;

  // Bans (xthrottle ban): a prefix dropped until a tick, whatever its rule
  // (but an --allow rule). Adding one for a prefix that has one replaces
  // it; deleting one lets its sources' next packets through at once (a new
  // epoch empties the hot cache). Bans that have ended are removed by
  // either. bans() lists those in force.
  struct Ban {
    Cidr cidr;
    xt_ban ban;
  };
  Result<void> add_ban(const Cidr& cidr, uint64_t seconds);
  // A ban as it is (its end, start and rule: a snapshot's), replacing any
  // ban of its prefix; ban.prefixlen is set here.
  Result<void> put_ban(const Cidr& cidr, xt_ban ban);
  // Many at once (a snapshot's): the ended ones tidied once, one new epoch
  // if any replaced another, or if any went in and `new_epoch` (a ban by
  // hand or a restore's: the hot cache, read before the bans, would go on
  // dropping a deny rule's source as denied; not the fleet's, which come
  // in batches all through a flood).
  Result<void> put_bans(const std::vector<std::pair<Cidr, xt_ban>>& bans, bool new_epoch = false);
  Result<void> del_ban(const Cidr& cidr);
  Result<std::vector<Ban>> bans() const;
  // The same, in force at tick now: a reader that reads the clock itself
  // must list the bans as of that reading, or a ban ending between its
  // clock and this one's is neither listed nor ended by its own.
  Result<std::vector<Ban>> bans(uint64_t now) const;
  // Removes the bans that have ended. A rule's bans (--ban-for) go in from
  // the data path, which takes an ended one out only when its source comes
  // back: serve calls this every few seconds, or the ended bans of a
  // rotating botnet would fill the table and no source could be banned.
  // The caller holds the pin directory's lock.
  Result<void> clear_ended_bans();
  // Sets every `used` stamp older than the idle window back to a second past
  // it (the control program xt_age): a 16-bit stamp idle for a whole cycle
  // (four idle windows at least) would read as recent again, its source
  // tracked without the budget. And gives every hot-cache entry whose hold
  // ended 2^31 - 2^28 ticks ago or more an end 2^30 ticks ago: a 32-bit
  // tick 49.5 days past would read as live again, its source dropped
  // (control.bpf.h, XT_HOT_AGE_FROM). Says how many
  // of each. serve calls this every age_every_seconds (table.h), and after
  // a failure tries again every kAgeRetrySeconds.
  struct Aged {
    uint64_t stamps = 0;
    uint64_t hot = 0;
  };
  Result<Aged> age_stamps();
  static constexpr int kAgeRetrySeconds = 5;
  // Writes every fair word of a rule with a total (the share a source may
  // claim while the total is under pressure) last written
  // XT_FAIR_STALE_TICKS ago or more again, as full (abi.h): its clock
  // wraps every 74.6 hours, and a word a multiple of that old read as in
  // debt. A walk of the table for each rule, of the `most` rules with a
  // total from id `from` on; next is the id to go on from (0: all done).
  // Rules replaced meanwhile are left to the next round (their buckets are
  // in another generation), and deleted ones, or ones whose id another
  // rule took, are left. serve runs this on its ageing thread, a few rules
  // each round, every kFairRefreshSeconds; without the pin directory's
  // lock (it writes no rule, and a word it writes again reads the same).
  struct FairRefresh {
    uint64_t refreshed = 0;  // words written again
    uint32_t next = 0;
  };
  Result<FairRefresh> refresh_fair_words(uint32_t from = 0, uint32_t most = XT_MAX_RULES);
  static constexpr int kFairRefreshSeconds = 3600;
  static constexpr uint32_t kFairRefreshRulesARound = 4;

  // Blocklists (xthrottle blocklist; abi.h): named lists of prefixes whose
  // sources are dropped, whatever their rule (but an --allow rule). Loading
  // a list replaces the list of that name; the data path goes from the old
  // union of the lists to the new one in one store (blocklist.cpp).
  struct Blocklist {
    uint32_t slot;
    xt_blocklist list;
  };
  // loaded_unix: the version's time (the fleet's origin of it, a snapshot's
  // save: XT_BLOCKLIST_RESTORED), else now (XT_BLOCKLIST_HERE). by_fleet:
  // told by the fleet (XT_BLOCKLIST_BY_FLEET).
  Result<void> load_blocklist(const std::string& name, const std::vector<Cidr>& entries,
                              std::optional<uint64_t> loaded_unix = std::nullopt, bool by_fleet = false);
  // The kernel's id of the entries of the list in slot: a load makes them
  // anew, so a new id is a new load, whatever its version says.
  Result<uint32_t> blocklist_map_id(uint32_t slot) const;
  // The version recorded for the list in slot (the fleet's serve, which
  // told it as newer than the second it was loaded in).
  Result<void> set_blocklist_version(uint32_t slot, uint64_t loaded_unix);
  Result<void> del_blocklist(const std::string& name);
  Result<std::vector<Blocklist>> blocklists() const;
  // Whether address (a host prefix) is in the data path's union now.
  Result<bool> blocklisted(const Cidr& addr) const;
  // A list's prefixes, in the order loaded.
  Result<std::vector<Cidr>> blocklist_cidrs(uint32_t slot) const;

  // Snapshots (snapshot.h): records put in the tables by the control
  // program xt_restore (abi.h, XT_RESTORE_*), a batch at a time.
  struct Restored {
    uint64_t restored = 0, merged = 0, refused = 0, stale = 0;
  };
  // XT_RESTORE_CHARGE takes the live rule the records are of (a fleet's
  // charges, fleet.h).
  Result<Restored> restore_records(uint32_t kind, const std::vector<xt_slot>& records,
                                   const xt_rule* rule = nullptr);
  // Adds to a rule slot's counters, and to the global ones (CPU 0's share).
  Result<void> add_rule_stats(uint32_t id, const xt_rule_stats& add);
  Result<void> add_counters(const std::vector<xt_count>& add);

  Result<xt_meta> meta() const;
  Result<void> set_meta(const xt_meta& meta);
  int rules_fd() const { return rules_.get(); }

 private:
  State() = default;
  // Every map this state holds, with the name it has in the object and pins.
  std::array<std::pair<Fd*, const char*>, 29> named_maps() {
    return {{{&rule_text_, XT_MAP_RULE_TEXT},
             {&bans_, XT_MAP_BANS},
             {&block4_, XT_MAP_BLOCK4},
             {&block_hosts_, XT_MAP_BLOCK_HOSTS},
             {&block6_, XT_MAP_BLOCK6},
             {&blocklists_, XT_MAP_BLOCKLISTS},
             {&capture_, XT_MAP_CAPTURE},
             {&capture_budget_, XT_MAP_CAPTURE_BUDGET},
             {&redirect_, XT_MAP_REDIRECT},
             {&ports_, XT_MAP_PORTS},
             {&port_ranges_, XT_MAP_PORT_RANGES},
             {&events_, XT_MAP_EVENTS},
             {&events_cli_, XT_MAP_EVENTS_CLI},
             {&event_budget_, XT_MAP_EVENT_BUDGET},
             {&meta_, XT_MAP_META},
             {&rules_, XT_MAP_RULES},
             {&buckets_, XT_MAP_BUCKETS},
             {&tags_, XT_MAP_TAGS},
             {&marks_, XT_MAP_MARKS},
             {&hot_, XT_MAP_HOT},
             {&hot_bitmap_, XT_MAP_HOT_BITMAP},
             {&known_, XT_MAP_KNOWN},
             {&known_tags_, XT_MAP_KNOWN_TAGS},
             {&rule_cache_, XT_MAP_RULE_CACHE},
             {&rule_state_, XT_MAP_RULE_STATE},
             {&rule_stats_, XT_MAP_RULE_STATS},
             {&counters_, XT_MAP_COUNTERS},
             {&config_, XT_MAP_CONFIG},
             {&attach_, XT_MAP_ATTACH}}};
  }
  Result<void> map_config();
  // Makes the data path's union of `lists` (blocklist.cpp) in the set it
  // does not read, and switches to it.
  Result<void> switch_blocklists(const std::vector<std::vector<xt_block_entry>>& lists);
  Result<std::vector<xt_block_entry>> blocklist_entries(uint32_t slot) const;
  Result<int> open_list(uint32_t slot, Fd& opened, bpf_map_info& info) const;
  // xt_config.blocklists: which set the data path reads (0: none).
  uint32_t blocklists_word() const;
  void set_blocklists_word(uint32_t word);
  // What the data path needs to find rules with a match (abi.h): the port
  // range of a new match in the range table and the port map, and its
  // protocol's level bit, before its rule goes in; after a rule is gone,
  // what no rule needs any more is taken out. `rules` are the live rules
  // (after a deletion: those left).
  Result<void> prepare_match(const Cidr& cidr, const Match& match);
  Result<bool> tidy_matches(const std::vector<RuleEntry>& rules);  // whether a range went
  // Writes what differs between current (what the map holds) and next.
  Result<void> write_port_ranges(const std::vector<xt_port_range>& next, const std::vector<xt_port_range>& current);
  // Which rule slots hold a rule: those whose record (xt_rule_text) is not
  // empty; del_rule empties it. One batch read, not a walk of the rules.
  Result<std::vector<bool>> rule_slots_in_use() const;
  // put_rule's steps for a new rule once its match is prepared, and what
  // undoes a failed one: its record, and what only its match needed.
  Result<bool> add_prepared(const RuleSpec& spec, xt_rule rule, const xt_rule_key& key, uint32_t id,
                            const xt_config& cfg, uint32_t ifindex);
  void undo_failed_add(std::optional<uint32_t> id);
  Result<void> free_rule_text(uint32_t id);
  // Clears slot id for a new rule: counters and budget (ready_new_slots
  // freed the buckets the slot's last rule left); records the epoch the
  // new rule takes it at.
  Result<void> reset_rule_slot(uint32_t id, uint32_t epoch);
  // Points rule id's keys of xt_redirect at interface `ifindex` for the
  // kinds of drop its spec sends out (over_kinds_of) and empties the
  // others; then says whether any rule redirects (xt_config.redirects),
  // set before a first key is filled, cleared after a last is emptied (had:
  // the slot's rule redirected before, whose keys the kernel may have
  // emptied already).
  Result<void> set_redirects(uint32_t id, const RuleSpec& spec, uint32_t ifindex, bool had);
  // Every entry of the ban table, ended or not.
  Result<void> for_each_ban(const std::function<void(const xt_ban_key&, const xt_ban&)>& fn) const;
  // Removes the bans that have ended (at tick now), and clears
  // xt_config.bans once none is left.
  Result<void> tidy_bans(uint64_t now);
  // Records how the rule in slot id was written (xt_rule_text).
  Result<void> write_rule_text(uint32_t id, const RuleSpec& spec);
  // The rule of exactly key's prefix (not a shorter one that covers it).
  std::optional<xt_rule> rule_at(const xt_rule_key& key) const;
  // Brings rule's buckets written under an older version to its generation,
  // in the kernel (the control program xt_catch_up): the words of its
  // limits, and the words no limit of it uses of bare_too (a bit each).
  Result<void> catch_up_buckets(const xt_rule& rule, uint32_t bare_too);
  // What a replacement of old by rule needs (put_rule, catch_up_changes):
  // rule takes old's id, its next generation and the words of the windows
  // it continues (place_limits); then whether old's buckets are walked
  // before the swap (catch_up, the words no limit of old uses that rule's
  // limits will use brought up too: made_limits) and swept after it
  // (sweeps: another --per, no longer a limit, or an earlier such change
  // whose sweep did not finish).
  struct Replacement {
    bool sweeps = false, catch_up = false;
    uint32_t made_limits = 0;
  };
  static Replacement prepare_replacement(const xt_rule& old, xt_rule& rule);
  // Publishes the rules to the data path: a new epoch (invalidating every
  // per-CPU cache entry) and each family's longest rule prefix, both in one
  // atomic store: those of `rules`, or without them those published now
  // (which a rule added can only widen). With `at_least`, the longest
  // prefixes are at least those.
  Result<void> publish(const std::vector<RuleEntry>* rules, std::optional<Cidr> at_least = std::nullopt);
  // Frees the buckets of rule `id`, but those of per_len keep_per_len
  // (XT_SWEEP_ALL: all of them), in the kernel (the control program xt_sweep).
  // With catch_up (the rule of that id as it now is), the buckets it keeps
  // are brought to its generation in the same walk, as catch_up_buckets
  // would bring them. False: the data path kept winning the race for some
  // of them, which the next walk finds again.
  Result<bool> sweep_buckets(uint32_t id, uint32_t keep_per_len, const xt_rule* catch_up = nullptr);
  // The same for every bucket of each rule of ids, in one walk.
  Result<bool> sweep_rules(const std::vector<uint32_t>& ids);
  // The next slot ready_new_slots made ready, if it is still free.
  std::optional<uint32_t> take_ready_slot();

  // The control programs and their argument map: the test object's own for
  // from_object(), else loaded on first use. The walks (xt_clock,
  // xt_catch_up, xt_sweep), the ageing (xt_age) and xt_restore are loaded
  // apart, each with its own argument map, since a `rule add` uses only the
  // walks: the restore is ten times the instructions to verify (30 ms), and
  // the ageing's loops over the hot cache's bitmap took the verifier 0.1 s
  // (serve runs it every 30 s, from the one it loaded).
  struct Control {
    Skeleton owner;  // when this state loaded them
    int clock = -1, catch_up = -1, sweep = -1, age = -1, restore = -1, params = -1, restore_in = -1, catch_up_in = -1;
  };
  enum class Controls { Walks, Age, Restore };
  Result<const Control*> control(Controls which = Controls::Walks) const;
  Result<xt_control> run_control(const Control& c, int prog, const xt_control& params, const std::string& what) const;
  // Runs a walk of the table (xt_catch_up, xt_sweep) again while it lost a
  // race to the data path (xt_control.contended), eight rounds at most:
  // false if the last still lost one.
  Result<bool> run_rounds(const Control& c, int prog, const xt_control& params, const std::string& what) const;

  std::string pin_dir_;
  std::function<void()> step_hook_;
  std::vector<uint32_t> ready_;  // ready_new_slots', the next to take last
  // catch_up_changes': by rule id, the generation its buckets were brought
  // to and the words no limit used that were brought up too.
  struct CaughtUp {
    uint8_t gen = 0;
    uint32_t bare = 0;
  };
  std::map<uint32_t, CaughtUp> caught_up_;
  mutable std::optional<Control> control_, age_control_, restore_control_;
  mutable std::optional<Skeleton> clock_;  // the clock program alone, for now() without control_
  Fd rules_, buckets_, tags_, marks_, hot_, hot_bitmap_, known_, known_tags_, rule_cache_, rule_state_, rule_stats_, counters_, config_, attach_;
  Fd events_, events_cli_, event_budget_, meta_, rule_text_, ports_, port_ranges_, redirect_, capture_, capture_budget_, bans_;
  Fd block4_, block_hosts_, block6_, blocklists_;
  // A state without pins (from_object: the tests) keeps its lists' maps here.
  std::map<uint32_t, Fd> unpinned_lists_;
  uint32_t capture_reasons_ = 0;  // what start_capture asked for, until stop_capture
  // xt_config mapped into memory: where the published word is stored.
  std::shared_ptr<void> config_mem_;
};

}  // namespace xt
