/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Part of stage 3, meter: a source the program does not track yet gets a
 * bucket only if its rule's new-source budget admits it. The budget tells
 * when it saturates (a flood: new clients are turned away with it) and when
 * that ends.
 */
#ifndef XTHROTTLE_ADMIT_BPF_H
#define XTHROTTLE_ADMIT_BPF_H

#include "maps.bpf.h"
#include "events.bpf.h"
#include "gcra.h"

/* The slow paths of a rule's new-source budget, global functions that the
 * verifier checks once (see xt_send_event): a drop marks the tick (at most
 * once a tick, as the line is shared by every CPU) and may start a
 * saturation; an admission at least XT_RELEASE_SECONDS after the last drop
 * ends it. Of the CPUs that see either, the one whose swap wins tells. */
__attribute__((noinline)) int xt_new_source_dropped(const struct xt_rule *rule, __u64 now)
{
	if (!rule)
		return 0;
	__u32 id = rule->id;
	struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &id);
	if (!st)
		return 0;
	if (st->last_new_drop != (__u32)now)
		st->last_new_drop = (__u32)now;
	if (st->saturated_since || __sync_val_compare_and_swap(&st->saturated_since, 0, (__u32)now | 1) != 0)
		return 0;
	st->new_drops_at_start = xt_new_drops(id);
	xt_emit_budget(XT_EVENT_NEW_SATURATED, rule, now, 0, 0);
	return 1;
}

__attribute__((noinline)) int xt_new_source_admitted(const struct xt_rule *rule, __u64 now)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!rule || !cfg)
		return 0;
	__u32 id = rule->id;
	struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &id);
	if (!st)
		return 0;
	const __u32 since = st->saturated_since;
	/* Read before the swap: once it is done, another CPU may start the next
	 * saturation and write its own starting count. */
	const __u64 at_start = st->new_drops_at_start;
	/* The last drop may be another CPU's, its clock a tick ahead. */
	if (!since || !xt_ticks_since((__u32)now, st->last_new_drop, cfg->hz * XT_RELEASE_SECONDS, cfg->hz) ||
	    __sync_val_compare_and_swap(&st->saturated_since, since, 0) != since)
		return 0;
	const __u64 drops = xt_new_drops(id);
	xt_emit_budget(XT_EVENT_NEW_RECOVERED, rule, now, (__u32)now - since, drops > at_start ? drops - at_start : 0);
	return 1;
}

/* Takes one packet from the rule's new-source budget, exactly, across CPUs. */
static __always_inline int xt_take_new_source(const struct xt_rule *rule, __u64 now)
{
	__u32 id = rule->id;
	struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &id);
	if (!st)
		return 0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		__u64 old = st->new_word;
		__u64 word = xt_word_gen(old) == rule->gen ? old : xt_full_word(&rule->new_src, now, rule->gen);
		__u64 next;
		if (!xt_gcra(&rule->new_src, word, now, 1, &next))
			break; /* over budget: nothing written */
		if (__sync_val_compare_and_swap(&st->new_word, old, next) == old) {
			if (st->saturated_since)
				xt_new_source_admitted(rule, now);
			return 1;
		}
	}
	if (st->last_new_drop != (__u32)now || !st->saturated_since)
		xt_new_source_dropped(rule, now);
	return 0;
}

#endif /* XTHROTTLE_ADMIT_BPF_H */
