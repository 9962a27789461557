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

#include <linux/bpf.h> /* struct bpf_spin_lock */
#include <linux/types.h>

/* Bumped whenever a struct below changes layout. */
#define XT_ABI_VERSION 1

/* Map names. The BPF program declares its maps under exactly these names and
 * libbpf pins each one as <pin dir>/<name>; userspace derives pin paths from here. */
#define XT_MAP_RULES "xt_rules"
#define XT_MAP_BUCKETS "xt_buckets"
#define XT_MAP_RULE_STATS "xt_rule_stats"
#define XT_MAP_COUNTERS "xt_counters"
#define XT_MAP_ATTACH "xt_attach"

/* The program's name as the kernel and libxdp report it. */
#define XT_PROG_NAME "xthrottle"

#define XT_MAX_RULES 4096
/* Size of the per-source bucket table; a full table drops packets from sources
 * it cannot track (XT_DROP_NO_STATE) rather than letting them through unmetered. */
#define XT_DEFAULT_MAX_SOURCES 262144

/* Address families as stored in keys. A rule only ever matches sources of its
 * own family: the family is part of the LPM key, so ::/0 never covers IPv4. */
#define XT_FAMILY_V4 4
#define XT_FAMILY_V6 6

/* Bits the family byte adds in front of the address in an LPM key. */
#define XT_LPM_FAMILY_BITS 8

/* Key of the rule table (LPM trie): family byte, then the address, IPv4 in
 * addr[0..3] with the rest zero. prefixlen counts the family byte's bits too:
 * 10.0.0.0/8 is prefixlen 8 + 8. */
struct xt_rule_key {
	__u32 prefixlen;
	__u8 family;
	__u8 addr[16];
	__u8 pad[3];
};

enum xt_action {
	XT_ACT_LIMIT = 1, /* token buckets: packets and/or bytes */
	XT_ACT_ALLOW = 2, /* never limited */
	XT_ACT_DENY = 3,  /* always dropped */
};

enum xt_rule_flags {
	XT_RULE_DRY_RUN = 1 << 0,    /* count what would be dropped, pass it */
	XT_RULE_PKT_LIMIT = 1 << 1,  /* rule.pkt is in force */
	XT_RULE_BYTE_LIMIT = 1 << 2, /* rule.bytes is in force */
	XT_RULE_BW_BYTES = 1 << 3,   /* bandwidth was given in byte units (display only) */
};

/*
 * One token bucket's parameters, in exact integer arithmetic.
 *
 * A rate of N per P nanoseconds is reduced by g = gcd(N, P) to fill = N/g
 * scaled tokens per nanosecond and cost = P/g scaled tokens per packet (or per
 * byte for bandwidth, where P is 8e9 bit-ns per byte and N is bits per second).
 * Nothing is ever rounded, so nothing drifts: after t ns a bucket has gained
 * exactly t*N/P units. cap = burst*cost; fill_ns = ceil(cap/fill) is the time
 * that refills an empty bucket, so elapsed*fill never needs to exceed cap+fill
 * and cannot overflow however long a source stays idle. The controller rejects
 * limits with cap or fill above XT_MAX_SCALED.
 */
struct xt_limit {
	__u64 fill;
	__u64 cost;
	__u64 cap;
	__u64 fill_ns;
};

/* Largest cap or fill the controller accepts: leaves room for tokens + a full
 * refill (at most 2*cap + fill) in 64 bits. */
#define XT_MAX_SCALED (1ULL << 61)

/* Value of the rule table. */
struct xt_rule {
	__u32 id;       /* slot in xt_rule_stats, part of every bucket key */
	__u32 gen;      /* bumped when the rule is replaced in place */
	__u32 prev_gen; /* gen before the last replacement */
	__u8 action;    /* enum xt_action */
	__u8 flags;     /* enum xt_rule_flags */
	__u8 per_len;   /* one bucket per source masked to this many bits */
	__u8 family;
	struct xt_limit pkt;
	struct xt_limit bytes;
	/* Costs under prev_gen: a bucket last touched under the previous version
	 * keeps its whole tokens, converted to the new units. */
	__u64 prev_pkt_cost;
	__u64 prev_byte_cost;
	/* The limits as the operator wrote them, for listing. */
	__u64 rate_count;     /* packets ... */
	__u64 rate_period_ns; /* ... per this many ns */
	__u64 burst;          /* packets */
	__u64 bw_bits;        /* bits per second */
	__u64 burst_bytes;
};

/* Key of the bucket table: one bucket per (rule, source masked to per_len). */
struct xt_bucket_key {
	__u32 rule_id;
	__u8 family;
	__u8 per_len;
	__u8 pad[2];
	__u8 addr[16];
};

/* Value of the bucket table. Every field is read and written under lock, so a
 * source whose packets arrive on several CPUs at once shares one exact budget. */
struct xt_bucket {
	struct bpf_spin_lock lock;
	__u32 gen;          /* rule gen the tokens are expressed in */
	__u64 last_ns;      /* clock at the last refill; never moves backwards */
	__u64 pkt_tokens;   /* scaled, see struct xt_limit */
	__u64 byte_tokens;  /* scaled, see struct xt_limit */
	__u64 passed_packets;
	__u64 dropped_packets; /* includes would-be drops of dry-run rules */
};

/* Per-rule counters, a per-CPU array indexed by xt_rule.id. */
struct xt_rule_stats {
	__u64 passed_packets;
	__u64 passed_bytes;
	__u64 dropped_packets;
	__u64 dropped_bytes;
	__u64 dryrun_packets; /* over the limit, passed because the rule is dry-run */
	__u64 dryrun_bytes;
};

/* Why a packet got its verdict: index of the per-CPU xt_counters array. */
enum xt_reason {
	XT_PASS_LIMIT = 0,  /* within its limit rule's budget */
	XT_PASS_ALLOW,      /* allow rule */
	XT_PASS_DRY_RUN,    /* over the limit of a dry-run rule */
	XT_PASS_UNMATCHED,  /* IP source that no rule covers */
	XT_PASS_NON_IP,     /* not IPv4/IPv6 (ARP, LLDP, ...), or VLAN tags deeper than 2 */
	XT_DROP_LIMIT,      /* over its rule's limit */
	XT_DROP_DENY,       /* deny rule */
	XT_DROP_MALFORMED,  /* runt frame, truncated or invalid IP header */
	XT_DROP_NO_STATE,   /* bucket table full: source could not be tracked */
	XT_REASONS
};

/* First reason that is a drop: reasons below it pass. */
#define XT_FIRST_DROP XT_DROP_LIMIT

struct xt_count {
	__u64 packets;
	__u64 bytes;
};

/* Attachment records, written by `attach`, read by `status`. Interfaces are
 * named per network namespace, so the key carries the namespace's inode. */
struct xt_attach_key {
	__u64 netns_ino;
	__u32 ifindex;
	__u32 pad;
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
	__u8 pad;
	__u64 attached_at;   /* unix seconds */
};

#define XT_MAX_ATTACH 256

#ifdef __cplusplus
#define XT_STATIC_ASSERT static_assert
#else
#define XT_STATIC_ASSERT _Static_assert
#endif
XT_STATIC_ASSERT(sizeof(struct xt_rule_key) == 24, "xt_rule_key layout");
XT_STATIC_ASSERT(sizeof(struct xt_limit) == 32, "xt_limit layout");
XT_STATIC_ASSERT(sizeof(struct xt_rule) == 136, "xt_rule layout");
XT_STATIC_ASSERT(sizeof(struct xt_bucket_key) == 24, "xt_bucket_key layout");
XT_STATIC_ASSERT(sizeof(struct xt_bucket) == 48, "xt_bucket layout");
XT_STATIC_ASSERT(sizeof(struct xt_rule_stats) == 48, "xt_rule_stats layout");
XT_STATIC_ASSERT(sizeof(struct xt_count) == 16, "xt_count layout");
XT_STATIC_ASSERT(sizeof(struct xt_attach_key) == 16, "xt_attach_key layout");
XT_STATIC_ASSERT(sizeof(struct xt_attach_info) == 32, "xt_attach_info layout");

#endif /* XTHROTTLE_ABI_H */
