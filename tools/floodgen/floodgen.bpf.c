// SPDX-License-Identifier: GPL-2.0
/*
 * floodgen's frame rewriter. BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES
 * runs this once per frame it sends: it stamps the next source address of the
 * rotation into the template frame and returns XDP_TX, which transmits the
 * frame out of the interface given as the run's ingress_ifindex.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* Set at load time by floodgen. */
const volatile __u32 fg_sources = 1;   /* distinct sources in the rotation */
const volatile __u32 fg_start = 0;     /* the rotation's first step (--start) */
const volatile __u32 fg_base = 0;      /* first source, host order: the IPv4 address, */
                                       /* or the 32-bit word of the IPv6 address rotated */
const volatile __u32 fg_v6_word = 1;   /* which IPv6 word: 1 (bits 32-63, one /64 per */
                                       /* source) or 3 (the low bits) */
const volatile __u8 fg_ipv6 = 0;
const volatile __u32 fg_l3_offset = 14;
const volatile __u32 fg_ifindex = 0;   /* the device frames are sent from */
const volatile __u8 fg_straight = 0;   /* tail-call fg_receiver instead of XDP_TX */
/* The frame's headers, written over every frame before it is stamped when
 * fg_restore is set. Live frames are recycled as the receiver left them: a
 * receiver that answers from XDP (xthrottle's TCP proofs rewrite a SYN into
 * a SYN-ACK in place) hands back frames that are no longer the template. */
#define FG_HEAD_MAX 37 /* 16-bit halves: Ethernet, IPv6 and TCP headers */
const volatile __u32 fg_restore = 0; /* halves of fg_head to restore: the headers */
const volatile __u16 fg_head[FG_HEAD_MAX] = {};

/* Frames stamped so far on each CPU; the rotation index. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} fg_seq SEC(".maps");

/* The receiver's XDP program, for fg_straight. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} fg_receiver SEC(".maps");

/* Frames the tail call did not reach the receiver with, on each CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} fg_missed SEC(".maps");

/* The stamped frame on its way: out of the device, or into the receiver. */
static __always_inline int fg_deliver(struct xdp_md *ctx)
{
	if (fg_straight) {
		bpf_tail_call(ctx, &fg_receiver, 0);
		__u32 zero = 0; /* here only if the tail call failed */
		__u64 *missed = bpf_map_lookup_elem(&fg_missed, &zero);
		if (missed)
			(*missed)++;
		return XDP_ABORTED;
	}
	return XDP_TX;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int floodgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	/* The program is also attached to the namespace's loopback (see
	 * floodgen.cpp); real packets there pass untouched. */
	if (ctx->ingress_ifindex != fg_ifindex)
		return XDP_PASS;
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&fg_seq, &zero);
	if (!seq)
		return XDP_ABORTED;
	__u32 src = fg_base + (__u32)((*seq + fg_start) % fg_sources);
	(*seq)++;
	if (fg_restore) {
		if (fg_restore > FG_HEAD_MAX || (void *)((__u16 *)data + fg_restore) > data_end)
			return XDP_ABORTED;
#pragma unroll
		for (__u32 i = 0; i < FG_HEAD_MAX; i++)
			if (i < fg_restore)
				((__u16 *)data)[i] = fg_head[i];
	}

	__u8 *l3 = (__u8 *)data + fg_l3_offset;
	if (fg_ipv6) {
		if ((void *)(l3 + 40) > data_end)
			return XDP_ABORTED;
		/* Source address is l3[8..24]; rotate one of its words. */
		if (fg_v6_word == 3)
			*(__u32 *)(l3 + 20) = __builtin_bswap32(src);
		else
			*(__u32 *)(l3 + 12) = __builtin_bswap32(src);
		return fg_deliver(ctx);
	}
	if ((void *)(l3 + 20) > data_end)
		return XDP_ABORTED;
	*(__u32 *)(l3 + 12) = __builtin_bswap32(src);
	/* Recompute the header checksum so the receiving stack would accept it. */
	__u16 *words = (__u16 *)l3;
	words[5] = 0;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += words[i];
	words[5] = csum_fold(sum);
	return fg_deliver(ctx);
}
