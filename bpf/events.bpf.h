/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Telling: a source starts being dropped or is released, a rule's
 * new-source budget saturates or recovers. Events go to two ring buffers
 * (serve's and `xthrottle events`'s), at most XT_EVENTS_PER_SECOND.
 */
#ifndef XTHROTTLE_EVENTS_BPF_H
#define XTHROTTLE_EVENTS_BPF_H

#include "maps.bpf.h"
#include "count.bpf.h"
#include "gcra.h"

/* Sends an event, if the events' budget allows. A global function
 * (not inlined, not static), so the verifier checks it once rather than at
 * every place that tells something: its compare-and-swap loop would
 * otherwise multiply the paths it walks. */
__attribute__((noinline)) int xt_send_event(struct xt_event *e)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	__u64 *budget = bpf_map_lookup_elem(&xt_event_budget, &zero);
	if (!e || !cfg || !budget) /* a global function's pointer may be NULL, for the verifier */
		return 0;
	if (!xt_budget_take(&cfg->events, budget, e->tick)) {
		xt_count_one(XT_EVENTS_SUPPRESSED);
		return 0;
	}
	/* The CLI's ring is full whenever no `xthrottle events` reads it: only
	 * serve's ring says whether an event was delivered. */
	bpf_ringbuf_output(&xt_events_cli, e, sizeof(*e), 0);
	const int sent = bpf_ringbuf_output(&xt_events, e, sizeof(*e), 0) == 0;
	xt_count_one(sent ? XT_EVENTS_SENT : XT_EVENTS_LOST);
	return sent;
}

/* An event about a source's bucket: type | throttled ticks << 8 in `what`.
 * A global function too: inlined, its event took 64 bytes of the program's
 * own stack, whose 512 the deepest chains of calls fill. */
__attribute__((noinline)) int xt_emit(const struct xt_bucket_key *key, const struct xt_bucket *b,
				      const struct xt_rule *rule, __u64 now, __u64 what)
{
	if (!key || !b || !rule)
		return 0;
	struct xt_event e = {
		.tick = now,
		.type = (__u8)what,
		.rule_id = key->rule_id,
		.family = key->family,
		.per_len = key->per_len,
		.dry_run = (rule->flags & XT_RULE_DRY_RUN) != 0,
		.passed_packets = b->passed_packets,
		.dropped_packets = b->dropped_packets,
		.throttled_ticks = what >> 8,
	};
	__builtin_memcpy(e.addr, key->addr, sizeof(e.addr));
	return xt_send_event(&e);
}
#define XT_EMIT_WHAT(type, ticks) ((__u64)(ticks) << 8 | (type))

struct xt_sum {
	__u32 rule_id;
	__u64 sum;
};

static long xt_add_cpu_new_drops(__u32 cpu, struct xt_sum *sum)
{
	const struct xt_rule_stats *s = bpf_map_lookup_percpu_elem(&xt_rule_stats, &sum->rule_id, cpu);
	if (s)
		sum->sum += s->new_source_dropped_packets;
	return 0;
}

/* A rule's new-source drops so far, summed over every CPU: read only when
 * its budget starts or stops being saturated, which is rare. */
static __always_inline __u64 xt_new_drops(__u32 rule_id)
{
	struct xt_sum sum = {.rule_id = rule_id};
	bpf_loop(xt_cfg_nr_cpus, xt_add_cpu_new_drops, &sum, 0);
	return sum.sum;
}

/* An event about a rule's new-source budget. */
static __always_inline void xt_emit_budget(enum xt_event_type type, const struct xt_rule *rule, __u64 now,
					   __u64 ticks, __u64 dropped)
{
	struct xt_event e = {
		.tick = now,
		.type = type,
		.rule_id = rule->id,
		.family = rule->family,
		.dry_run = (rule->flags & XT_RULE_DRY_RUN) != 0,
		.dropped_packets = dropped,
		.throttled_ticks = ticks,
	};
	xt_send_event(&e);
}

#endif /* XTHROTTLE_EVENTS_BPF_H */
