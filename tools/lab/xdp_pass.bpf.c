// SPDX-License-Identifier: GPL-2.0
/* Passes everything. On the lab's sending side (gen0) it stands in for a
 * real NIC's wire: a veth hands a frame sent back from XDP on its peer
 * (XDP_TX: xthrottle's TCP proofs) to a device that runs an XDP program,
 * and to nothing else. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}
