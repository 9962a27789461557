// SPDX-License-Identifier: GPL-2.0
/* The lab's wire back to gen. A veth hands a frame sent back from XDP on its
 * peer (XDP_TX: xthrottle's TCP proofs) only to a device that runs an XDP
 * program; this one is it, on gen0. It passes what gen's hosts are: IPv4 to
 * 198.18.0.0/24 (the lab's clients) and anything not IPv4, and drops IPv4 to
 * other addresses, as a real network would carry the answers to a spoofed
 * flood to the spoofed addresses' hosts, not to the clients' (in the lab,
 * gen's stack would otherwise spend a CPU refusing millions of them). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	const __u8 *data = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;
	if (data + 14 + 20 > end || data[12] != 0x08 || data[13] != 0x00)
		return XDP_PASS; /* not IPv4 */
	const __u8 *dst = data + 14 + 16;
	return dst[0] == 198 && dst[1] == 18 && dst[2] == 0 ? XDP_PASS : XDP_DROP;
}
