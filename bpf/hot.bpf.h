/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hot cache: a source known to be over its limit until some tick (or
 * denied) is dropped at the start of classify, without a rule or bucket
 * lookup; its drops reach its bucket's counter later.
 *
 * Each CPU has its own part of one array (so no line is shared between
 * CPUs and nothing needs an atomic), of sets of XT_HOT_WAYS entries, a
 * cache line each: a source's entry is in the set the keyed hash of its
 * address picks, and a lookup reads that one line, if the set's bit in
 * xt_hot_bitmap says it may hold something. An entry holds the whole
 * address, so it never drops a source that is not the one it is for.
 */
#ifndef XTHROTTLE_HOT_BPF_H
#define XTHROTTLE_HOT_BPF_H

#include "maps.bpf.h"
#include "keys.h"
#include "gcra.h"
#include "bucket.bpf.h"

/* More drops than this in one entry, and the next packet takes the slow
 * path, which adds them to the bucket. */
#define XT_HOT_PENDING_MAX 0xff
/* A wait longer than this many ticks is cached for this long only; the
 * slow path then caches the rest. The entry's tick is 32 bits: an entry is
 * live only while its tick is at most this far ahead, so one that outlived
 * its tick does not look live again when the 32 bits wrap (2^31 ticks
 * later), except in the last 2^24 ticks of every 2^32 — and the entry's own
 * source empties it when it next gets past it (xt_hot_settle). */
#define XT_HOT_MAX_WAIT (1u << 24)

/* An entry's family bits for a source of pkt's family. */
static __always_inline __u16 xt_hot_family(const struct xt_pkt *pkt)
{
	return XT_HOT_USED | (pkt->family == XT_FAMILY_V6 ? XT_HOT_V6 : 0);
}

static __always_inline int xt_hot_is(const struct xt_hot *hot, const struct xt_pkt *pkt)
{
	return (hot->who & (XT_HOT_USED | XT_HOT_V6)) == xt_hot_family(pkt) && hot->cls == pkt->cls &&
	       xt_load64(hot->addr) == xt_load64(pkt->addr) && xt_load64(hot->addr + 8) == xt_load64(pkt->addr + 8);
}

/* The index of the set of the source and its packet's class in this CPU's
 * part of the hot cache. */
static __always_inline __u32 xt_hot_index(const struct xt_pkt *pkt, const struct xt_config *cfg)
{
	const __u32 bits = cfg->hot_bits & 31; /* 13 to 22 (XT_HOT_MIN_SETS; hot_bits_for at 2^26 sources) */
	return bpf_get_smp_processor_id() << bits | XT_TOP_BITS(xt_hash_source(cfg->hash_key, pkt, pkt->cls), bits);
}

/* The word of xt_hot_bitmap holding set idx's bit (1 << (idx & 63)): set
 * while the set may hold an entry that drops its source or has drops to
 * settle. A lookup reads the set's line only if the bit is set, so a source
 * of a spoofed flood, never in the cache, costs a read of the bitmap (2 KiB
 * a CPU for the default table: it stays in the nearest cache) instead of a
 * line of the cache (1 MiB a CPU: a miss). */
static __always_inline __u64 *xt_hot_bits(__u32 idx)
{
	__u32 word = idx >> 6;
	return bpf_map_lookup_elem(&xt_hot_bitmap, &word);
}

/* The entry of set holding pkt's source, or NULL. */
static __always_inline struct xt_hot *xt_hot_find(struct xt_hot_set *set, const struct xt_pkt *pkt)
{
	if (!set)
		return NULL;
	/* One pointer with a computed offset, not one per way: the verifier
	 * then follows one path through the rest of the program, not two. */
	_Static_assert(XT_HOT_WAYS == 2, "xt_hot_find looks at two ways");
	__u32 way = xt_hot_is(&set->way[1], pkt);
	if (!way && !xt_hot_is(&set->way[0], pkt))
		return NULL;
	return &set->way[way & 1];
}

/* Whether an entry still drops its source at tick now, in this epoch. */
static __always_inline int xt_hot_live(const struct xt_hot *hot, __u32 epoch, __u64 now)
{
	return hot->epoch == epoch &&
	       ((hot->who & XT_HOT_FOREVER) || (__u32)(hot->until - (__u32)now - 1) < XT_HOT_MAX_WAIT);
}

/* Whether the source's entry drops this packet of pkts wire packets without
 * further ado. */
static __always_inline int xt_hot_drops(const struct xt_hot *hot, __u32 epoch, __u64 now, __u32 pkts)
{
	return hot && xt_hot_live(hot, epoch, now) && hot->pending + pkts <= XT_HOT_PENDING_MAX;
}

/* The tick of an entry's last drop: the low 16 bits it keeps, taken as the
 * latest such tick not after now, nor after the entry's own end. */
static __always_inline __u32 xt_hot_last_hit(const struct xt_hot *hot, __u64 now)
{
	__u32 last = (__u32)now - (__u16)((__u16)now - hot->last_hit);
	if (!(hot->who & XT_HOT_FOREVER) && (__s32)(last - hot->until) >= 0)
		last = hot->until - 1;
	return last;
}

/* The source's entry in set (index idx), or NULL. A set found holding
 * nothing live nor any drops to settle has its bit cleared: it is not read
 * again until filled. */
static __always_inline struct xt_hot *xt_hot_lookup(struct xt_hot_set *set, __u32 idx, const struct xt_pkt *pkt,
						    __u32 epoch, __u64 now)
{
	__u64 *bits = xt_hot_bits(idx);
	const __u64 bit = 1ull << (idx & 63);
	if (!set || !bits || !(*bits & bit))
		return NULL;
	struct xt_hot *hot = xt_hot_find(set, pkt);
	if (!hot && !set->way[0].pending && !set->way[1].pending && !xt_hot_live(&set->way[0], epoch, now) &&
	    !xt_hot_live(&set->way[1], epoch, now)) {
		/* This CPU's part: no other writer. The spent entries are
		 * emptied too: a fill, which does not look for the source's
		 * own entry while the bit is clear, must not leave a second. */
		set->way[0].who = 0;
		set->way[1].who = 0;
		*bits &= ~bit;
	}
	return hot;
}

/* Whether an entry's drops (filled at epoch `filled`) belong to the rule
 * that has slot rule_id now: the rule took the slot at or before that epoch
 * (a rule keeps its id when it is replaced, and its buckets with it). */
static __always_inline int xt_hot_owner_is_current(__u32 rule_id, __u32 filled)
{
	const struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &rule_id);
	return st && (__s32)(filled - st->created_epoch) >= 0;
}

/* Adds an entry's pending drops to its source's bucket counter, whatever
 * has changed since (counters never go backwards), unless the rule id has
 * passed to another rule meanwhile: that rule's buckets are not the source's.
 * A global function (see xt_send_event): taken when an entry changes hands. */
__attribute__((noinline)) int xt_hot_flush(struct xt_hot *hot, __u32 epoch, __u64 now)
{
	if (!hot || !hot->pending)
		return 0;
	int flushed = 0;
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	const __u32 rule_id = hot->who & XT_HOT_RULE;
	if (cfg && hot->per_len != XT_HOT_BANNED && (hot->epoch == epoch || xt_hot_owner_is_current(rule_id, hot->epoch))) {
		struct xt_pkt src = {.family = hot->who & XT_HOT_V6 ? XT_FAMILY_V6 : XT_FAMILY_V4};
		__builtin_memcpy(src.addr, hot->addr, sizeof(src.addr));
		struct xt_bucket_key key;
		xt_bucket_key_for(&src, rule_id, hot->per_len, &key);
		struct xt_bucket *b = xt_bucket_find(&key, cfg, now);
		if (b) {
			__sync_fetch_and_add(&b->dropped_packets, hot->pending);
			const __u32 last = xt_hot_last_hit(hot, now);
			if ((__s32)(last - b->last_drop) > 0)
				b->last_drop = last;
			flushed = 1;
		}
	}
	hot->pending = 0;
	return flushed;
}

/* Counts a packet the hot cache dropped. */
static __always_inline void xt_hot_hit(struct xt_hot *hot, __u64 now, __u32 pkts)
{
	hot->pending += pkts;
	hot->last_hit = (__u16)now;
}

/* How a source is dropped, for xt_hot_fill. */
#define XT_FILL_LIMIT 0  /* over its limit */
#define XT_FILL_DENIED 1 /* by a deny rule */
#define XT_FILL_BANNED 2 /* banned (counted apart: per_len XT_HOT_BANNED) */

/* Remember that pkt's source is dropped (denied, or over its limit) until
 * tick `until` (XT_NEVER: until the epoch changes), in its own entry if it
 * has one, else in an entry that no longer drops anything. An entry still
 * dropping another source is left to it: two heavy sources sharing an entry
 * would otherwise evict each other on every packet and both pay the slow
 * path. */
static __always_inline void xt_hot_fill(struct xt_hot_set *set, __u32 idx, struct xt_hot *hot,
					const struct xt_pkt *pkt, __u32 epoch, int how, const struct xt_rule *rule,
					__u64 now, __u64 until)
{
	__u64 *bits = xt_hot_bits(idx);
	if (!set || !bits)
		return;
	if (!hot) {
		__u32 way = xt_hot_live(&set->way[0], epoch, now);
		if (way && xt_hot_live(&set->way[1], epoch, now))
			return;
		hot = &set->way[way & 1];
	}
	if (hot->pending)
		xt_hot_flush(hot, epoch, now); /* a former source's drops, or its own under an older rule or epoch */
	__u16 who = xt_hot_family(pkt) | (rule->id & XT_HOT_RULE);
	if (how != XT_FILL_LIMIT)
		who |= XT_HOT_DENIED;
	if (until == XT_NEVER)
		who |= XT_HOT_FOREVER;
	else if (until - now > XT_HOT_MAX_WAIT)
		until = now + XT_HOT_MAX_WAIT;
	__builtin_memcpy(hot->addr, pkt->addr, sizeof(hot->addr));
	hot->until = (__u32)until;
	hot->epoch = epoch;
	hot->last_hit = (__u16)now;
	hot->cls = pkt->cls;
	hot->per_len = how == XT_FILL_BANNED ? XT_HOT_BANNED : rule->per_len;
	hot->who = who;
	*bits |= 1ull << (idx & 63);
}

/* The hot cache dropped this source's packets: they go to its bucket b (this
 * one, unless a rule change moved the source to another bucket since),
 * before b meters the packet. hot is the source's entry, or NULL. An entry
 * spent and settled is emptied: it must not look live again when its tick
 * wraps (XT_HOT_MAX_WAIT). */
static __always_inline void xt_hot_settle(struct xt_hot *hot, const struct xt_rule *rule, struct xt_bucket *b,
					  __u32 epoch, __u64 now)
{
	if (!hot)
		return;
	if (hot->pending) {
		if ((hot->who & XT_HOT_RULE) == rule->id && hot->per_len == rule->per_len &&
		    (hot->epoch == epoch || xt_hot_owner_is_current(rule->id, hot->epoch))) {
			__sync_fetch_and_add(&b->dropped_packets, hot->pending);
			hot->pending = 0;
			/* Another CPU may have recorded a later drop: never move
			 * it back, or the source could look released while
			 * still dropped. */
			const __u32 last = xt_hot_last_hit(hot, now);
			if ((__s32)(last - b->last_drop) > 0)
				b->last_drop = last;
		} else {
			xt_hot_flush(hot, epoch, now);
		}
	}
	if (!xt_hot_live(hot, epoch, now))
		hot->who = 0;
}

#endif /* XTHROTTLE_HOT_BPF_H */
