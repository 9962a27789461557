/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The per-CPU hot cache: a source known to be over its limit until some
 * tick (or denied) is dropped at the start of classify, without a rule or
 * bucket lookup; its drops reach its bucket's counter later.
 */
#ifndef XTHROTTLE_HOT_BPF_H
#define XTHROTTLE_HOT_BPF_H

#include "maps.bpf.h"
#include "keys.h"

static __always_inline int xt_hot_is(const struct xt_hot *hot, const struct xt_pkt *pkt)
{
	return hot->family == pkt->family && xt_load64(hot->addr) == xt_load64(pkt->addr) &&
	       xt_load64(hot->addr + 8) == xt_load64(pkt->addr + 8);
}

/* Whether a hot slot's drops (filled at epoch `filled`) belong to the rule
 * that has slot rule_id now: the rule took the slot at or before that epoch
 * (a rule keeps its id when it is replaced, and its buckets with it). */
static __always_inline int xt_hot_owner_is_current(__u32 rule_id, __u32 filled)
{
	const struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &rule_id);
	return st && (__s32)(filled - st->created_epoch) >= 0;
}

/* Adds a hot slot's pending drops to its source's bucket counter, whatever
 * has changed since (counters never go backwards), unless the rule id has
 * passed to another rule meanwhile: that rule's buckets are not the source's.
 * A global function (see xt_send_event): taken when a slot changes hands. */
__attribute__((noinline)) int xt_hot_flush(struct xt_hot *hot, __u32 epoch)
{
	if (!hot || !hot->pending)
		return 0;
	int flushed = 0;
	if (hot->epoch == epoch || xt_hot_owner_is_current(hot->rule_id, hot->epoch)) {
		struct xt_pkt src = {.family = hot->family};
		__builtin_memcpy(src.addr, hot->addr, sizeof(src.addr));
		struct xt_bucket_key key;
		xt_bucket_key_for(&src, hot->rule_id, hot->per_len, &key);
		struct xt_bucket *b = bpf_map_lookup_elem(&xt_buckets, &key);
		if (b) {
			__sync_fetch_and_add(&b->dropped_packets, hot->pending);
			flushed = 1;
		}
	}
	hot->pending = 0;
	return flushed;
}

/* Remember that pkt's source is dropped for `reason` until tick `until`. A
 * slot still serving another flooding source (valid, and hit within the last
 * two ticks) is left to it: two heavy sources sharing a slot would otherwise
 * evict each other on every packet and both pay the slow path. */
static __always_inline void xt_hot_fill(struct xt_hot *hot, const struct xt_pkt *pkt, __u32 epoch,
					enum xt_reason reason, const struct xt_rule *rule, __u64 now, __u64 until)
{
	if (!xt_hot_is(hot, pkt) && hot->epoch == epoch && now < hot->until && (__u32)now - hot->last_hit <= 2)
		return;
	if (hot->pending)
		xt_hot_flush(hot, epoch);
	hot->family = pkt->family;
	hot->reason = reason;
	hot->per_len = rule->per_len;
	hot->epoch = epoch;
	__builtin_memcpy(hot->addr, pkt->addr, sizeof(hot->addr));
	hot->until = until;
	hot->rule_id = rule->id;
	hot->last_hit = (__u32)now;
}


/* The source's slot of this CPU's hot cache. */
static __always_inline struct xt_hot *xt_hot_slot(const struct xt_pkt *pkt)
{
	__u32 idx = XT_TOP_BITS(xt_hash_source(pkt), XT_HOT_BITS);
	return bpf_map_lookup_elem(&xt_hot, &idx);
}

/* Whether the slot holds the source, dropped until a tick still to come, as
 * of this epoch: then it is dropped without further ado. */
static __always_inline int xt_hot_drops(const struct xt_hot *hot, const struct xt_pkt *pkt, __u32 epoch, __u64 now)
{
	return hot && hot->epoch == epoch && now < hot->until && xt_hot_is(hot, pkt);
}

/* The hot cache dropped this source's packets, the last of them at
 * last_hit: they go to its bucket b (this one, unless a rule change moved
 * the source to another bucket since), before b meters the packet. */
static __always_inline void xt_hot_settle(struct xt_hot *hot, const struct xt_pkt *pkt, const struct xt_rule *rule,
					  struct xt_bucket *b, __u32 epoch)
{
	if (!hot || !hot->pending || !xt_hot_is(hot, pkt))
		return;
	const __u32 last_hit = hot->last_hit;
	if (hot->rule_id == rule->id && hot->per_len == rule->per_len &&
	    (hot->epoch == epoch || xt_hot_owner_is_current(rule->id, hot->epoch))) {
		__sync_fetch_and_add(&b->dropped_packets, hot->pending);
		hot->pending = 0;
		/* Another CPU may have recorded a later drop: never move it
		 * back, or the source could look released while still dropped. */
		if ((__s32)(last_hit - b->last_drop) > 0)
			b->last_drop = last_hit;
	} else {
		xt_hot_flush(hot, epoch);
	}
}

#endif /* XTHROTTLE_HOT_BPF_H */
