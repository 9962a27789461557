// SPDX-License-Identifier: GPL-2.0
/* Floors for the per-packet targets (issue 11): the least a limiter that
 * counts what it drops does, written as plainly as possible, to measure
 * beside the bare drop and xthrottle in the same run.
 *
 * xdp_count: read the Ethernet and IP headers (IPv4 or IPv6, bounds
 * checked) and the source address, count the frame (packets and bytes) in a
 * per-CPU counter, drop.
 *
 * xdp_cached: the same, plus what deciding "this source is over its limit"
 * costs at the least: the kernel's clock, a hash of the source, one line of
 * a per-CPU array of 2^14 two-way sets (1 MiB a CPU, like xthrottle's hot
 * cache), the address compared, the entry's count bumped. No rules, no epoch, no bitmap: what
 * is left of xthrottle's hot-cache path once every feature is taken away. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#ifndef FLOOR_SET_BITS /* docs/design.md, eighth round: 16 and 17 measured too */
#define FLOOR_SET_BITS 14
#endif

struct count {
	__u64 packets, bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct count);
} floor_counts SEC(".maps");

struct way {
	__u64 addr[2];
	__u32 until, pending;
	__u64 pad;
};
struct set {
	struct way way[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1 << FLOOR_SET_BITS);
	__type(key, __u32);
	__type(value, struct set);
} floor_cache SEC(".maps");

/* The source address as two words, or -1 for a frame that is not IP. */
static __always_inline int floor_source(struct xdp_md *ctx, __u64 addr[2])
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return -1;
		addr[0] = ip->saddr;
		addr[1] = 0;
		return 0;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(addr, &ip6->saddr, 16);
		return 0;
	}
	return -1;
}

static __always_inline int floor_drop(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct count *c = bpf_map_lookup_elem(&floor_counts, &zero);
	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
	return XDP_DROP;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u64 addr[2];
	if (floor_source(ctx, addr) < 0)
		return XDP_PASS;
	return floor_drop(ctx);
}

SEC("xdp")
int xdp_cached(struct xdp_md *ctx)
{
	__u64 addr[2];
	if (floor_source(ctx, addr) < 0)
		return XDP_PASS;
	const __u32 now = (__u32)bpf_jiffies64();
	__u64 h = (addr[0] ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ h >> 31 ^ addr[1]) * 0x94d049bb133111ebull;
	__u32 idx = (__u32)(h >> (64 - FLOOR_SET_BITS));
	struct set *set = bpf_map_lookup_elem(&floor_cache, &idx);
	if (!set)
		return XDP_PASS;
	__u32 w = set->way[1].addr[0] == addr[0] && set->way[1].addr[1] == addr[1];
	const int found = w || (set->way[0].addr[0] == addr[0] && set->way[0].addr[1] == addr[1]);
	if (!found) /* a newcomer takes way 0 unless it still holds its source */
		w = (__s32)(set->way[0].until - now) > 0;
	struct way *way = &set->way[w & 1];
	if (found && (__s32)(way->until - now) > 0) {
		way->pending++;
		return floor_drop(ctx);
	}
	way->addr[0] = addr[0];
	way->addr[1] = addr[1];
	/* Not held: where a limiter would meter it; here, hold it for a while
	 * (1000 ticks: seconds), so that the sets turn over as a limiter's
	 * cache would. */
	way->until = now + 1000;
	way->pending = 0;
	return floor_drop(ctx);
}
