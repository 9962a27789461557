/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Part of stage 3, meter: the known table, sources admitted outside their
 * rule's new-source budget. A source gets there by passing traffic while
 * never throttled (known for the rule's --remember after its last such
 * packet) or by proving its address (prove.bpf.h). Sets of XT_KNOWN_WAYS
 * entries, a cache line each, shared by all CPUs: a lookup reads one line,
 * and is made only for a packet the budget refused.
 *
 * Entries are written without a lock. Two CPUs writing one way at once leave
 * one of their two entries, or at worst a mix of both, which can only make
 * some source known that was not: it is then admitted outside the budget and
 * held to its limits like any other. Nothing here ever drops a packet.
 */
#ifndef XTHROTTLE_KNOWN_BPF_H
#define XTHROTTLE_KNOWN_BPF_H

#include "maps.bpf.h"
#include "keys.h"
#include "count.bpf.h"

/* A source's key and set in the known table: IPv4 sources by address, IPv6
 * ones by /64 (what one host controls). */
static __always_inline struct xt_known_set *xt_known_set_of(const struct xt_pkt *pkt, const struct xt_config *cfg,
							    __u64 *key)
{
	__u32 v4;
	__builtin_memcpy(&v4, pkt->addr, 4);
	*key = pkt->family == XT_FAMILY_V4 ? v4 : xt_load64(pkt->addr);
	const __u32 bits = cfg->known_bits & 31; /* 8..24 (abi.h limits) */
	__u32 idx = XT_TOP_BITS(xt_hash_words(cfg->hash_key, 0x4b00 | pkt->family, *key, 0), bits ? bits : 1);
	return bpf_map_lookup_elem(&xt_known, &idx);
}

/* Seconds of the program's clock. */
static __always_inline __u32 xt_seconds(const struct xt_config *cfg, __u64 now)
{
	return cfg->hz ? (__u32)(now / cfg->hz) : 0;
}

/* Global functions (see xt_send_event): checked once by the verifier, and
 * called only off the fast path (a refused packet, a passed one). */

/* How pkt's source is known (enum xt_known_how), 0 if it is not, or no
 * longer: known for `remember` seconds after it was last seen, and a source
 * that proved its address for XT_PROOF_SECONDS at least. */
__attribute__((noinline)) int xt_recall(const struct xt_pkt *pkt, __u32 remember, __u64 now)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!pkt || !cfg)
		return 0;
	__u64 key;
	const struct xt_known_set *set = xt_known_set_of(pkt, cfg, &key);
	if (!set)
		return 0;
	const __u32 secs = xt_seconds(cfg, now);
	XT_UNROLL
	for (int w = 0; w < XT_KNOWN_WAYS; w++) {
		const struct xt_known *e = &set->way[w];
		if (e->family != pkt->family || e->key != key)
			continue;
		__u32 window = remember;
		if (e->how == XT_KNOWN_PROVEN && window < XT_PROOF_SECONDS)
			window = XT_PROOF_SECONDS;
		return secs - e->seen < window ? e->how : 0;
	}
	return 0;
}

/* Records that pkt's source is known `how` as of now: refreshes its entry
 * (at most every XT_KNOWN_REFRESH_SECONDS, unless `how` is news), else takes
 * a free way or the one least recently seen. Returns 1 if it wrote. */
static __always_inline int xt_remember_in(const struct xt_pkt *pkt, __u32 how, __u64 now)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!cfg)
		return 0;
	__u64 key;
	struct xt_known_set *set = xt_known_set_of(pkt, cfg, &key);
	if (!set)
		return 0;
	const __u32 secs = xt_seconds(cfg, now);
	__u32 victim = 0, oldest = 0;
	XT_UNROLL
	for (int w = 0; w < XT_KNOWN_WAYS; w++) {
		struct xt_known *e = &set->way[w];
		if (e->family == pkt->family && e->key == key) {
			if (e->how >= how && secs - e->seen < XT_KNOWN_REFRESH_SECONDS)
				return 0;
			e->seen = secs;
			if (e->how < how)
				e->how = how;
			xt_count_one(XT_KNOWN_RECORDED);
			return 1;
		}
		const __u32 age = e->family ? secs - e->seen : 0xffffffffu;
		if (age > oldest) {
			oldest = age;
			victim = w;
		}
	}
	struct xt_known *e = &set->way[victim & (XT_KNOWN_WAYS - 1)];
	/* Unmatchable while it is rewritten: family first, then the rest. */
	*(volatile __u8 *)&e->family = 0;
	asm volatile("" ::: "memory");
	e->key = key;
	e->seen = secs;
	e->how = how;
	asm volatile("" ::: "memory");
	*(volatile __u8 *)&e->family = pkt->family;
	xt_count_one(XT_KNOWN_RECORDED);
	return 1;
}

/* A source whose packet passed under rule, its bucket b: behaved if it has
 * passed more than one packet and is not throttled (never was, or was
 * released: XT_RELEASE_SECONDS without a drop), then known for the rule's
 * --remember from this packet on. Called for every packet that passes (a
 * global function, so the program's paths do not branch on it). */
__attribute__((noinline)) int xt_behaved(const struct xt_pkt *pkt, const struct xt_rule *rule, const struct xt_bucket *b,
					 __u64 now)
{
	if (!pkt || !rule || !b || !rule->remember || b->passed_packets < 2 || b->throttled_since)
		return 0;
	return xt_remember_in(pkt, XT_KNOWN_BEHAVED, now);
}

#endif /* XTHROTTLE_KNOWN_BPF_H */
