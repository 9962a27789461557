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

/* What the interface's frames start with (enum xt_link), and its MTU: a
 * frame longer than the MTU allows is a super-packet standing for several
 * wire packets (parse.h, xt_wire_packets). Set by the controller when it
 * loads the program for an interface; 0: unknown, every frame is one packet. */
const volatile __u8 xt_cfg_link = XT_LINK_ETHER;
const volatile __u32 xt_cfg_mtu = 0;

/* CPUs the per-CPU maps have (libbpf_num_possible_cpus()): what summing a
 * per-CPU counter across CPUs loops over. */
const volatile __u32 xt_cfg_nr_cpus = 1;

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

/* Mmapable: the controller publishes a rule change with one atomic store of
 * its first 64-bit word (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_config);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
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

/* Stage 6, count: record why the packet got its verdict, return the verdict.
 * A frame counts as the pkts wire packets and len wire bytes it stands for. */
static __always_inline int xt_exit(enum xt_reason reason, __u64 len, __u32 pkts, __u32 rule_id)
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
	return reason >= XT_FIRST_DROP ? XDP_DROP : XDP_PASS;
}

static __always_inline void xt_count_one(enum xt_counter which)
{
	__u32 idx = which;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c)
		c->packets++;
}

/* Stage 7, tell: an event, if the events' budget allows. A global function
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
	int allowed = 0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		__u64 old = *budget, next;
		if (!xt_gcra(&cfg->events, old, e->tick, 1, &next))
			break;
		if (__sync_val_compare_and_swap(budget, old, next) == old) {
			allowed = 1;
			break;
		}
	}
	if (!allowed) {
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

/* An event about a source's bucket. */
static __always_inline void xt_emit(enum xt_event_type type, const struct xt_bucket_key *key,
				    const struct xt_bucket *b, const struct xt_rule *rule, __u64 now,
				    __u64 throttled_ticks)
{
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
	xt_send_event(&e);
}

/* What a super-packet stands for on the wire (parse.h, xt_wire_packets).
 * A global function: its many branches are walked once, not once for every
 * path through the rest of the program, and it runs only for frames longer
 * than the MTU allows. */
struct xt_wire {
	__u8 family;
	__u16 l3_off;
	__u32 packets;
	__u64 len; /* in: the frame's length; out: the wire packets' */
};

__attribute__((noinline)) int xt_super_packet(struct xdp_md *ctx, struct xt_wire *wire)
{
	if (!ctx || !wire)
		return 0;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xt_pkt pkt = {.family = wire->family, .l3_off = wire->l3_off};
	__u64 wire_len;
	wire->packets = xt_wire_packets(data, data_end, &pkt, wire->len, xt_cfg_mtu, &wire_len);
	wire->len = wire_len;
	return 0;
}

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

/* Stage 3, classify: the longest-prefix rule of the source's family, or NULL.
 * The trie lookup is a helper call and, for IPv6, a long walk; the per-CPU
 * rule cache answers instead for every source of a block that no rule
 * splits (the source masked to its family's longest rule prefix): under a
 * spoofed flood, nearly every packet. */
static __always_inline const struct xt_rule *xt_classify(const struct xt_pkt *pkt, __u64 published)
{
	const __u32 epoch = XT_PUB_EPOCH(published);
	const __u8 len = pkt->family == XT_FAMILY_V4 ? XT_PUB_LONGEST_V4(published) : XT_PUB_LONGEST_V6(published);
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
	if (!since || (__u32)now - st->last_new_drop < cfg->hz * XT_RELEASE_SECONDS ||
	    __sync_val_compare_and_swap(&st->saturated_since, since, 0) != since)
		return 0;
	xt_emit_budget(XT_EVENT_NEW_RECOVERED, rule, now, (__u32)now - since, xt_new_drops(id) - st->new_drops_at_start);
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

SEC("xdp")
int xthrottle(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = xt_cfg_frags ? bpf_xdp_get_buff_len(ctx) : (__u64)(data_end - data);

	/* Stage 1, parse. */
	struct xt_pkt pkt = {};
	int parsed = xt_parse(data, data_end, len, xt_cfg_link, &pkt);
	if (parsed == XT_PARSE_MALFORMED)
		return xt_exit(XT_DROP_MALFORMED, len, 1, XT_NO_RULE);
	if (parsed != XT_PARSE_IP)
		return xt_exit(XT_PASS_NON_IP, len, 1, XT_NO_RULE);
	/* A super-packet (generic XDP) counts as the wire packets it stands for. */
	__u32 pkts = 1;
	if (xt_cfg_mtu && len > (__u64)pkt.l3_off + xt_cfg_mtu) {
		struct xt_wire wire = {.family = pkt.family, .l3_off = pkt.l3_off, .len = len};
		xt_super_packet(ctx, &wire);
		pkts = wire.packets;
		len = wire.len;
	}

	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!cfg)
		return xt_exit(XT_PASS_UNMATCHED, len, pkts, XT_NO_RULE);
	__u64 now = xt_now();
	/* The published word (the rules epoch and the longest prefixes), read
	 * once, in one load, before any rule lookup: every cache entry this
	 * packet fills is tagged with its epoch, so an entry filled from a rule
	 * that changed meanwhile carries the old epoch and is never trusted.
	 * (The controller updates the rules, then the word. This relies on that
	 * load not passing the rule lookups' loads, which holds on x86; BPF's
	 * load-acquire needs a newer clang than 14.) */
	const __u64 published = *(volatile const __u64 *)cfg;
	const __u32 epoch = XT_PUB_EPOCH(published);

	/* Stage 2, the hot cache: sources already known to be dropped. */
	__u32 hot_idx = XT_TOP_BITS(xt_hash_source(&pkt), XT_HOT_BITS);
	struct xt_hot *hot = bpf_map_lookup_elem(&xt_hot, &hot_idx);
	if (hot && hot->epoch == epoch && now < hot->until && xt_hot_is(hot, &pkt)) {
		hot->pending += pkts;
		hot->last_hit = (__u32)now;
		return xt_exit(hot->reason, len, pkts, hot->rule_id);
	}

	/* Stage 3, classify. */
	const struct xt_rule *rule = xt_classify(&pkt, published);
	if (!rule)
		return xt_exit(XT_PASS_UNMATCHED, len, pkts, XT_NO_RULE);
	if (rule->action == XT_ACT_ALLOW)
		return xt_exit(XT_PASS_ALLOW, len, pkts, rule->id);
	if (rule->action != XT_ACT_LIMIT) { /* deny, and anything unknown */
		if (rule->flags & XT_RULE_DRY_RUN)
			return xt_exit(XT_PASS_DRY_RUN, len, pkts, rule->id);
		if (hot)
			xt_hot_fill(hot, &pkt, epoch, XT_DROP_DENY, rule, now, XT_NEVER);
		return xt_exit(XT_DROP_DENY, len, pkts, rule->id);
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
		return xt_exit(rule->flags & XT_RULE_DRY_RUN ? XT_PASS_DRY_RUN : why_not, len, pkts, rule->id);

	/* Stage 5, meter. */
	if (hot && hot->pending && xt_hot_is(hot, &pkt)) {
		/* The hot cache dropped this source's packets, the last of them at
		 * last_hit: they go to its bucket (this one, unless a rule change
		 * moved the source to another bucket since). */
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
	if (xt_take(b, rule, now, len, pkts)) {
		__sync_fetch_and_add(&b->passed_packets, pkts);
		/* Released: passing again, a while after the last drop. Of the CPUs
		 * that see it, the one whose swap wins tells. */
		__u32 since = b->throttled_since;
		if (since && (__u32)now - b->last_drop >= cfg->hz * XT_RELEASE_SECONDS &&
		    __sync_val_compare_and_swap(&b->throttled_since, since, 0) == since)
			xt_emit(XT_EVENT_RELEASED, &bkey, b, rule, now, (__u32)now - since);
		return xt_exit(XT_PASS_LIMIT, len, pkts, rule->id);
	}
	__sync_fetch_and_add(&b->dropped_packets, pkts);
	b->last_drop = (__u32)now;
	if (!b->throttled_since && __sync_val_compare_and_swap(&b->throttled_since, 0, (__u32)now | 1) == 0)
		xt_emit(XT_EVENT_THROTTLED, &bkey, b, rule, now, 0);
	if (rule->flags & XT_RULE_DRY_RUN)
		return xt_exit(XT_PASS_DRY_RUN, len, pkts, rule->id);
	__u64 wait = xt_meter_wait(rule, b, now);
	if (hot && wait)
		xt_hot_fill(hot, &pkt, epoch, XT_DROP_LIMIT, rule, now, wait == XT_NEVER ? XT_NEVER : now + wait);
	return xt_exit(XT_DROP_LIMIT, len, pkts, rule->id);
}

/* --- Control programs ----------------------------------------------------
 * Run by the controller through BPF_PROG_TEST_RUN, never attached: work on
 * the maps that must be done inside the kernel to be atomic with the data
 * path. Their arguments and results are globals the controller sets and
 * reads through the skeleton. */

/* The control programs' arguments and results: one element, never pinned
 * (each controller that loads the control programs gets its own). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_control);
	__uint(max_entries, 1);
} xt_ctl SEC(".maps");

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
