// SPDX-License-Identifier: GPL-2.0
/* The baseline of every benchmark: drop everything, doing nothing else. What
 * it costs is the price of the path itself (generator, veth, XDP dispatch). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_DROP;
}
