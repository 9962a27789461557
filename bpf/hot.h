/* SPDX-License-Identifier: MIT */
/*
 * The hot cache's entries, pure: what the data path (hot.bpf.h) and the
 * controller (State::hot_pending) both read out of one. Compiles for BPF
 * and the host.
 */
#ifndef XTHROTTLE_HOT_H
#define XTHROTTLE_HOT_H

#include "pure.h"
#include <xthrottle/abi.h>

/* The whole epoch an entry was filled in: the latest with its low 16 bits,
 * up to `epoch` (an XT_HOT_FOREVER entry keeps all of it in `until`). */
XT_INLINE __u32 xt_hot_filled(const struct xt_hot *hot, __u32 epoch)
{
	if (hot->who & XT_HOT_FOREVER)
		return hot->until;
	return epoch - (__u16)((__u16)epoch - hot->epoch);
}

#endif /* XTHROTTLE_HOT_H */
