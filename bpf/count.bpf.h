/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stage 5, count: every verdict is counted, overall by reason and per rule,
 * in per-CPU counters, by the one exit helper that also returns it.
 */
#ifndef XTHROTTLE_COUNT_BPF_H
#define XTHROTTLE_COUNT_BPF_H

#include "maps.bpf.h"
#include "gcra.h"

/* Which of a rule's drops a reason is (enum xt_over_kind), or -1 for one
 * that is no rule's to send elsewhere. */
static __always_inline int xt_over_kind(enum xt_reason reason)
{
	switch (reason) {
	case XT_DROP_LIMIT: return XT_OVER_LIMIT;
	case XT_DROP_TOTAL: return XT_OVER_TOTAL;
	case XT_DROP_NEW_SOURCE: return XT_OVER_NEW_SOURCE;
	case XT_DROP_DENY: return XT_OVER_DENY;
	default: return -1;
	}
}

static __always_inline void xt_count_one(enum xt_counter which);

/* Takes one unit from a budget shared by the CPUs (a GCRA word under limit
 * l, swapped in with compare-and-swap): whether it had one. The events'
 * rate and the capture's sampling rate. */
static __always_inline int xt_budget_take(const struct xt_limit *l, __u64 *word, __u64 now)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		__u64 old = *word, next;
		if (!xt_gcra(l, old, now, 1, &next))
			return 0;
		if (__sync_val_compare_and_swap(word, old, next) == old)
			return 1;
	}
	return 0;
}

/* Samples the packet for `xthrottle capture`, if a capture wants its
 * verdict and its rule (xt_config.capture_*) and its sampling rate allows.
 * A global function (not inlined), so the verifier checks it once; only
 * called while a capture runs. */
__attribute__((noinline)) int xt_capture_sample(struct xdp_md *ctx, __u32 reason, __u32 rule_id, __u32 redirected)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	__u64 *budget = bpf_map_lookup_elem(&xt_capture_budget, &zero);
	if (!ctx || !cfg || !budget || reason >= 32)
		return 0;
	const __u64 now = xt_now();
	const __u32 reasons = cfg->capture_reasons;
	if (!(reasons & (1u << reason)))
		return 0;
	if ((__s64)(cfg->capture_until - now) <= 0) {
		/* Its reader stopped renewing it (killed): the capture ends
		 * here, and drops stop calling this function. */
		__sync_val_compare_and_swap((__u32 *)&cfg->capture_reasons, reasons, 0);
		return 0;
	}
	if (cfg->capture_rule != XT_CAPTURE_ANY_RULE && cfg->capture_rule != rule_id)
		return 0;
	if (!xt_budget_take(&cfg->capture_limit, budget, now)) {
		xt_count_one(XT_CAPTURE_SUPPRESSED);
		return 0;
	}
	/* The whole frame's length; the helper copies from its buffers (a
	 * multi-buffer frame's fragments too). */
	const __u64 len = xt_cfg_frags ? bpf_xdp_get_buff_len(ctx) : (__u64)(ctx->data_end - ctx->data);
	__u64 caplen = cfg->capture_snaplen;
	if (caplen > len)
		caplen = len;
	if (caplen > XT_CAPTURE_MAX_SNAPLEN)
		caplen = XT_CAPTURE_MAX_SNAPLEN;
	struct xt_capture_meta meta = {
		.tick = now,
		.rule_id = rule_id,
		.reason = (__u8)reason,
		.redirected = (__u8)redirected,
		.link = xt_cfg_link,
		.ifindex = ctx->ingress_ifindex,
		.len = (__u32)len,
		.caplen = (__u32)caplen,
	};
	/* The frame's first caplen bytes follow the meta (the helper copies
	 * them from the packet). */
	if (bpf_perf_event_output(ctx, &xt_capture, BPF_F_CURRENT_CPU | caplen << 32, &meta, sizeof(meta)) != 0)
		return 0;
	xt_count_one(XT_CAPTURED);
	return 1;
}

/* What xt_exit does while some rule redirects or a capture runs: a drop
 * of a rule that sends that kind of drop out another interface is
 * redirected there, and counted as redirected besides; a packet a capture
 * wants is sampled. A global function (not inlined), so its code is not
 * repeated at every exit, nor walked by the verifier at each. */
__attribute__((noinline)) int xt_exit_elsewhere(struct xdp_md *ctx, __u32 reason, __u32 rule_id, __u32 pkts,
						__u64 len)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	struct xt_rule_stats *s = rule_id == XT_NO_RULE ? NULL : bpf_map_lookup_elem(&xt_rule_stats, &rule_id);
	const int dropped = reason >= XT_FIRST_DROP;
	if (!ctx || !cfg)
		return dropped ? XDP_DROP : XDP_PASS;
	const int capture = reason < 32 && (cfg->capture_reasons & (1u << reason));
	const int kind = xt_over_kind(reason);
	if (!s || !cfg->redirects || kind < 0) {
		if (capture)
			xt_capture_sample(ctx, reason, rule_id, 0);
		return dropped ? XDP_DROP : XDP_PASS;
	}
	/* An empty key (no interface chosen, or it is gone) drops. */
	const long verdict = bpf_redirect_map(&xt_redirect, XT_REDIRECT_KEY(rule_id, kind), XDP_DROP);
	if (capture)
		xt_capture_sample(ctx, reason, rule_id, verdict == XDP_REDIRECT);
	if (verdict != XDP_REDIRECT)
		return XDP_DROP;
	s->redirected_packets += pkts;
	s->redirected_bytes += len;
	__u32 idx = XT_REDIRECTED;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c) {
		c->packets += pkts;
		c->bytes += len;
	}
	return XDP_REDIRECT;
}

/* Records why the packet got its verdict, and returns the verdict (through
 * xt_exit_elsewhere while a rule redirects or a capture runs; cfg, where the
 * packet has a rule). A frame counts as the pkts wire packets and len wire
 * bytes it stands for. */
static __always_inline int xt_exit(struct xdp_md *ctx, enum xt_reason reason, __u64 len, __u32 pkts, __u32 rule_id,
				   const struct xt_config *cfg)
{
	__u32 idx = reason;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c) {
		c->packets += pkts;
		c->bytes += len;
	}
	struct xt_rule_stats *s = rule_id == XT_NO_RULE ? NULL : bpf_map_lookup_elem(&xt_rule_stats, &rule_id);
	if (s) {
		if (reason >= XT_FIRST_DROP) {
			s->dropped_packets += pkts;
			s->dropped_bytes += len;
		} else {
			s->passed_packets += pkts;
			s->passed_bytes += len;
		}
		if (reason == XT_PASS_DRY_RUN) {
			s->dryrun_packets += pkts;
			s->dryrun_bytes += len;
		}
		if (reason == XT_DROP_NEW_SOURCE)
			s->new_source_dropped_packets += pkts;
	}
	if (cfg && (cfg->redirects || cfg->capture_reasons))
		return xt_exit_elsewhere(ctx, reason, rule_id, pkts, len);
	return reason >= XT_FIRST_DROP ? XDP_DROP : XDP_PASS;
}

static __always_inline void xt_count_one(enum xt_counter which)
{
	__u32 idx = which;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c)
		c->packets++;
}

/* A drop of a ban or a blocklist of a source no rule covers: counted as
 * such besides its reason, so that the drops by rule, these and the
 * malformed frames add up to all the drops (the metrics' rule "none").
 * A global function (see xt_send_event), called only for such drops:
 * inlined at its exits, it cost 70 of the object's 3500 instructions. */
__attribute__((noinline)) int xt_count_without_rule(__u64 len, __u32 pkts)
{
	__u32 idx = XT_DROPPED_WITHOUT_RULE;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c) {
		c->packets += pkts;
		c->bytes += len;
	}
	return 0;
}

/* A dry-run rule's new-source budget would have dropped these packets: they
 * pass (counted under XT_PASS_DRY_RUN), and count among the rule's
 * new-source drops, so that a saturated budget shows its rate. */
static __always_inline void xt_count_new_source_dry_run(__u32 rule_id, __u32 pkts)
{
	struct xt_rule_stats *s = bpf_map_lookup_elem(&xt_rule_stats, &rule_id);
	if (s)
		s->new_source_dropped_packets += pkts;
}

#endif /* XTHROTTLE_COUNT_BPF_H */
