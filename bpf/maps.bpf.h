/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the XDP program keeps and is given: its read-only settings (set by
 * the controller when it loads the program for an interface), its maps
 * (pinned by name under the pin directory; the layouts are abi.h's), and
 * its one clock.
 */
#ifndef XTHROTTLE_MAPS_BPF_H
#define XTHROTTLE_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <xthrottle/abi.h>

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

/* What the interface's frames start with (enum xt_link). Set by the
 * controller when it loads the program for an interface. */
const volatile __u8 xt_cfg_link = XT_LINK_ETHER;

/* CPUs the per-CPU maps have (libbpf_num_possible_cpus()): what summing a
 * per-CPU counter across CPUs loops over. */
const volatile __u32 xt_cfg_nr_cpus = 1;

#define XT_NO_RULE 0xffffffffu
#define XT_CAS_TRIES 8

/* --- Maps ---------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct xt_rule_key);
	__type(value, struct xt_rule);
	__uint(max_entries, XT_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_rules SEC(".maps");

/* The rules' port ranges (abi.h, struct xt_port_range): each TCP and UDP
 * port's narrowest range, and the ranges themselves. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_ports);
	__uint(max_entries, XT_PORTS_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_port_range);
	__uint(max_entries, XT_MAX_PORT_RANGES + 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_port_ranges SEC(".maps");

/* The flags of an array whose elements are cache lines, or parts of one, that
 * the data path reads at random. Mmapable for where the values start, not to
 * be mapped: a plain array's values start 312 bytes into its allocation on
 * kernel 6.18 (after struct bpf_array, whose size no uapi promises), so a
 * 64-byte element lies across two cache lines; an mmapable array's values
 * start on a page (docs/design.md, "Eleventh round"). */
#define XT_LINE_ALIGNED BPF_F_MMAPABLE

/* The bucket table, its tags and its marks, one element a set each: sized by the
 * controller when it creates the state (attach --max-sources). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_bucket_set);
	__uint(max_entries, XT_DEFAULT_MAX_SOURCES / XT_SOURCES_PER_SET);
	__uint(map_flags, XT_LINE_ALIGNED);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_set_tags);
	__uint(max_entries, XT_DEFAULT_MAX_SOURCES / XT_SOURCES_PER_SET);
	__uint(map_flags, XT_LINE_ALIGNED);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_bucket_tags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_set_marks);
	__uint(max_entries, XT_DEFAULT_MAX_SOURCES / XT_SOURCES_PER_SET);
	__uint(map_flags, XT_LINE_ALIGNED);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_bucket_marks SEC(".maps");

/* One CPU's lines of the smallest hot cache: what the object declares
 * before the controller sizes the two maps below. */
#define XT_HOT_MIN_LINES ((1 << XT_HOT_MIN_BITS) + (1 << (XT_HOT_MIN_BITS - XT_HOT_V6_SHIFT)))

/* Every CPU's IPv4 lines, one part after the other, then every CPU's IPv6
 * lines: sized by the controller when it creates the state (possible CPUs
 * times 2^hot_bits and 2^(hot_bits - XT_HOT_V6_SHIFT) lines). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_hot_set);
	__uint(max_entries, XT_HOT_MIN_LINES);
	__uint(map_flags, XT_LINE_ALIGNED);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_hot SEC(".maps");

/* One bit a line of the hot cache, laid out as it is (word w of the array
 * holds lines 64w..64w+63): set while the line may hold an entry that drops
 * its source or has drops to settle (hot.bpf.h). Sized with it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, XT_HOT_MIN_LINES / 64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_hot_bitmap SEC(".maps");

/* Sources admitted outside their rule's new-source budget (known.bpf.h),
 * one element a set: sized by the controller when it creates the state. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_known_set);
	__uint(max_entries, XT_DEFAULT_MAX_SOURCES / XT_KNOWN_WAYS);
	__uint(map_flags, XT_LINE_ALIGNED);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_known SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_known_tags);
	__uint(max_entries, XT_DEFAULT_MAX_SOURCES / XT_KNOWN_WAYS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_known_tags SEC(".maps");

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
	__uint(map_flags, XT_LINE_ALIGNED);
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

/* Where a rule's drops go instead (abi.h, enum xt_over_kind): an interface
 * at XT_REDIRECT_KEY(rule, kind), or none (dropped). A hash, not an array
 * device map: the kernel ties an array device map to the first program
 * that uses it, multi-buffer or not, and then refuses the other kind on the
 * same pins (attach again after raising the MTU failed with EINVAL).
 * Pinned with the rest, but reused by the controller itself (object.cpp,
 * open_object): the kernel marks a device map read-only to programs, which
 * libbpf 1.1 then takes for a map of another kind and refuses to reuse. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, __u32); /* the interface's index */
	__uint(max_entries, XT_REDIRECT_ENTRIES);
} xt_redirect SEC(".maps");

/* Samples for `xthrottle capture` (count.bpf.h, xt_capture_sample): a
 * perf buffer a CPU, sized by the controller to the possible CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_capture SEC(".maps");

/* GCRA word of the capture's sampling rate (xt_config.capture_limit). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_capture_budget SEC(".maps");

/* Bans (abi.h, struct xt_ban): prefixes whose sources are dropped until a
 * tick. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct xt_ban_key);
	__type(value, struct xt_ban);
	__uint(max_entries, XT_MAX_BANS);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_bans SEC(".maps");

/* Blocklists (abi.h): the union of the lists, in two sets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_block_word);
	__uint(max_entries, 2 * XT_BLOCK4_WORDS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_block4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct xt_block_host);
	__type(value, __u32);
	__uint(max_entries, 2 * XT_MAX_BLOCK_HOSTS);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* empty but for the lists' long prefixes */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_block_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct xt_block6_key);
	__type(value, __u32);
	__uint(max_entries, 2 * XT_MAX_BLOCK6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_block6 SEC(".maps");

/* The lists' names and sizes; the data path never reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_blocklist);
	__uint(max_entries, XT_MAX_BLOCKLISTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_blocklists SEC(".maps");

/* The rules as the operator wrote them; their layout is the controller's. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, XT_RULE_TEXT_SIZE);
	__uint(max_entries, XT_MAX_RULES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xt_rule_text SEC(".maps");

/* The control programs' arguments and results: one element, never pinned
 * (each controller that loads the control programs gets its own). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_control);
	__uint(max_entries, 1);
} xt_ctl SEC(".maps");

/* xt_restore's records (abi.h, XT_RESTORE_*): never pinned either. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_slot);
	__uint(max_entries, XT_RESTORE_BATCH);
} xt_restore_in SEC(".maps");

/* xt_catch_up's rules with catch_up_set (abi.h), at their ids: never
 * pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xt_catch_up_rule);
	__uint(max_entries, XT_MAX_RULES);
} xt_catch_up_in SEC(".maps");

/* The one clock of the program, in kernel ticks. bpf_jiffies64() is inlined
 * by the verifier into a single load. */
static __always_inline __u64 xt_now(void)
{
	if (xt_cfg_test_clock)
		return xt_test_now;
	return bpf_jiffies64();
}

#endif /* XTHROTTLE_MAPS_BPF_H */
