/* SPDX-License-Identifier: MIT */
/*
 * xthrottle kernel/user ABI: every struct, constant and map name that the XDP
 * program and the controller share. Nothing else crosses that boundary.
 *
 * Written with uapi types and explicit padding so it compiles as C for the BPF
 * target and as C++ for userspace with identical layouts; the static_asserts at
 * the end pin the sizes down.
 */
#ifndef XTHROTTLE_ABI_H
#define XTHROTTLE_ABI_H

#include <linux/types.h>

/* Bumped whenever a struct below changes layout, or a pinned map's flags
 * (libbpf reuses a pin only with the same flags). */
#define XT_ABI_VERSION 23

/* Map names. The BPF program declares its maps under exactly these names and
 * libbpf pins each one as <pin dir>/<name>; userspace derives pin paths from here. */
#define XT_MAP_RULES "xt_rules"
#define XT_MAP_BUCKETS "xt_buckets"
#define XT_MAP_TAGS "xt_bucket_tags"
#define XT_MAP_MARKS "xt_bucket_marks"
#define XT_MAP_HOT "xt_hot"
#define XT_MAP_HOT_BITMAP "xt_hot_bitmap"
#define XT_MAP_RULE_CACHE "xt_rule_cache"
#define XT_MAP_RULE_STATE "xt_rule_state"
#define XT_MAP_RULE_STATS "xt_rule_stats"
#define XT_MAP_COUNTERS "xt_counters"
#define XT_MAP_CONFIG "xt_config"
#define XT_MAP_ATTACH "xt_attach"
#define XT_MAP_EVENTS "xt_events"         /* read by `xthrottle serve` */
#define XT_MAP_EVENTS_CLI "xt_events_cli" /* read by `xthrottle events` */
#define XT_MAP_EVENT_BUDGET "xt_event_budget"
#define XT_MAP_META "xt_meta"
#define XT_MAP_KNOWN "xt_known"
#define XT_MAP_KNOWN_TAGS "xt_known_tags"
#define XT_MAP_PORTS "xt_ports"
#define XT_MAP_PORT_RANGES "xt_port_ranges"
/* The controller's own record of each rule as the operator wrote it (its
 * options as text, indexed by xt_rule.id): the data path never reads it, so
 * it is no part of struct xt_rule. XT_RULE_TEXT_SIZE bytes a slot. */
#define XT_MAP_REDIRECT "xt_redirect"
#define XT_MAP_CAPTURE "xt_capture"               /* read by `xthrottle capture` */
#define XT_MAP_CAPTURE_BUDGET "xt_capture_budget"
#define XT_MAP_BANS "xt_bans"
#define XT_MAP_BLOCK4 "xt_block4"
#define XT_MAP_BLOCK_HOSTS "xt_block_hosts"
#define XT_MAP_BLOCK6 "xt_block6"
#define XT_MAP_BLOCKLISTS "xt_blocklists"
#define XT_MAP_RULE_TEXT "xt_rule_text"
#define XT_RULE_TEXT_SIZE 256
#define XT_MAP_CONTROL "xt_ctl" /* not pinned */

/* The program's name as the kernel and libxdp report it. */
#define XT_PROG_NAME "xthrottle"

#define XT_MAX_RULES 4096

/* The bucket table holds this many sources unless `attach
 * --max-sources` says otherwise when the state is created. */
#define XT_DEFAULT_MAX_SOURCES 262144
#define XT_MIN_MAX_SOURCES 1024
#define XT_MAX_MAX_SOURCES (1 << 26)
/* The bucket table is set-associative: sets of XT_BUCKET_WAYS slots, a set
 * picked by the keyed hash of the bucket key; a set for every
 * XT_SOURCES_PER_SET sources of --max-sources (rounded up to a power of
 * two), so nearly twice as many slots as sources: a full table's sets
 * rarely fill. A set whose ways all hold tracked sources spills into the
 * next set; docs/design.md has what was measured. */
#define XT_BUCKET_WAYS 15
#define XT_SOURCES_PER_SET 8
/* A source whose bucket was not used for this long is untracked again: its
 * next packet goes through its rule's new-source budget (see README). */
#define XT_DEFAULT_IDLE_SECONDS 60
/* Default new-source budget of a limit rule, per second. */
#define XT_DEFAULT_NEW_RATE 1000

/* New and returning clients during a flood (docs/design.md, "New clients").
 * A limit rule answers a TCP SYN its new-source budget refuses with a
 * SYN-ACK whose acknowledgement number is a cookie; a real client's stack
 * answers that with a RST carrying the cookie (and resends its SYN at
 * once), which proves the address and admits it outside the budget.
 * Proofs sent a second, per rule, by default (--verify-rate): */
#define XT_DEFAULT_VERIFY_RATE 20000000
/* A cookie is good in the period of this many seconds it was made in, and
 * the next. */
#define XT_COOKIE_PERIOD_SECONDS 8
/* A source that proved its address is admitted for this long, whatever
 * --remember says: long enough for its SYN resent at once, or after a
 * retransmission timeout or two. (Not longer: a live host that a spoofed
 * SYN's SYN-ACK reaches answers with the RST too, and proves its address to
 * whoever spoofed it.) */
#define XT_PROOF_SECONDS 10
/* A source that passed traffic and was never throttled is known: admitted
 * outside the budget for --remember (default a day) after its last packet. */
#define XT_DEFAULT_REMEMBER_SECONDS 86400
/* A known source's entry is refreshed at most this often. */
#define XT_KNOWN_REFRESH_SECONDS 60
/* The table of known sources: sets of XT_KNOWN_WAYS entries, a cache line
 * each; an entry for every XT_KNOWN_SHARE sources of --max-sources (65,536
 * by default), at least XT_MIN_KNOWN. Every packet the new-source budget
 * refuses reads its fingerprints (8 bytes a set): the smaller they are, the
 * likelier that read hits the cache under a flood. */
#define XT_KNOWN_WAYS 4
#define XT_KNOWN_SHARE 4
#define XT_MIN_KNOWN 1024

/* Events: each ring buffer's size, and how many events a second the data
 * path emits at most (burst the same), so a flood cannot flood the log. */
#define XT_EVENTS_RING_BYTES (256 * 1024)
#define XT_EVENTS_PER_SECOND 100
/* A throttled source is released by its first packet that passes at least
 * this long after its last drop. */
#define XT_RELEASE_SECONDS 1

/* The hot cache: for each CPU, lines (one cache line each) of sources known
 * to be over their limit until some tick. 2^hot_bits lines a CPU for IPv4
 * sources, four 16-byte entries to a line: one entry for every source of
 * the bucket table (rounded up to a power of two), 2^XT_HOT_MIN_BITS lines
 * at least and 2^XT_HOT_MAX_BITS at most: 4 MiB a CPU for the default
 * table, so that a botnet of the table's size mostly finds room
 * (docs/design.md, "Attack scale", the eighth and ninth rounds). A quarter
 * as many lines for IPv6 sources, two 32-byte entries to a line. */
#define XT_HOT_V4_WAYS 4
#define XT_HOT_V6_WAYS 2
#define XT_HOT_V6_SHIFT 2 /* 2^(hot_bits - XT_HOT_V6_SHIFT) IPv6 lines a CPU */
#define XT_HOT_MIN_BITS 13
#define XT_HOT_MAX_BITS 22
/* Per-CPU cache of rule lookups, by blocks of addresses that no rule splits
 * and the packets' class: 1024 slots of 288 bytes a CPU (64 did while a
 * rule had no match; with thousands of rules over ports and prefixes a
 * spoofed flood thrashed them, docs/design.md "Matches"). */
#define XT_RULE_CACHE_BITS 10
#define XT_RULE_CACHE_SLOTS (1 << XT_RULE_CACHE_BITS)

/* Address families as stored in keys. A rule only ever matches sources of its
 * own family: the family is part of the LPM key, so ::/0 never covers IPv4. */
#define XT_FAMILY_V4 4
#define XT_FAMILY_V6 6

/* What a rule matches besides the source, from the least specific to the
 * most (docs/design.md, "Matches"): of two rules whose source prefixes are
 * equally long and which both fit a packet, the higher level wins; of two
 * port ranges at one level, the narrower. */
enum xt_match_level {
	XT_MATCH_ANY = 0,      /* every packet of the family */
	XT_MATCH_PROTO = 1,    /* --proto */
	XT_MATCH_PORT = 2,     /* --proto tcp|udp --port P|P-Q (destination port) */
	XT_MATCH_SYN = 3,      /* --syn: TCP SYN without ACK */
	XT_MATCH_SYN_PORT = 4, /* --syn --port */
	XT_MATCH_LEVELS
};

/* Bits the match fields add in front of the address in an LPM key: the
 * family, the level, the protocol, a pad byte, the port range. */
#define XT_LPM_MATCH_BITS 64

/* Key of the rule table (LPM trie): the match fields, all of them in the
 * prefix, then the source address, IPv4 in addr[0..3] with the rest zero.
 * prefixlen counts the match fields' bits too: 10.0.0.0/8 is prefixlen
 * 64 + 8. A rule without a protocol has proto 0 and ports 0; one without
 * ports has ports 0; --port P is the range P-P. A rule is its key. */
struct xt_rule_key {
	__u32 prefixlen;
	__u8 family;
	__u8 level;    /* enum xt_match_level */
	__u8 proto;    /* IP protocol number (IPv6: after the extension headers) */
	__u8 pad;
	__u16 port_lo; /* destination port range, host order, both ends in it */
	__u16 port_hi;
	__u8 addr[16];
};

/* The rules' port ranges, for the data path to find the ranges a
 * destination port is in without a scan: xt_ports maps each TCP and UDP
 * port to the narrowest range (an index of xt_port_ranges, 0: none) that
 * holds it, and each range names the narrowest one holding it (0: none).
 * The controller keeps ranges nested or apart (a range that overlaps
 * another without holding it or lying in it is refused) and at most
 * XT_MAX_PORT_NESTING deep, so the ranges holding a port are a chain the
 * data path walks from the narrowest. */
#define XT_MAX_PORT_NESTING 4
#define XT_PORT_SLOT_TCP 0
#define XT_PORT_SLOT_UDP 1
#define XT_PORTS_PER_ENTRY 4
/* xt_ports' index for a port of a slot (TCP or UDP). */
#define XT_PORTS_INDEX(slot, port) ((__u32)(slot) << 14 | (__u32)(port) >> 2)
#define XT_PORTS_ENTRIES (2 * 65536 / XT_PORTS_PER_ENTRY)
struct xt_ports {
	__u16 range[XT_PORTS_PER_ENTRY]; /* of ports 4k .. 4k+3 */
};
struct xt_port_range {
	__u16 lo, hi;
	__u16 parent; /* the narrowest range holding this one, 0: none */
	__u8 slot;    /* XT_PORT_SLOT_TCP or _UDP */
	__u8 used;    /* 1 while some rule has this range (a freed range keeps its fields) */
};
#define XT_MAX_PORT_RANGES XT_MAX_RULES /* ids 1..XT_MAX_PORT_RANGES */

enum xt_action {
	XT_ACT_LIMIT = 1, /* token buckets: packets and/or bytes */
	XT_ACT_ALLOW = 2, /* never limited */
	XT_ACT_DENY = 3,  /* always dropped */
};

enum xt_rule_flags {
	XT_RULE_DRY_RUN = 1 << 0,    /* count what would be dropped, pass it */
	/* The last replacement keyed the rule's buckets anew (another --per,
	 * or no longer a limit), and the walk that frees the old keys and
	 * brings the kept ones to this generation has not finished (a
	 * controller stopped in between): the next replacement brings every
	 * bucket of the rule up to date first, and walks again. Set and
	 * cleared by the controller, never by compiling a rule; the data path
	 * does not read it. */
	XT_RULE_REKEYED = 1 << 1,
	XT_RULE_VERIFY_TCP = 1 << 3, /* TCP sources the budget refuses may prove their address */
	XT_RULE_TOTAL = 1 << 4,      /* rule.total is in force, with the fair word */
	XT_RULE_TOTAL_BYTES = 1 << 5, /* rule.total counts bytes */
	/* --over ecn: an ECN-capable packet past half a limit's burst may be
	 * marked Congestion Experienced, and may use an overdraft of half a
	 * burst, marked (meter.h, xt_meter_mark, xt_ecn_keep); the limits'
	 * caps are 1.5 x their bursts. */
	XT_RULE_ECN = 1 << 6,
	/* The version before the last replacement had XT_RULE_ECN: its caps,
	 * prev[], hold its overdraft, which is no token (gcra.h, xt_regen).
	 * Set by the controller's place_limits, never by compiling a rule. */
	XT_RULE_PREV_ECN = 1 << 7,
};

/*
 * The program's clock is the kernel tick (jiffies): reading it is one load,
 * where bpf_ktime_get_ns() is a helper call costing more than the rest of the
 * fast path together (docs/design.md). Every limit is expressed in ticks.
 *
 * One limit, in exact integer arithmetic. A rate of N per T ticks is reduced
 * by g = gcd(N, T) to fill = N/g units per tick and cost = T/g units per packet
 * (per byte for a byte window, where N is the bits of the window and T is 8
 * times its ticks). cap = burst * cost. Nothing is rounded, so nothing drifts.
 *
 * A bucket is metered as a GCRA: its state is one 64-bit word holding the
 * "theoretical arrival time" TAT in units (fill per tick), the scaled time at
 * which it would be full again, in its upper 60 bits, and the generation of
 * the rule that wrote it in its lower 4 bits. The tokens available at scaled
 * time S = now * fill are cap - max(0, TAT - S). Differences are taken
 * modulo 2^60, so the word never overflows; they are unambiguous for an idle
 * time of up to 2^59 units, which the controller keeps above a year
 * (XT_MIN_HORIZON_SECONDS) by refusing rates whose fill is too large.
 */
struct xt_limit {
	__u64 fill;
	__u64 cost;
	__u64 cap;
};

#define XT_TAT_BITS 60
#define XT_GEN_BITS 4
#define XT_GEN_MAX ((1 << XT_GEN_BITS) - 1) /* generations cycle 1..15; 0 is a zeroed word */
/* Largest cap or fill the controller accepts. */
#define XT_MAX_SCALED (1ULL << 52)
#define XT_MIN_HORIZON_SECONDS (365ULL * 86400)
/* How far behind the tick a word was written at a reader's clock may be
 * (bucket.h, xt_debt): another CPU's clock a tick ahead, or this CPU stalled
 * (a vCPU descheduled) between reading the clock and metering. 4 s at
 * HZ=1000. A word further ahead is one left unwritten past the horizon. */
#define XT_SKEW_TICKS 4096

/* A limit rule holds up to this many limits (docs/design.md, "Windows"):
 * packet windows (--rate, given several times) and byte windows
 * (--bandwidth) together, each a GCRA over one word of the source's bucket;
 * a packet passes only if every one of them allows it. */
#define XT_MAX_LIMITS 3

/* Value of the rule table. */
struct xt_rule {
	__u32 id;     /* slot in the per-rule arrays; part of every bucket key */
	__u8 action;  /* enum xt_action */
	__u8 flags;   /* enum xt_rule_flags */
	__u8 per_len; /* one bucket per source masked to this many bits */
	__u8 family;
	__u8 gen;      /* bumped when the rule is replaced in place */
	__u8 prev_gen; /* gen before the last replacement */
	__u8 src_len;  /* the source prefix's length (the trie's key has it too) */
	__u8 level;    /* enum xt_match_level, as in the key */
	__u32 remember; /* seconds a known source is admitted outside new_src; 0: never */
	/* Bit p: limit[p] is in force (metered against the bucket's word[p]);
	 * of those, bytes_limits' bit p: it counts bytes, not packets. A
	 * window keeps its position when the rule is replaced (the controller
	 * places the new windows where the same ones were), so its state
	 * carries over. */
	__u8 limits;
	__u8 byte_limits;
	/* --ban-after and --ban-for, in seconds: a source over its limit
	 * without a break (bucket.throttled_since) for ban_after seconds is
	 * banned for ban_for (0: never). */
	__u16 ban_after;
	__u32 ban_for;
	struct xt_limit limit[XT_MAX_LIMITS];
	/* The limits under prev_gen: a bucket last touched under the previous
	 * version keeps the whole tokens word[p] had at tick replaced_at,
	 * converted to the new units of limit[p], and refills under the new
	 * limits from then on. A zero prev[p] (no window of the same kind was
	 * at p) starts word[p] full. */
	__u64 replaced_at;
	struct xt_limit prev[XT_MAX_LIMITS];
	/* How many packets from untracked sources the rule admits (and so how
	 * many buckets it creates) per time, shared by all its sources. */
	struct xt_limit new_src;
	/* How many proofs (SYN-ACKs) each CPU sends per time: its share of
	 * --verify-rate. */
	struct xt_limit proof;
	/* --total (XT_RULE_TOTAL): what the rule passes from all its sources
	 * together, packets or (XT_RULE_TOTAL_BYTES) bytes, its word in
	 * xt_rule_state; and the cost per unit of the fair word
	 * (word[XT_FAIR_WORD] of every bucket) when the fair share is the
	 * whole total: where the share starts when it comes into force, and
	 * where it goes out of force (docs/design.md, "Totals"). */
	struct xt_limit total;
	__u64 fair_start;
};

/* Totals with fair shares (docs/design.md, "Totals"). While a rule's total
 * is under pressure, the data path keeps a fair share: a rate every source
 * may claim, metered by the fair word of its bucket, a GCRA in units of
 * 2^XT_FAIR_SHIFT a tick whose cost per unit (the inverse of the share) is
 * xt_rule_state.fair_cost, with a tolerance of XT_FAIR_SECONDS. A packet
 * within its source's share (a claim) may take the total down to its last
 * token; while xt_rule_state.fair_quiet is not 0 (claims from full words
 * outrun the total), down to a quarter of its burst, and the last quarter only where
 * the word was full for fair_quiet before (a source sending under the
 * share); one
 * beyond its share only what is above half the burst, so the heaviest
 * sources give way first. The share is set again at most
 * XT_FAIR_STEPS_PER_SECOND times a second, and over 32 units of the total's refill at least (as rarely as
 * once a second for a small total), from what was claimed under it
 * (bucket.bpf.h, xt_fair_step). */
#define XT_FAIR_WORD (XT_MAX_LIMITS - 1)
#define XT_FAIR_SHIFT 32
/* The fair word's scaled clock wraps every 2^(XT_TAT_BITS - XT_FAIR_SHIFT)
 * ticks (74.6 hours at HZ=1000), far short of a limit's year: a word last
 * written a multiple of that ago, less a few seconds, reads as in debt,
 * and its source, within its share, was dropped as over the total while
 * the total was under pressure. serve writes every fair word older than
 * this again, as full, every hour (xt_catch_up's fair_only), so none gets
 * near the wrap. */
#define XT_FAIR_STALE_TICKS (1ULL << 26)
/* ... and so is one that reads as further ahead than any claim puts it
 * (the cap is a second): last written more than half a cycle ago (serve
 * down meanwhile), short of the wrap by this much at least. */
#define XT_FAIR_AHEAD_TICKS (1ULL << 24)
#define XT_FAIR_SECONDS 1
#define XT_FAIR_STEPS_PER_SECOND 50
/* The longest xt_rule_state.fair_quiet, in ticks (70 minutes at HZ=1000).
 * A word serve writes again as full is written this far back and more, so
 * that what it says of its source (quiet) still holds. */
#define XT_FAIR_QUIET_MAX_TICKS (1U << 22)

/* Key of the bucket table: one bucket per (rule, source masked to per_len). */
struct xt_bucket_key {
	__u32 rule_id;
	__u8 family;
	__u8 per_len;
	__u8 pad[2];
	__u8 addr[16] __attribute__((aligned(8))); /* read as 64-bit words: see xt_pkt */
};

/* A source's bucket (in a slot of the bucket table): one GCRA word for each
 * limit of its rule, and its counters. The words are updated with atomic
 * compare-and-swap, so a source whose packets arrive on several CPUs at once
 * shares one exact budget; a packet that is dropped writes nothing but a
 * counter. The counters are 32 bits (a slot stays one cache line with three
 * words): they wrap, and readers take differences modulo 2^32. */
struct xt_bucket {
	__u64 word[XT_MAX_LIMITS]; /* GCRA state of the rule's limit[p], see struct xt_limit */
	__u32 passed_packets;
	__u32 dropped_packets;  /* includes would-be drops of dry-run rules */
	__u32 throttled_since;  /* tick (low 32 bits, never 0) it started dropping; 0: not throttled */
	__u32 last_drop;        /* tick (low 32 bits) of its last drop */
};

/* Per-rule state, an array indexed by xt_rule.id. The data path writes the
 * new-source budget's word and the saturation fields; the controller writes
 * created_epoch when a rule takes the slot. */
struct xt_rule_state {
	__u64 new_word;        /* GCRA word of the rule's new-source budget */
	/* The rules epoch when the rule took this slot: per-CPU hot-cache
	 * slots filled at this epoch or later hold drops of this rule. */
	__u32 created_epoch;
	/* The new-source budget is saturated (untracked sources are being
	 * dropped) since this tick (low 32 bits, never 0); 0: it is not. */
	__u32 saturated_since;
	__u32 last_new_drop;   /* tick (low 32 bits) of the last new-source drop */
	/* While the share is in force and this is not 0: a claim takes the
	 * total's last quarter only from a fair word that was full this many
	 * ticks at least (a source sending under the share, which a quarter
	 * of the burst then waits for); any other claim takes down to that
	 * quarter. Raised while claims from full words are more than 90% of
	 * what the total refills, lowered while they are less than half
	 * (bucket.bpf.h, xt_fair_step). */
	__u32 fair_quiet;
	__u64 new_drops_at_start; /* the rule's new-source drops, all CPUs, when the saturation began */
	/* --total, written by the data path. */
	__u64 total_word;  /* GCRA word of the rule's total (a word of another generation: full) */
	__u64 fair_cost;   /* the fair word's cost per unit: the fair share in force; 0: none */
	__u32 fair_claims; /* units claimed within the fair share (wraps) */
	__u32 fair_seen;   /* fair_claims when the share was last set */
	__u32 fair_at;     /* tick (low 32 bits) the share was last set */
	__u32 fair_deep;   /* units claimed from the last quarter since the share was last set (a few may be lost) */
};

/* Per-rule counters, a per-CPU array indexed by xt_rule.id. */
struct xt_rule_stats {
	__u64 passed_packets;
	__u64 passed_bytes;
	__u64 dropped_packets;
	__u64 dropped_bytes;
	__u64 dryrun_packets; /* over a limit, passed because the rule is dry-run */
	__u64 dryrun_bytes;
	__u64 new_source_dropped_packets; /* untracked sources over the new-source budget (dry-run: would have been) */
	__u64 proof_word; /* not a counter: GCRA word of this CPU's share of the rule's proofs */
	__u64 redirected_packets; /* of the dropped ones: sent out another interface instead (--over redirect) */
	__u64 redirected_bytes;
	__u64 marked_packets; /* of the passed ones: marked Congestion Experienced (--over ecn) */
	__u64 marked_bytes;
};

/* Why a packet got its verdict: index of the per-CPU xt_counters array. */
enum xt_reason {
	XT_PASS_LIMIT = 0,   /* within its limit rule's budget */
	XT_PASS_ALLOW,       /* allow rule */
	XT_PASS_DRY_RUN,     /* over a limit (or new-source budget) of a dry-run rule */
	XT_PASS_UNMATCHED,   /* IP source that no rule covers */
	XT_PASS_NON_IP,      /* not IPv4/IPv6 (ARP, LLDP, ...) */
	XT_DROP_LIMIT,       /* over its rule's limit */
	XT_DROP_DENY,        /* deny rule */
	XT_DROP_MALFORMED,   /* runt, truncated or invalid IP header, > 2 VLAN tags */
	XT_DROP_NO_STATE,    /* the bucket table refused an insert (-ENOMEM under churn) */
	XT_DROP_NEW_SOURCE,  /* untracked source over its rule's new-source budget */
	XT_DROP_TOTAL,       /* within its own limits, over its rule's total (beyond its fair share) */
	XT_DROP_BANNED,      /* a banned source (xthrottle ban add) */
	XT_DROP_BLOCKLISTED, /* a source in a blocklist (xthrottle blocklist load) */
	XT_REASONS
};

/* More counters, in the same per-CPU array after the reasons (packets only). */
enum xt_counter {
	XT_EVENTS_SENT = XT_REASONS, /* events written to serve's ring */
	XT_EVENTS_SUPPRESSED,        /* events over XT_EVENTS_PER_SECOND, not written */
	XT_SOURCES_ADMITTED,         /* buckets created */
	XT_EVENTS_LOST,              /* events serve's ring had no room for (serve down or behind) */
	XT_SOURCES_EVICTED,          /* buckets a newcomer took the slot of (idle, or least recently used) */
	XT_PROOFS_SENT,              /* SYN-ACKs with a cookie sent to TCP sources the budget refused */
	XT_PROOFS_PASSED,            /* RSTs that carried a good cookie: the source proved its address */
	XT_ADMITTED_BY_PROOF,        /* sources admitted outside the budget, having proved their address */
	XT_ADMITTED_BY_MEMORY,       /* sources admitted outside the budget, known from earlier good behaviour */
	XT_KNOWN_RECORDED,           /* entries written to the known table (new ones and refreshes) */
	XT_REDIRECTED,               /* packets a rule would drop, sent out another interface (--over redirect) */
	XT_CAPTURED,                 /* packets sampled for `xthrottle capture` */
	XT_CAPTURE_SUPPRESSED,       /* packets capture would have taken, over its sampling rate */
	XT_MARKED,                   /* passed packets marked Congestion Experienced (--over ecn) */
	XT_DROPPED_WITHOUT_RULE,     /* packets banned or blocklisted while no rule covers them (no rule's drops) */
	XT_SOURCES_EVICTED_ACTIVE,   /* of XT_SOURCES_EVICTED, sources used within the idle window (their sets full) */
	XT_COUNTERS
};

enum xt_event_type {
	XT_EVENT_THROTTLED = 1, /* a source started being dropped */
	XT_EVENT_RELEASED = 2,  /* it passed again, XT_RELEASE_SECONDS after its last drop */
	/* A rule's new-source budget started dropping untracked sources, and
	 * (told by its first admission at least XT_RELEASE_SECONDS after its
	 * last such drop) stopped: dropped_packets is what it dropped meanwhile. */
	XT_EVENT_NEW_SATURATED = 3,
	XT_EVENT_NEW_RECOVERED = 4,
	/* A source banned by its rule's --ban-after (throttled_ticks: how long
	 * it had been over its limit). */
	XT_EVENT_BANNED = 5,
};

/* One event in the rings. */
struct xt_event {
	__u64 tick;    /* the program's clock */
	__u32 type;    /* enum xt_event_type */
	__u32 rule_id;
	__u8 family;
	__u8 per_len;
	__u8 dry_run;  /* the rule only counts: nothing was really dropped */
	__u8 pad[5];
	__u8 addr[16]; /* the bucket's source (masked to per_len); zero for the NEW_ events */
	__u64 passed_packets;  /* the bucket's counters at the time */
	__u64 dropped_packets; /* NEW_RECOVERED: new-source drops during the saturation */
	__u64 throttled_ticks; /* RELEASED, NEW_RECOVERED: how long it lasted */
};

/* First reason that is a drop: reasons below it pass. */
#define XT_FIRST_DROP XT_DROP_LIMIT

struct xt_count {
	__u64 packets;
	__u64 bytes;
};

/* Settings the controller writes once, when it creates the state, and what
 * it publishes on every rule change. Array of one element, mmapable: the
 * controller stores the published word with one atomic 64-bit store, and
 * the data path reads it with one load, so no packet ever sees a new epoch
 * with the old longest prefixes or the reverse. */
struct xt_config {
	/* The published word: the rules epoch (the per-CPU caches are only
	 * trusted for the epoch they were filled in), and each family's
	 * longest rule prefix (every address in a block of that length has the
	 * same longest-prefix rule, so the rule cache keys on such blocks). */
	__u32 epoch;
	__u8 longest_v4;
	__u8 longest_v6;
	__u8 pad[2];
	__u32 hz;             /* kernel ticks per second, measured at creation */
	__u32 bucket_bits;    /* the bucket table has 2^bucket_bits sets */
	__u32 used_shift;     /* a slot's `used` stamp counts units of 2^used_shift ticks */
	/* XT_ABI_VERSION of the build that created the state. At this offset in
	 * every layout so far, so any build can tell which made a state. */
	__u32 abi_version;
	__u32 used_idle;      /* a slot not used for more units than this is untracked */
	__u32 max_sources;
	struct xt_limit events; /* XT_EVENTS_PER_SECOND in ticks */
	__u32 hot_bits;       /* each CPU has 2^hot_bits IPv4 lines in the hot cache (and a quarter as many IPv6) */
	__u32 known_bits;     /* the known table has 2^known_bits sets */
	/* Random, drawn when the state is created: the key of the hashes that
	 * place sources in the hot cache and the bucket table, so nobody who
	 * does not know it can aim addresses at chosen slots. */
	__u64 hash_key[2];
	/* Random too: the key of the cookies (a SipHash-2-4 key), so nobody
	 * who did not see the SYN-ACK can make the RST that proves an address. */
	__u64 cookie_key[2];
	/* Which match levels have rules, by IP protocol: bit 1 << level for
	 * XT_MATCH_PROTO and above (XT_MATCH_ANY needs none). A packet whose
	 * protocol has none here can only match rules without a match, and
	 * its transport header is not even read. `matches` is nonzero while any
	 * protocol has a bit. The controller sets a bit before the first rule
	 * of its level goes in and clears it after the last is gone. */
	__u8 proto_levels[256];
	__u32 matches;
	/* Nonzero while some rule sends what it drops out another interface
	 * (xt_redirect has an entry): until then a drop costs no redirect
	 * lookup. */
	__u32 redirects;
	/* `xthrottle capture`: until tick capture_until, a packet whose verdict
	 * is one of capture_reasons (a bit per enum xt_reason) under rule
	 * capture_rule (XT_CAPTURE_ANY_RULE: any) is sampled to xt_capture,
	 * its first capture_snaplen bytes at most, at most capture_limit's
	 * rate (its word in xt_capture_budget). capture_reasons 0: nobody
	 * captures, and a drop costs one test more. The controller writes the
	 * reasons last when it starts, first when it stops, and moves
	 * capture_until on while it reads, so a capture whose reader died
	 * stops by itself. */
	__u32 capture_reasons;
	__u32 capture_rule;
	__u32 capture_snaplen;
	__u32 pad3;
	__u64 capture_until;
	struct xt_limit capture_limit;
	/* Nonzero while the ban table may hold a ban (the controller sets it
	 * before the first goes in, and clears it once the table is empty):
	 * until then no packet looks there. */
	__u32 bans;
	/* Blocklists: 0 none loaded; else 1 + the set of the block maps
	 * the data path reads (the controller fills the other, then switches
	 * with this one store: a list is replaced at once). */
	__u32 blocklists;
};
#define XT_CAPTURE_ANY_RULE 0xffffffffu

/* Bans (xthrottle ban add CIDR --for DURATION): a banned source is dropped
 * outright until its ban ends, whatever its rule (but an --allow rule,
 * which always wins), the first of its packets on each CPU after a lookup
 * of the ban table, the rest by the hot cache. The table is an LPM trie:
 * a ban is a prefix. Its key: the family, three zero bytes, the address;
 * prefixlen counts those 32 bits too (XT_BAN_KEY_BITS + the prefix). */
#define XT_MAX_BANS 65536
/* Longest --ban-after (xt_rule.ban_after is 16 bits of seconds). */
#define XT_MAX_BAN_AFTER 65535
#define XT_BAN_KEY_BITS 32
struct xt_ban_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};
struct xt_ban {
	__u64 until;     /* tick it ends */
	__u64 since;     /* tick it began */
	__u32 prefixlen; /* its key's: so the data path can remove it once it has ended */
	__u32 rule;      /* id + 1 of the rule that made it (--ban-for); 0: `ban add`; XT_BAN_BY_FLEET, XT_BAN_BY_DELETED_RULE */
};
/* xt_ban.rule of a ban another host of the fleet told (serve --cluster). */
#define XT_BAN_BY_FLEET 0xffffffffu
/* xt_ban.rule of a ban whose rule was deleted since: its id may be another
 * rule's by now. */
#define XT_BAN_BY_DELETED_RULE 0xfffffffeu
/* Whether a ban was made by a rule's --ban-for (the rule's id: rule - 1). */
#define XT_BAN_BY_RULE(ban) ((ban).rule && (ban).rule < XT_BAN_BY_DELETED_RULE)
/* A hot-cache entry of a banned source: XT_HOT_DENIED with this per_len,
 * which no rule has; its drops are counted as XT_DROP_BANNED. */
#define XT_HOT_BANNED 0xff
/* Blocklists (xthrottle blocklist load NAME FILE): named sets of prefixes
 * whose sources are dropped outright, whatever their rule (but an --allow
 * rule). The data path reads the union of the lists, in one of two sets
 * (xt_config.blocklists): for IPv4 a bitmap of the 2^24 /24s, two bits
 * each (the whole /24 is listed; part of it is), 2^18 words of 64 /24s a
 * set, and a hash of the IPv4 addresses of the partly listed /24s
 * (prefixes longer than /24, each address of them); for IPv6 an LPM trie.
 * A source costs one array read unless its /24 is partly listed. Each
 * list's own entries are kept (a map the controller pins beside the
 * others, XT_MAP_BLOCKLISTS "_" slot) so the union can be made again when
 * another list is loaded or deleted. */
#define XT_MAX_BLOCKLISTS 16
#define XT_BLOCK4_WORDS (1u << 18)
/* A set's listed IPv4 addresses (of /24s listed in part). Their hash's
 * buckets are allocated with the map, list or no list: 16 bytes for each of
 * 2 * this, 32 MiB (128 MiB at 2^22, most of a default state's memory). */
#define XT_MAX_BLOCK_HOSTS (1u << 20)
#define XT_MAX_BLOCK6 (1u << 20)        /* a set's IPv6 prefixes */
#define XT_BLOCKLIST_NAME_SIZE 48
struct xt_block_word {
	__u64 whole; /* bit b: the /24 64 * word + b is listed whole */
	__u64 part;  /* ... partly: look its address up in xt_block_hosts */
};
struct xt_block_host {
	__u32 set;
	__u32 addr; /* as on the wire */
};
struct xt_block6_key {
	__u32 prefixlen; /* 32 (the set) + the prefix's length */
	__u32 set;
	__u8 addr[16];
};
/* One list, in xt_blocklists[slot] (used 0: a free slot). */
struct xt_blocklist {
	char name[XT_BLOCKLIST_NAME_SIZE];
	__u64 loaded_unix; /* when it was loaded, seconds since 1970 */
	__u32 entries;     /* its prefixes, IPv4 and IPv6 */
	__u32 used;        /* XT_BLOCKLIST_HERE, _BY_FLEET or _RESTORED */
};
/* xt_blocklist.used: loaded here (by hand, a rules file); told by the
 * fleet (serve --cluster), which a rules file that names no such list
 * leaves in place: it is another host's to delete; or put back here with
 * the version it had (a snapshot's list, an apply's undo), which the fleet
 * takes as that old version, never as newer than what serve saw before it.
 * Any of them nonzero: 0 is a free slot. */
#define XT_BLOCKLIST_HERE 1
#define XT_BLOCKLIST_BY_FLEET 2
#define XT_BLOCKLIST_RESTORED 3
/* An entry of a list, in its own map. */
struct xt_block_entry {
	__u8 family;
	__u8 len;
	__u8 pad[2];
	__u8 addr[16];
};

/* Longest sample, and the default snap length (a full-size Ethernet frame). */
#define XT_CAPTURE_MAX_SNAPLEN 1514
/* Default samples a second, and how long a capture lasts unless its reader
 * moves it on. */
#define XT_CAPTURE_DEFAULT_RATE 1000
#define XT_CAPTURE_LEASE_SECONDS 3

/* What goes ahead of each sample's bytes in xt_capture. */
/* xt_capture_meta.redirected of a SYN the new-source budget refused and
 * answered with a proof (a SYN-ACK, sent back: XDP_TX), sampled before it
 * is rewritten into the answer. */
#define XT_CAPTURE_PROVED 2

struct xt_capture_meta {
	__u64 tick;       /* the program's clock */
	__u32 rule_id;    /* XT_CAPTURE_ANY_RULE for none */
	__u8 reason;      /* enum xt_reason */
	__u8 redirected;  /* 1: sent out another interface instead (--over redirect); XT_CAPTURE_PROVED */
	__u8 link;        /* enum xt_link of the interface it arrived on */
	__u8 pad;
	__u32 ifindex;    /* the interface it arrived on */
	__u32 len;        /* the frame's length (of its first buffer) */
	__u32 caplen;     /* the bytes of it that follow */
	__u32 pad2;
};

/* A packet's class: what, besides its source, decides its rule. 0 when its
 * protocol has no match rules (then only rules without a match can apply);
 * else XT_CLASS_PROTO | the protocol, or, for a TCP or UDP port inside some
 * rule's range, XT_CLASS_RANGE | the narrowest such range; with
 * XT_CLASS_SYN for a TCP SYN without ACK where --syn rules exist. The hot
 * cache and the rule cache key on it with the source. */
#define XT_CLASS_SYN 0x8000
#define XT_CLASS_RANGE 0x4000
#define XT_CLASS_PROTO 0x2000
#define XT_CLASS_VALUE 0x1fff

/* The published word's parts. */
#define XT_PUB_EPOCH(w) ((__u32)(w))
#define XT_PUB_LONGEST_V4(w) ((__u8)((w) >> 32))
#define XT_PUB_LONGEST_V6(w) ((__u8)((w) >> 40))
#define XT_PUB_WORD(epoch, v4, v6) ((__u64)(__u32)(epoch) | (__u64)(__u8)(v4) << 32 | (__u64)(__u8)(v6) << 40)

/* What the controller records about itself; the data path never reads it.
 * Array of one element. */
struct xt_meta {
	char config_path[4096]; /* the config file last applied (PATH_MAX, NUL included), "" if none */
	__u8 config_sha256[32];
	__u64 applied_at;      /* unix seconds */
	/* Unused: the buckets the controller deleted, counted while the
	 * evictions were told from them (they are counted where they happen
	 * now); kept for the layout of the pinned map. */
	__u64 buckets_swept;
};

/* One entry of the hot cache: a source that is over its limit (or denied)
 * until tick `until`, for packets of one class (XT_CLASS_*), so its packets
 * of that class are dropped without looking up its rule or bucket. An
 * IPv4 source's entry is this slot of 16 bytes, address included; an IPv6
 * source's is two slots, this one (its address field unused) and the next,
 * which is the whole address. */
struct xt_hot {
	__u32 until;    /* low 32 bits of the tick the source is dropped until; with
			 * XT_HOT_FOREVER, the whole epoch it was filled in */
	__u16 epoch;    /* low 16 bits of the rules epoch it was filled in; valid only in that one */
	__u16 cls;      /* the class of the packets it drops */
	__u16 who;      /* the rule id (XT_HOT_RULE) and XT_HOT_USED, _V6, _DENIED, _FOREVER */
	__u8 per_len;
	__u8 pending;   /* drops not yet added to the bucket's counter */
	__u8 addr[4];   /* an IPv4 source's address */
};
#define XT_HOT_RULE 0x0fff   /* rule ids are below XT_MAX_RULES */
#define XT_HOT_V6 0x1000     /* an IPv6 source, else IPv4 */
#define XT_HOT_DENIED 0x2000 /* counted as XT_DROP_DENY, else XT_DROP_LIMIT */
#define XT_HOT_FOREVER 0x4000 /* dropped until the epoch changes */
#define XT_HOT_USED 0x8000   /* holds a source; 0: empty */

/* A line of the hot cache: four IPv4 entries (slots 0 to 3), or two IPv6
 * ones (slots 0 and 2, each address in the slot after). A source's entry
 * is in the line its keyed hash picks, or if that was full the other line
 * of its pair (index ^ 1), in its CPU's part of its family's lines: every
 * CPU's IPv4 lines, then every CPU's IPv6 lines. */
struct xt_hot_set {
	struct xt_hot slot[4];
};

/* One slot of the per-CPU rule cache: the result of the rule lookup for a
 * block of addresses (the source masked to its family's longest rule prefix),
 * a copy of the rule included, valid for one epoch. */
struct xt_rule_cache {
	__u32 epoch;
	__u8 family;
	__u8 len;   /* the block's prefix length */
	__u8 found; /* 0: no rule covers the block */
	__u8 pad;
	__u16 cls;  /* the class of the packets it is for */
	__u16 pad2[3];
	__u64 block[2]; /* the block's address as two host-order words */
	struct xt_rule rule;
};

/* Arguments and results of the control programs (xt_catch_up), which the
 * controller runs with BPF_PROG_TEST_RUN: array of one element, not pinned. */
struct xt_control {
	struct xt_rule rule; /* xt_catch_up: bring this rule's buckets to its generation */
	__u64 caught_up;     /* buckets it brought up to date */
	__u64 contended;     /* words it could not swap (contention): run it again */
	/* xt_sweep: free the slots of rule sweep_rule, but those whose per_len
	 * is keep_per_len (XT_SWEEP_ALL: keep none). */
	__u32 sweep_rule;
	__u32 keep_per_len;
	__u64 swept;         /* slots it freed */
	/* xt_restore: put the first restore_count records of xt_restore_in
	 * (a snapshot's, userspace/lib/snapshot.h) in the tables, as
	 * restore_kind says. */
	__u32 restore_count;
	__u32 restore_kind;  /* XT_RESTORE_BUCKETS, XT_RESTORE_KNOWN or XT_RESTORE_CHARGE */
	__u32 restored;      /* records put in a place of their own */
	__u32 merged;        /* buckets the table had already: the later TAT of each word kept (a charge: taken from) */
	__u32 refused;       /* no room (the set's ways all in use) */
	__u32 stale;         /* a charge's words of another generation than rule's (it was replaced meanwhile): left */
	__u64 aged;          /* xt_age: stamps older than the idle window set back to just past it */
	__u64 hot_aged;      /* xt_age: hot-cache entries whose hold ended long ago, given an end less long ago */
	/* xt_catch_up with fair_only: only the fair words of rule (a total's)
	 * of its generation that were last written XT_FAIR_STALE_TICKS ago or
	 * more are written again, as full as they were (bucket.bpf.h,
	 * xt_fair_refresh); nothing is converted. rule_epoch: the
	 * created_epoch of the rule's xt_rule_state when rule was read; the
	 * buckets of a rule that took its id since (whose words are its own
	 * limits') are left. */
	__u32 fair_only;
	__u32 rule_epoch;
	__u64 fair_refreshed; /* fair words written again */
	/* xt_sweep: bring the slots it keeps (of keep_per_len) to rule's
	 * generation as xt_catch_up does (rule.id is sweep_rule); caught_up
	 * counts them, and contended the words and the ways to free it lost
	 * every race for (run it again). */
	__u32 sweep_catch_up;
	/* xt_catch_up: the words (a bit each) that no limit of rule uses but
	 * its next version's does, brought to its generation too; the other
	 * such words are left (control.bpf.h, xt_catch_up_slot). */
	__u32 catch_up_bare;
	/* xt_catch_up with catch_up_set: not rule's buckets but those of each
	 * rule of rule_set, brought to the generation of that rule's version
	 * in xt_catch_up_in (struct xt_catch_up_rule), its words no limit uses
	 * as that entry's `bare` says. One walk of the table for the rules an
	 * apply changes. */
	__u32 catch_up_set;
	__u32 pad;
	/* The rules of a walk of many, a bit each (rule id / 64, bit id % 64):
	 * xt_sweep's with sweep_rule XT_SWEEP_SET (keep_per_len being
	 * XT_SWEEP_ALL: an apply's deletions, or the leftovers in the slots its
	 * new rules take), and xt_catch_up's with catch_up_set. */
	__u64 rule_set[XT_MAX_RULES / 64];
};
#define XT_SWEEP_ALL 0xffffffffu
#define XT_SWEEP_SET 0xffffffffu
/* xt_catch_up's rules with catch_up_set, at their ids: not pinned. */
#define XT_MAP_CATCH_UP "xt_catch_up_in"
struct xt_catch_up_rule {
	struct xt_rule rule; /* the version in the table: its buckets brought to its generation */
	__u32 bare;          /* as xt_control.catch_up_bare, for this rule */
	__u32 pad;
};
/* xt_restore's batch: records of xt_restore_in, not pinned. */
#define XT_MAP_RESTORE "xt_restore_in"
#define XT_RESTORE_BATCH 4096
/* What a record of xt_restore_in is:
 * - XT_RESTORE_BUCKETS: a source's slot (key and bucket, its words in the
 *   rule's current units and generation), found or claimed as a newcomer's;
 * - XT_RESTORE_KNOWN: a known-table entry: key.family and key.addr are the
 *   source, key.per_len how it is known (enum xt_known_how) and
 *   bucket.word[0] the tick it was last seen. */
#define XT_RESTORE_BUCKETS 1
#define XT_RESTORE_KNOWN 2
/* - XT_RESTORE_CHARGE: what other hosts of a fleet passed for a source of
 *   the rule xt_control.rule (a `--scope fleet` rule, userspace/lib/fleet.h):
 *   bucket.passed_packets packets are taken from each of the rule's packet
 *   windows of the source's bucket (found, or claimed as a newcomer's), into
 *   debt past empty of at most XT_CHARGE_DEBT_TICKS ticks' refill, so that
 *   what the hosts passed together is what one bucket would have passed. */
#define XT_RESTORE_CHARGE 3
#define XT_CHARGE_DEBT_TICKS (XT_SKEW_TICKS / 2)

/* A slot of the bucket table: a bucket key (the pad holding nothing) and
 * its bucket. family 0: empty. */
struct xt_slot {
	struct xt_bucket_key key;
	struct xt_bucket bucket;
};

/* A set of the bucket table, the value of its array. */
struct xt_bucket_set {
	struct xt_slot way[XT_BUCKET_WAYS];
};

/* A way's tag: the 16-bit fingerprint (keyed hash) of the key in the way, 0
 * if it is free, and the low 16 bits of when it was last metered, in units
 * of 2^used_shift ticks. One 32-bit word, so a way is claimed (or freed) by
 * compare-and-swap on both at once; `used` alone is a plain 16-bit store. */
union xt_way_tag {
	__u32 word;
	__u16 half[2]; /* XT_TAG_FP, XT_TAG_USED */
};
#define XT_TAG_FP 0
#define XT_TAG_USED 1

/* What says which slot of a set holds which source, in an array of its own
 * (one element, a cache line, a set): read after the set's marks (below)
 * and only where they hold the source's mark, so a source that is not
 * tracked costs a read of the marks, at most one of a dense array (8 bytes
 * a source), and no read of the table. A set whose ways all hold tracked
 * sources, or whose first ten do while the next set has a free or idle
 * way earlier (xt_newcomer_place), spills newcomers into the next set. */
struct xt_set_tags {
	union xt_way_tag way[XT_BUCKET_WAYS];
	/* When a newcomer of this set last went to the next set (this one full,
	 * or fuller: xt_newcomer_place): the `used` unit | XT_SPILLED, 0 if never. Once
	 * it is set, a source not found here is looked for there too, however
	 * long ago that was (a source there keeps its slot when it goes quiet,
	 * as one here does). */
	__u32 spilled;
};
#define XT_SPILLED 0x10000u

/* A set at a glance, in an array of its own (16 bytes a set, a quarter of
 * the tags'): read before the tags, so a source of a spoofed flood is most
 * often told untracked by a read that stays in the nearest caches. way[w]
 * is the 8-bit mark (another byte of the keyed hash, never 0) of the key
 * the data path last put in way w, written after the way's tag is claimed;
 * a way freed since keeps its mark, and `spilled` is never cleared. So a
 * key whose mark is in neither its home set nor (where the home set has
 * spilled) the next one is not in the table (but for one race, in
 * docs/design.md); one whose mark is found is looked for in the tags. */
struct xt_set_marks {
	__u8 way[XT_BUCKET_WAYS];
	__u8 spilled; /* 1 once a newcomer of this set went to the next set */
} __attribute__((aligned(8))); /* read as two 64-bit words, not byte by byte */

/* One entry of the known table: a source admitted outside its rule's
 * new-source budget until `seen` + the rule's --remember (or
 * XT_PROOF_SECONDS, for a proof). IPv4 sources are known by address, IPv6
 * ones by their /64, but under a rule that counts IPv6 sources by more than
 * /64 (--per 65 to 128), by that prefix (XT_KNOWN_V6_PREFIX): one known
 * there must not give every other prefix of its /64 a bucket of its own
 * outside the budget. family 0: empty. */
#define XT_KNOWN_V6_PREFIX 0x86
struct xt_known {
	/* The IPv4 address, or the first 8 bytes of the IPv6 one, as loaded
	 * from the packet; for XT_KNOWN_V6_PREFIX, a keyed hash of the prefix
	 * and its length (known.bpf.h), which no other state's key can place,
	 * so a snapshot does not keep it. */
	__u64 key;
	__u32 seen;  /* when, in seconds of the program's clock (tick / hz) */
	__u8 family; /* XT_FAMILY_V4, XT_FAMILY_V6 or XT_KNOWN_V6_PREFIX */
	__u8 how;    /* enum xt_known_how */
	/* A source that behaved and proved its address since: the proof's
	 * second less `seen`, + 1 (0: none; cleared whenever `seen` moves).
	 * Good for XT_PROOF_SECONDS, beside what behaving earned (which is
	 * left as it was: another rule may remember it longer). */
	__u16 proven;
};
enum xt_known_how {
	XT_KNOWN_BEHAVED = 1, /* passed traffic, and was never throttled */
	XT_KNOWN_PROVEN = 2,  /* answered a proof: known for XT_PROOF_SECONDS */
};
struct xt_known_set {
	struct xt_known way[XT_KNOWN_WAYS];
};
/* What says which way of a known set may hold a source, in an array of its
 * own (8 bytes a set, an eighth of the table): a 16-bit fingerprint of each
 * way's source (never 0), 0 if the way is empty. Read first, so a source
 * that is not known (a spoofed one) costs a read of a dense array that
 * stays in cache, not one of the table. */
struct xt_known_tags {
	__u16 fp[XT_KNOWN_WAYS];
};

/* What a rule does with the packets it would drop (--over): drop them, or
 * send them out another interface (--over redirect:IFACE) through the
 * device map xt_redirect, keyed by the rule's id and which of its drops
 * the packet is (enum xt_over_kind): the controller puts the interface at
 * the keys of the kinds the operator chose (--over-reasons), and a key with
 * no interface (none chosen, or the interface gone: the kernel empties the
 * key when its interface is removed) drops. */
enum xt_over_kind {
	XT_OVER_LIMIT = 0,      /* XT_DROP_LIMIT: over the rule's limits */
	XT_OVER_TOTAL = 1,      /* XT_DROP_TOTAL: over its total */
	XT_OVER_NEW_SOURCE = 2, /* XT_DROP_NEW_SOURCE: over its new-source budget */
	XT_OVER_DENY = 3,       /* XT_DROP_DENY: a deny rule's */
	XT_OVER_KINDS
};
#define XT_REDIRECT_KEY(rule_id, kind) ((__u32)(rule_id) * XT_OVER_KINDS + (__u32)(kind))
#define XT_REDIRECT_ENTRIES (XT_MAX_RULES * XT_OVER_KINDS)

/* Attachment records, written by `attach`, read by `status`. Interfaces are
 * named per network namespace, so the key carries the namespace's inode. */
struct xt_attach_key {
	__u64 netns_ino;
	__u32 ifindex;
	__u32 pad;
};

/* What the frames of an interface start with (set when the program is
 * loaded for it). */
enum xt_link {
	XT_LINK_ETHER = 0, /* an Ethernet header (Ethernet, veth, TAP, loopback, ...) */
	XT_LINK_IP = 1,    /* the IP header: no link layer (tun, WireGuard, ...) */
};

enum xt_mode {
	XT_MODE_AUTO = 0,
	XT_MODE_NATIVE = 1,
	XT_MODE_SKB = 2,
};

struct xt_attach_info {
	char ifname[16];
	__u32 prog_id;
	__u8 requested_mode; /* enum xt_mode */
	__u8 mode;           /* enum xt_mode the kernel gave */
	__u8 multiprog;      /* 1: libxdp dispatcher, 0: single program */
	__u8 link;           /* enum xt_link the program was loaded for */
	__u32 mtu;           /* the interface's MTU the program was loaded for */
	__u32 pad;
	__u64 attached_at;   /* unix seconds */
};

#define XT_MAX_ATTACH 256

#ifdef __cplusplus
#define XT_STATIC_ASSERT static_assert
#else
#define XT_STATIC_ASSERT _Static_assert
#endif
XT_STATIC_ASSERT(sizeof(struct xt_rule_key) == 28, "xt_rule_key layout");
XT_STATIC_ASSERT(sizeof(struct xt_limit) == 24, "xt_limit layout");
XT_STATIC_ASSERT(sizeof(struct xt_rule) == 256, "xt_rule layout");
XT_STATIC_ASSERT(sizeof(struct xt_bucket_key) == 24, "xt_bucket_key layout");
XT_STATIC_ASSERT(sizeof(struct xt_bucket) == 40, "xt_bucket layout");
XT_STATIC_ASSERT(sizeof(struct xt_rule_state) == 64, "xt_rule_state layout");
XT_STATIC_ASSERT(sizeof(struct xt_rule_stats) == 96, "xt_rule_stats layout");
XT_STATIC_ASSERT(sizeof(struct xt_config) == 416, "xt_config layout");
XT_STATIC_ASSERT(sizeof(struct xt_capture_meta) == 32, "xt_capture_meta layout");
XT_STATIC_ASSERT(sizeof(struct xt_ban_key) == 24, "xt_ban_key layout");
XT_STATIC_ASSERT(sizeof(struct xt_ban) == 24, "xt_ban layout");
XT_STATIC_ASSERT(__builtin_offsetof(struct xt_config, abi_version) == 20, "the ABI version never moves");
XT_STATIC_ASSERT(sizeof(struct xt_meta) == 4144, "xt_meta layout");
XT_STATIC_ASSERT(sizeof(struct xt_event) == 64, "xt_event layout");
XT_STATIC_ASSERT(sizeof(struct xt_hot) == 16, "xt_hot layout: four to a line");
XT_STATIC_ASSERT(sizeof(struct xt_hot_set) == 64, "xt_hot_set layout: one cache line");
XT_STATIC_ASSERT(sizeof(struct xt_rule_cache) == 288, "xt_rule_cache layout");
XT_STATIC_ASSERT(sizeof(struct xt_known_set) == 64, "xt_known_set layout: one cache line");
XT_STATIC_ASSERT(sizeof(struct xt_known_tags) == 8, "xt_known_tags layout");
XT_STATIC_ASSERT(sizeof(struct xt_slot) == 64, "xt_slot layout: one cache line");
XT_STATIC_ASSERT(sizeof(struct xt_set_tags) == 64, "xt_set_tags layout: one cache line");
XT_STATIC_ASSERT(sizeof(struct xt_set_marks) == 16, "xt_set_marks layout: four sets a cache line");
XT_STATIC_ASSERT(sizeof(struct xt_control) == sizeof(struct xt_rule) + 104 + XT_MAX_RULES / 8, "xt_control layout");
XT_STATIC_ASSERT(sizeof(struct xt_catch_up_rule) == sizeof(struct xt_rule) + 8, "xt_catch_up_rule layout");
XT_STATIC_ASSERT(sizeof(struct xt_ports) == 8, "xt_ports layout");
XT_STATIC_ASSERT(sizeof(struct xt_port_range) == 8, "xt_port_range layout");
XT_STATIC_ASSERT(XT_MAX_PORT_RANGES <= XT_CLASS_VALUE && XT_MAX_RULES - 1 <= XT_HOT_RULE, "classes and hot entries hold ids");
XT_STATIC_ASSERT(sizeof(struct xt_count) == 16, "xt_count layout");
XT_STATIC_ASSERT(sizeof(struct xt_attach_key) == 16, "xt_attach_key layout");
XT_STATIC_ASSERT(sizeof(struct xt_attach_info) == 40, "xt_attach_info layout");

#endif /* XTHROTTLE_ABI_H */
