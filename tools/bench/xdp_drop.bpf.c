// SPDX-License-Identifier: GPL-2.0
/* The baselines of the benchmarks. xdp_drop drops everything, doing nothing
 * else: what it costs is the price of the path itself (generator, veth, XDP
 * dispatch). xdp_pass passes everything: the price of the path and of the
 * host's stack receiving every packet, the baseline of a case whose packets
 * xthrottle passes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_DROP;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}
