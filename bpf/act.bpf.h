/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stage 4, act: what becomes of a packet once it is metered. One that
 * passes may release its source (an event, XT_RELEASE_SECONDS after its last
 * drop); one that fails throttles it (an event at the first drop), is
 * counted in its bucket, passes anyway under a dry-run rule, and is
 * otherwise dropped, its source remembered in the hot cache until the tick
 * its next token is due.
 */
#ifndef XTHROTTLE_ACT_BPF_H
#define XTHROTTLE_ACT_BPF_H

#include "maps.bpf.h"
#include "events.bpf.h"
#include "hot.bpf.h"
#include "meter.h"
#include "known.bpf.h"

/* The reason a metered packet is counted under. */
static __always_inline enum xt_reason xt_act(int conforms, struct xt_bucket *b, const struct xt_bucket_key *bkey,
					     const struct xt_rule *rule, const struct xt_config *cfg,
					     struct xt_hot_set *hot_set, __u32 hot_idx, struct xt_hot *hot,
					     const struct xt_pkt *pkt,
					     __u32 epoch, __u64 now,
					     __u32 pkts)
{
	if (conforms == 1) {
		__sync_fetch_and_add(&b->passed_packets, pkts);
		/* Released: passing again, a while after the last drop. Of the CPUs
		 * that see it, the one whose swap wins tells. */
		__u32 since = b->throttled_since;
		if (since && (__u32)now - b->last_drop >= cfg->hz * XT_RELEASE_SECONDS &&
		    __sync_val_compare_and_swap(&b->throttled_since, since, 0) == since)
			xt_emit(XT_EVENT_RELEASED, bkey, b, rule, now, (__u32)now - since);
		xt_behaved(pkt, rule, b, now);
		return XT_PASS_LIMIT;
	}
	__sync_fetch_and_add(&b->dropped_packets, pkts);
	b->last_drop = (__u32)now;
	/* Over the total: its own limits had room, so no hot-cache entry (the
	 * total's next tokens may be its). */
	if (conforms == XT_OVER_TOTAL)
		return rule->flags & XT_RULE_DRY_RUN ? XT_PASS_DRY_RUN : XT_DROP_TOTAL;
	if (!b->throttled_since && __sync_val_compare_and_swap(&b->throttled_since, 0, (__u32)now | 1) == 0)
		xt_emit(XT_EVENT_THROTTLED, bkey, b, rule, now, 0);
	if (rule->flags & XT_RULE_DRY_RUN)
		return XT_PASS_DRY_RUN;
	__u64 wait = xt_meter_wait(rule, b, now);
	if (wait)
		xt_hot_fill(hot_set, hot_idx, hot, pkt, epoch, 0, rule, now, wait == XT_NEVER ? XT_NEVER : now + wait);
	return XT_DROP_LIMIT;
}

/* A deny rule's packet: dropped (and its source remembered in the hot
 * cache for good), or passed and counted under a dry-run rule. */
static __always_inline enum xt_reason xt_act_deny(const struct xt_rule *rule, struct xt_hot_set *hot_set, __u32 hot_idx,
						  struct xt_hot *hot, const struct xt_pkt *pkt, __u32 epoch, __u64 now)
{
	if (rule->flags & XT_RULE_DRY_RUN)
		return XT_PASS_DRY_RUN;
	xt_hot_fill(hot_set, hot_idx, hot, pkt, epoch, 1, rule, now, XT_NEVER);
	return XT_DROP_DENY;
}

#endif /* XTHROTTLE_ACT_BPF_H */
