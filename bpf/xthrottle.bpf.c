// SPDX-License-Identifier: GPL-2.0
/*
 * xthrottle's XDP program: parse -> classify -> meter -> act -> count.
 *
 * Per packet: find the source address (parse.h), the longest-prefix rule of
 * the source's family (xt_rules), the bucket of (rule, source masked to the
 * rule's per_len) (xt_buckets), take tokens under the bucket's lock
 * (bucket.h), and return the verdict through xt_exit(), which counts it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <xthrottle/abi.h>
#include "parse.h"
#include "bucket.h"

char LICENSE[] SEC("license") = "GPL";

/* Settings fixed at load time (rodata). */
/* Read the clock from xt_test_now_ns instead of the kernel: set only by the
 * BPF_PROG_TEST_RUN tests, which need a clock they control. With the default
 * 0 the verifier prunes the test branch away. */
const volatile __u8 xt_cfg_test_clock = 0;
__u64 xt_test_now_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct xt_rule_key);
	__type(value, struct xt_rule);
	__uint(max_entries, XT_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct xt_bucket_key);
	__type(value, struct xt_bucket);
	__uint(max_entries, XT_DEFAULT_MAX_SOURCES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_rule_stats);
	__uint(max_entries, XT_MAX_RULES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_rule_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_count);
	__uint(max_entries, XT_REASONS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_counters SEC(".maps");

/* Written by the controller only; lives here so one object creates every map. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct xt_attach_key);
	__type(value, struct xt_attach_info);
	__uint(max_entries, XT_MAX_ATTACH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_attach SEC(".maps");

/* The one clock of the program. */
static __always_inline __u64 xt_now(void)
{
	if (xt_cfg_test_clock)
		return xt_test_now_ns;
	return bpf_ktime_get_ns();
}

/* Stage 5, count: record why the packet got its verdict, return the verdict. */
static __always_inline int xt_exit(enum xt_reason reason, __u64 len, const struct xt_rule *rule)
{
	__u32 idx = reason;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
	if (rule) {
		__u32 id = rule->id;
		struct xt_rule_stats *s = bpf_map_lookup_elem(&xt_rule_stats, &id);
		if (s) {
			if (reason >= XT_FIRST_DROP) {
				s->dropped_packets++;
				s->dropped_bytes += len;
			} else {
				s->passed_packets++;
				s->passed_bytes += len;
			}
			if (reason == XT_PASS_DRY_RUN) {
				s->dryrun_packets++;
				s->dryrun_bytes += len;
			}
		}
	}
	return reason >= XT_FIRST_DROP ? XDP_DROP : XDP_PASS;
}

/* Find or create the bucket for this packet's source under rule. */
static __always_inline struct xt_bucket *xt_bucket_get(const struct xt_pkt *pkt,
						       const struct xt_rule *rule, __u64 now)
{
	struct xt_bucket_key key;
	xt_bucket_key_for(pkt, rule, &key);
	struct xt_bucket *b = bpf_map_lookup_elem(&xt_buckets, &key);
	if (b)
		return b;

	struct xt_bucket fresh;
	xt_bucket_init(&fresh, rule, now);
	/* NOEXIST: another CPU may have created it meanwhile; then we use theirs.
	 * A full table (-E2BIG) leaves us without state: the caller drops. */
	bpf_map_update_elem(&xt_buckets, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&xt_buckets, &key);
}

SEC("xdp")
int xthrottle(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;

	/* Stage 1, parse. */
	struct xt_pkt pkt = {};
	int parsed = xt_parse(data, data_end, &pkt);
	if (parsed == XT_PARSE_MALFORMED)
		return xt_exit(XT_DROP_MALFORMED, len, NULL);
	if (parsed != XT_PARSE_IP)
		return xt_exit(XT_PASS_NON_IP, len, NULL);

	/* Stage 2, classify: the longest prefix of the source's family. */
	struct xt_rule_key rkey;
	xt_rule_key_for(&pkt, &rkey);
	const struct xt_rule *rule = bpf_map_lookup_elem(&xt_rules, &rkey);
	if (!rule)
		return xt_exit(XT_PASS_UNMATCHED, len, NULL);
	if (rule->action == XT_ACT_ALLOW)
		return xt_exit(XT_PASS_ALLOW, len, rule);
	if (rule->action != XT_ACT_LIMIT) /* deny, and anything unknown */
		return xt_exit(rule->flags & XT_RULE_DRY_RUN ? XT_PASS_DRY_RUN : XT_DROP_DENY, len, rule);

	/* Stage 3, meter. The clock is read before taking the lock: no helper
	 * calls are allowed while it is held. */
	__u64 now = xt_now();
	struct xt_bucket *b = xt_bucket_get(&pkt, rule, now);
	if (!b)
		return xt_exit(XT_DROP_NO_STATE, len, rule);
	bpf_spin_lock(&b->lock);
	int ok = xt_meter(b, rule, now, len);
	bpf_spin_unlock(&b->lock);

	/* Stage 4, act. */
	if (ok)
		return xt_exit(XT_PASS_LIMIT, len, rule);
	if (rule->flags & XT_RULE_DRY_RUN)
		return xt_exit(XT_PASS_DRY_RUN, len, rule);
	return xt_exit(XT_DROP_LIMIT, len, rule);
}
