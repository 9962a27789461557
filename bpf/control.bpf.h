/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control programs: run by the controller through BPF_PROG_TEST_RUN,
 * never attached, for work on the maps that must be done inside the kernel
 * to be atomic with the data path (bringing buckets up to date), and to read
 * the program's clock. Their arguments and results are in xt_ctl.
 */
#ifndef XTHROTTLE_CONTROL_BPF_H
#define XTHROTTLE_CONTROL_BPF_H

#include "maps.bpf.h"
#include "gcra.h"

static __always_inline int xt_catch_up_word(__u64 *word, const struct xt_limit *l, const struct xt_limit *prev,
					    const struct xt_rule *r, __u64 now, struct xt_control *ctl)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		__u64 old = *word;
		if (xt_word_gen(old) == r->gen)
			return 0;
		__u64 next = xt_regen(old, l, prev, r->gen, r->prev_gen, r->replaced_at, now);
		if (__sync_val_compare_and_swap(word, old, next) == old)
			return 1;
	}
	ctl->contended++;
	return 0;
}

static long xt_catch_up_bucket(void *map __attribute__((unused)), const struct xt_bucket_key *key,
			       struct xt_bucket *b, void *unused __attribute__((unused)))
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	if (!ctl)
		return 1;
	const struct xt_rule *r = &ctl->rule;
	if (key->rule_id != r->id)
		return 0;
	const __u64 now = xt_now();
	int caught = xt_catch_up_word(&b->pkt_word, &r->pkt, &r->prev_pkt, r, now, ctl);
	caught |= xt_catch_up_word(&b->byte_word, &r->bytes, &r->prev_bytes, r, now, ctl);
	ctl->caught_up += caught;
	return 0;
}

/* Brings every bucket of rule xt_ctl's rule.id written under an older version
 * of the rule to its generation, the way the data path would on the
 * bucket's next packet: compare-and-swap on each word alone, so nothing the
 * data path does meanwhile is lost or given back, counters included. */
SEC("xdp")
int xt_catch_up(struct xdp_md *ctx __attribute__((unused)))
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	if (!ctl)
		return XDP_ABORTED;
	ctl->caught_up = ctl->contended = 0;
	bpf_for_each_map_elem(&xt_buckets, xt_catch_up_bucket, NULL, 0);
	return XDP_PASS;
}

/* Writes the program's clock into the first 8 bytes of the frame: the
 * controller runs it through BPF_PROG_TEST_RUN and reads them back, to learn
 * the tick rate and the current tick. */
SEC("xdp")
int xt_clock(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(__u64) > data_end)
		return XDP_ABORTED;
	__u64 now = xt_now();
	__builtin_memcpy(data, &now, sizeof(now));
	return XDP_PASS;
}

#endif /* XTHROTTLE_CONTROL_BPF_H */
