#!/bin/sh
# Removes whatever a crashed e2e run left behind: its namespaces, its bpffs
# mounts under /run, its temp files. The lab's own destructor does this on
# every normal exit; CTest runs this as the suite's cleanup fixture too.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^xte2e-'); do
  ip netns del "$ns" 2>/dev/null
done
for dir in /run/xte2e-*; do
  [ -d "$dir" ] || continue
  umount -l "$dir" 2>/dev/null
  rmdir "$dir" 2>/dev/null
done
rm -f /tmp/xt-e2e-*
exit 0
