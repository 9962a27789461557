/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stage 3, meter: the source's bucket (the seen filter first, so an
 * untracked source costs no lookup; then the LRU table, or a new bucket if
 * the new-source budget admits it), and its limits taken with
 * compare-and-swap, exact across CPUs.
 */
#ifndef XTHROTTLE_BUCKET_BPF_H
#define XTHROTTLE_BUCKET_BPF_H

#include "maps.bpf.h"
#include "admit.bpf.h"
#include "keys.h"
#include "count.bpf.h"
#include "meter.h"
#include "seen.h"

/* Meters one packet against bucket b: compare-and-swap on each limit's word,
 * so concurrent CPUs share one exact budget. A packet that fails a limit
 * writes nothing. */
static __always_inline int xt_take(struct xt_bucket *b, const struct xt_rule *rule, __u64 now, __u64 len, __u32 pkts)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		__u64 pw = b->pkt_word, bw = b->byte_word;
		__u64 pn = pw, bn = bw;
		if (!xt_meter_words(rule, now, len, pkts, &pn, &bn))
			return 0;
		if (pn != pw && __sync_val_compare_and_swap(&b->pkt_word, pw, pn) != pw)
			continue;
		if (bn != bw && __sync_val_compare_and_swap(&b->byte_word, bw, bn) != bw) {
			/* Lost the byte word's race after taking a packet token:
			 * give that token back and try again. */
			if (rule->flags & XT_RULE_PKT_LIMIT)
				__sync_fetch_and_add(&b->pkt_word, -((pkts * rule->pkt.cost) << XT_GEN_BITS));
			continue;
		}
		return 1;
	}
	return 0; /* more contention than XT_CAS_TRIES rounds: count it as a drop */
}

/* Finds the bucket of a tracked source, or creates one if the rule's
 * new-source budget admits it. *stamp_slot is the source's seen-filter slot. */
static __always_inline struct xt_bucket *xt_bucket_get(const struct xt_bucket_key *key, const struct xt_rule *rule,
						       const struct xt_config *cfg, __u8 *stamp_slot, __u64 now,
						       enum xt_reason *why_not)
{
	struct xt_bucket *b = NULL;
	if (stamp_slot && xt_seen_recent(cfg, *stamp_slot, now))
		b = bpf_map_lookup_elem(&xt_buckets, key);
	if (!b) {
		if (!xt_take_new_source(rule, now)) {
			*why_not = XT_DROP_NEW_SOURCE;
			return NULL;
		}
		struct xt_bucket fresh;
		xt_bucket_init(&fresh, rule, now);
		/* NOEXIST: a bucket that went unused long enough to look
		 * untracked keeps its state; so does one another CPU just made. */
		if (bpf_map_update_elem(&xt_buckets, key, &fresh, BPF_NOEXIST) == 0)
			xt_count_one(XT_SOURCES_ADMITTED);
		b = bpf_map_lookup_elem(&xt_buckets, key);
		if (!b) { /* the LRU could not free an entry under churn (-ENOMEM) */
			*why_not = XT_DROP_NO_STATE;
			return NULL;
		}
	}
	if (stamp_slot) {
		__u8 stamp = xt_seen_stamp(cfg, now);
		if (*stamp_slot != stamp)
			*stamp_slot = stamp;
	}
	return b;
}


/* The bucket of the source of pkt under rule (its key in *key), found or
 * made: NULL if the source is untracked and not admitted, *why_not saying
 * why. */
static __always_inline struct xt_bucket *xt_source_bucket(const struct xt_pkt *pkt, const struct xt_rule *rule,
							  const struct xt_config *cfg, __u64 now,
							  struct xt_bucket_key *key, enum xt_reason *why_not)
{
	xt_bucket_key_for(pkt, rule->id, rule->per_len, key);
	__u64 hash = xt_hash_bucket(cfg->hash_key, key);
	/* line_bits is at least 6 and at most 26 (abi.h limits): the shifts are defined. */
	const __u32 line_bits = cfg->seen_line_bits & 31;
	__u32 line_idx = XT_TOP_BITS(hash, line_bits);
	struct xt_seen_line *line = bpf_map_lookup_elem(&xt_seen, &line_idx);
	__u8 *stamp_slot = line ? &line->stamp[XT_SEEN_SLOT(hash, line_bits)] : NULL;
	return xt_bucket_get(key, rule, cfg, stamp_slot, now, why_not);
}

#endif /* XTHROTTLE_BUCKET_BPF_H */
