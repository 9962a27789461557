// SPDX-License-Identifier: GPL-2.0
/*
 * xthrottle's XDP program: parse -> classify -> meter -> act -> count.
 *
 * Per packet, cheapest first:
 *  1. parse the source address (parse.h);
 *  2. the per-CPU hot cache: a source known to be over its limit until some
 *     tick (or denied) is dropped right there, without a helper call;
 *  3. classify: the longest-prefix rule of the source's family (xt_rules);
 *  4. the seen filter: one byte per slot saying when a bucket hashing there
 *     was last used. If none was used recently, the source is untracked and
 *     costs no bucket lookup: its rule's new-source budget decides whether
 *     it gets a bucket or is dropped (a spoofed flood ends here);
 *  5. meter the source's bucket (an LRU hash) with compare-and-swap (bucket.h);
 *  6. act and count through xt_exit();
 *  7. tell: a source that starts being dropped, and one released again,
 *     make an event in two ring buffers, at most XT_EVENTS_PER_SECOND.
 * Why each piece, with the measurements, is in docs/design.md.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <xthrottle/abi.h>
#include "parse.h"
#include "bucket.h"

char LICENSE[] SEC("license") = "GPL";

/* Read the clock from xt_test_now instead of the kernel: set only by the
 * BPF_PROG_TEST_RUN tests, which need a clock they control. With the default
 * 0 the verifier prunes the test branch away. */
const volatile __u8 xt_cfg_test_clock = 0;
__u64 xt_test_now = 0;

/* Set by the controller when the interface's MTU needs multi-buffer frames
 * (jumbo frames): the program is then loaded with BPF_F_XDP_HAS_FRAGS,
 * [data, data_end) is only the frame's first buffer, and the length counted
 * against byte limits comes from a helper call that costs ~10 ns here, so it
 * is paid only where it is needed. Headers always sit in the first buffer. */
const volatile __u8 xt_cfg_frags = 0;

#define XT_NO_RULE 0xffffffffu
#define XT_CAS_TRIES 8

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct xt_rule_key);
	__type(value, struct xt_rule);
	__uint(max_entries, XT_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_rules SEC(".maps");

/* Sized by the controller when it creates the state (attach --max-sources). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct xt_bucket_key);
	__type(value, struct xt_bucket);
	__uint(max_entries, XT_DEFAULT_MAX_SOURCES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_buckets SEC(".maps");

/* XT_SEEN_SLOTS_PER_SOURCE slots per source, XT_SEEN_LINE per element. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_seen_line);
	__uint(max_entries, XT_DEFAULT_MAX_SOURCES * XT_SEEN_SLOTS_PER_SOURCE / XT_SEEN_LINE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_hot);
	__uint(max_entries, XT_HOT_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_hot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_rule_cache);
	__uint(max_entries, XT_RULE_CACHE_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_rule_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_rule_state);
	__uint(max_entries, XT_MAX_RULES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_rule_state SEC(".maps");

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
	__uint(max_entries, XT_COUNTERS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_counters SEC(".maps");

/* Two rings with the same events: one for `serve`, one for `xthrottle
 * events`, so neither steals the other's. A ring nobody reads fills up and
 * then costs nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XT_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XT_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_events_cli SEC(".maps");

/* GCRA word of the events' rate limit (xt_config.events). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_event_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_config SEC(".maps");

/* Written by the controller only; they live here so one object creates
 * every map. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct xt_attach_key);
	__type(value, struct xt_attach_info);
	__uint(max_entries, XT_MAX_ATTACH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_attach SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_meta);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_meta SEC(".maps");

/* The one clock of the program, in kernel ticks. bpf_jiffies64() is inlined
 * by the verifier into a single load. */
static __always_inline __u64 xt_now(void)
{
	if (xt_cfg_test_clock)
		return xt_test_now;
	return bpf_jiffies64();
}

/* Stage 6, count: record why the packet got its verdict, return the verdict. */
static __always_inline int xt_exit(enum xt_reason reason, __u64 len, __u32 rule_id)
{
	__u32 idx = reason;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
	struct xt_rule_stats *s = rule_id == XT_NO_RULE ? NULL : bpf_map_lookup_elem(&xt_rule_stats, &rule_id);
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
		if (reason == XT_DROP_NEW_SOURCE)
			s->new_source_dropped_packets++;
	}
	return reason >= XT_FIRST_DROP ? XDP_DROP : XDP_PASS;
}

static __always_inline void xt_count_one(enum xt_counter which)
{
	__u32 idx = which;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c)
		c->packets++;
}

/* Stage 7, tell: an event about a bucket, if the events' budget allows. */
static __always_inline void xt_emit(enum xt_event_type type, const struct xt_bucket_key *key,
				    const struct xt_bucket *b, const struct xt_rule *rule,
				    const struct xt_config *cfg, __u64 now, __u64 throttled_ticks)
{
	__u32 zero = 0;
	__u64 *budget = bpf_map_lookup_elem(&xt_event_budget, &zero);
	if (!budget)
		return;
	int allowed = 0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		__u64 old = *budget, next;
		if (!xt_gcra(&cfg->events, old, now, 1, &next))
			break;
		if (__sync_val_compare_and_swap(budget, old, next) == old) {
			allowed = 1;
			break;
		}
	}
	if (!allowed) {
		xt_count_one(XT_EVENTS_SUPPRESSED);
		return;
	}
	struct xt_event e = {
		.tick = now,
		.type = type,
		.rule_id = key->rule_id,
		.family = key->family,
		.per_len = key->per_len,
		.dry_run = (rule->flags & XT_RULE_DRY_RUN) != 0,
		.passed_packets = b->passed_packets,
		.dropped_packets = b->dropped_packets,
		.throttled_ticks = throttled_ticks,
	};
	__builtin_memcpy(e.addr, key->addr, sizeof(e.addr));
	/* The CLI's ring is full whenever no `xthrottle events` reads it: only
	 * serve's ring says whether an event was delivered. */
	bpf_ringbuf_output(&xt_events_cli, &e, sizeof(e), 0);
	xt_count_one(bpf_ringbuf_output(&xt_events, &e, sizeof(e), 0) == 0 ? XT_EVENTS_SENT : XT_EVENTS_LOST);
}

static __always_inline int xt_hot_is(const struct xt_hot *hot, const struct xt_pkt *pkt)
{
	return hot->family == pkt->family && xt_load64(hot->addr) == xt_load64(pkt->addr) &&
	       xt_load64(hot->addr + 8) == xt_load64(pkt->addr + 8);
}

/* Adds a hot slot's pending drops to its source's bucket counter. Drops of an
 * older epoch are let go: their rule id may belong to another rule by now. */
static __always_inline void xt_hot_flush(struct xt_hot *hot, __u32 epoch)
{
	if (!hot->pending || hot->epoch != epoch) {
		hot->pending = 0;
		return;
	}
	struct xt_pkt src = {.family = hot->family};
	__builtin_memcpy(src.addr, hot->addr, sizeof(src.addr));
	struct xt_bucket_key key;
	xt_bucket_key_for(&src, hot->rule_id, hot->per_len, &key);
	struct xt_bucket *b = bpf_map_lookup_elem(&xt_buckets, &key);
	if (b)
		__sync_fetch_and_add(&b->dropped_packets, hot->pending);
	hot->pending = 0;
}

/* Remember that pkt's source is dropped for `reason` until tick `until`. A
 * slot still serving another flooding source (valid, and hit within the last
 * two ticks) is left to it: two heavy sources sharing a slot would otherwise
 * evict each other on every packet and both pay the slow path. */
static __always_inline void xt_hot_fill(struct xt_hot *hot, const struct xt_pkt *pkt, __u32 epoch,
					enum xt_reason reason, const struct xt_rule *rule, __u64 now, __u64 until)
{
	if (!xt_hot_is(hot, pkt)) {
		if (hot->epoch == epoch && now < hot->until && (__u32)now - hot->last_hit <= 2)
			return;
		xt_hot_flush(hot, epoch);
	}
	hot->pending = 0;
	hot->family = pkt->family;
	hot->reason = reason;
	hot->per_len = rule->per_len;
	hot->epoch = epoch;
	__builtin_memcpy(hot->addr, pkt->addr, sizeof(hot->addr));
	hot->until = until;
	hot->rule_id = rule->id;
	hot->last_hit = (__u32)now;
}

/* Stage 3, classify: the longest-prefix rule of the source's family, or NULL.
 * The trie lookup is a helper call and, for IPv6, a long walk; the per-CPU
 * rule cache answers instead for every source of a block that no rule
 * splits (the source masked to its family's longest rule prefix): under a
 * spoofed flood, nearly every packet. */
static __always_inline const struct xt_rule *xt_classify(const struct xt_pkt *pkt, const struct xt_config *cfg,
							  __u32 epoch)
{
	const __u8 len = pkt->family == XT_FAMILY_V4 ? cfg->longest_v4 : cfg->longest_v6;
	__u64 block[2];
	xt_mask_addr(pkt->addr, len, block);
	__u32 idx = XT_TOP_BITS(xt_hash_words(pkt->family | (__u64)len << 8, block[0], block[1]), XT_RULE_CACHE_BITS);
	struct xt_rule_cache *c = bpf_map_lookup_elem(&xt_rule_cache, &idx);
	if (c && c->epoch == epoch && c->len == len && c->family == pkt->family && c->block[0] == block[0] &&
	    c->block[1] == block[1])
		return c->found ? &c->rule : NULL;

	struct xt_rule_key rkey;
	xt_rule_key_for(pkt, &rkey);
	const struct xt_rule *rule = bpf_map_lookup_elem(&xt_rules, &rkey);
	/* Blocks of single addresses would only churn the cache. */
	if (c && len < (pkt->family == XT_FAMILY_V4 ? 32 : 128)) {
		c->epoch = epoch;
		c->family = pkt->family;
		c->len = len;
		c->found = rule != NULL;
		c->block[0] = block[0];
		c->block[1] = block[1];
		if (rule)
			__builtin_memcpy(&c->rule, rule, sizeof(c->rule));
	}
	return rule;
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
			return 0; /* over budget: nothing written */
		if (__sync_val_compare_and_swap(&st->new_word, old, next) == old)
			return 1;
	}
	return 0;
}

/* Meters one packet against bucket b: compare-and-swap on each limit's word,
 * so concurrent CPUs share one exact budget. A packet that fails a limit
 * writes nothing. */
static __always_inline int xt_take(struct xt_bucket *b, const struct xt_rule *rule, __u64 now, __u64 len)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		__u64 pw = b->pkt_word, bw = b->byte_word;
		__u64 pn = pw, bn = bw;
		if (!xt_meter_words(rule, now, len, &pn, &bn))
			return 0;
		if (pn != pw && __sync_val_compare_and_swap(&b->pkt_word, pw, pn) != pw)
			continue;
		if (bn != bw && __sync_val_compare_and_swap(&b->byte_word, bw, bn) != bw) {
			/* Lost the byte word's race after taking a packet token:
			 * give that token back and try again. */
			if (rule->flags & XT_RULE_PKT_LIMIT)
				__sync_fetch_and_add(&b->pkt_word, -(rule->pkt.cost << XT_GEN_BITS));
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

SEC("xdp")
int xthrottle(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = xt_cfg_frags ? bpf_xdp_get_buff_len(ctx) : (__u64)(data_end - data);

	/* Stage 1, parse. */
	struct xt_pkt pkt = {};
	int parsed = xt_parse(data, data_end, &pkt);
	if (parsed == XT_PARSE_MALFORMED)
		return xt_exit(XT_DROP_MALFORMED, len, XT_NO_RULE);
	if (parsed != XT_PARSE_IP)
		return xt_exit(XT_PASS_NON_IP, len, XT_NO_RULE);

	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!cfg)
		return xt_exit(XT_PASS_UNMATCHED, len, XT_NO_RULE);
	__u64 now = xt_now();
	/* The rules epoch, read once, before any rule lookup: every cache entry
	 * this packet fills is tagged with it, so an entry filled from a rule
	 * that changed meanwhile carries the old epoch and is never trusted.
	 * (The controller updates the rules, then the epoch. This relies on the
	 * load of the epoch not passing the rule lookups' loads, which holds on
	 * x86; BPF's load-acquire needs a newer clang than 14.) */
	const __u32 epoch = *(volatile const __u32 *)&cfg->epoch;

	/* Stage 2, the hot cache: sources already known to be dropped. */
	__u32 hot_idx = XT_TOP_BITS(xt_hash_source(&pkt), XT_HOT_BITS);
	struct xt_hot *hot = bpf_map_lookup_elem(&xt_hot, &hot_idx);
	if (hot && hot->epoch == epoch && now < hot->until && xt_hot_is(hot, &pkt)) {
		hot->pending++;
		hot->last_hit = (__u32)now;
		return xt_exit(hot->reason, len, hot->rule_id);
	}

	/* Stage 3, classify. */
	const struct xt_rule *rule = xt_classify(&pkt, cfg, epoch);
	if (!rule)
		return xt_exit(XT_PASS_UNMATCHED, len, XT_NO_RULE);
	if (rule->action == XT_ACT_ALLOW)
		return xt_exit(XT_PASS_ALLOW, len, rule->id);
	if (rule->action != XT_ACT_LIMIT) { /* deny, and anything unknown */
		if (rule->flags & XT_RULE_DRY_RUN)
			return xt_exit(XT_PASS_DRY_RUN, len, rule->id);
		if (hot)
			xt_hot_fill(hot, &pkt, epoch, XT_DROP_DENY, rule, now, XT_NEVER);
		return xt_exit(XT_DROP_DENY, len, rule->id);
	}

	/* Stage 4, the source's bucket: the seen filter first. */
	struct xt_bucket_key bkey;
	xt_bucket_key_for(&pkt, rule->id, rule->per_len, &bkey);
	__u64 bhash = xt_hash_bucket(&bkey);
	/* line_bits is at least 6 and at most 26 (abi.h limits): the shifts are defined. */
	const __u32 line_bits = cfg->seen_line_bits & 31;
	__u32 line_idx = XT_TOP_BITS(bhash, line_bits);
	struct xt_seen_line *line = bpf_map_lookup_elem(&xt_seen, &line_idx);
	__u8 *stamp_slot = line ? &line->stamp[XT_SEEN_SLOT(bhash, line_bits)] : NULL;
	enum xt_reason why_not = XT_DROP_NO_STATE;
	struct xt_bucket *b = xt_bucket_get(&bkey, rule, cfg, stamp_slot, now, &why_not);
	if (!b)
		return xt_exit(rule->flags & XT_RULE_DRY_RUN ? XT_PASS_DRY_RUN : why_not, len, rule->id);

	/* Stage 5, meter. */
	if (hot && hot->pending && hot->epoch == epoch && xt_hot_is(hot, &pkt) && hot->rule_id == rule->id) {
		/* The hot cache dropped this source's packets; the last of them
		 * at last_hit. */
		__sync_fetch_and_add(&b->dropped_packets, hot->pending);
		hot->pending = 0;
		/* Another CPU may have recorded a later drop: never move it back,
		 * or the source could look released while it is still dropped. */
		if ((__s32)(hot->last_hit - b->last_drop) > 0)
			b->last_drop = hot->last_hit;
	}
	if (xt_take(b, rule, now, len)) {
		__sync_fetch_and_add(&b->passed_packets, 1);
		/* Released: passing again, a while after the last drop. Of the CPUs
		 * that see it, the one whose swap wins tells. */
		__u32 since = b->throttled_since;
		if (since && (__u32)now - b->last_drop >= cfg->hz * XT_RELEASE_SECONDS &&
		    __sync_val_compare_and_swap(&b->throttled_since, since, 0) == since)
			xt_emit(XT_EVENT_RELEASED, &bkey, b, rule, cfg, now, (__u32)now - since);
		return xt_exit(XT_PASS_LIMIT, len, rule->id);
	}
	__sync_fetch_and_add(&b->dropped_packets, 1);
	b->last_drop = (__u32)now;
	if (!b->throttled_since && __sync_val_compare_and_swap(&b->throttled_since, 0, (__u32)now | 1) == 0)
		xt_emit(XT_EVENT_THROTTLED, &bkey, b, rule, cfg, now, 0);
	if (rule->flags & XT_RULE_DRY_RUN)
		return xt_exit(XT_PASS_DRY_RUN, len, rule->id);
	__u64 wait = xt_meter_wait(rule, b, now);
	if (hot && wait)
		xt_hot_fill(hot, &pkt, epoch, XT_DROP_LIMIT, rule, now, wait == XT_NEVER ? XT_NEVER : now + wait);
	return xt_exit(XT_DROP_LIMIT, len, rule->id);
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
