#!/usr/bin/env bash
# Reserves hugepages for DPDK, mounts hugetlbfs, and reports.
#   scripts/hugepages.sh [N] [2M|1G]     (default: 512 pages of 2M = 1 GiB)
# Exits 0 when at least one page is reserved, 1 when none could be (callers then run
# DPDK with --no-huge). ferrovs runs EAL with --in-memory, which needs no hugetlbfs mount.
set -u
N=${1:-512}
SIZE=${2:-2M}
case "$SIZE" in
  2M) dir=/sys/kernel/mm/hugepages/hugepages-2048kB ;;
  1G) dir=/sys/kernel/mm/hugepages/hugepages-1048576kB ;;
  *) echo "hugepages: size must be 2M or 1G" >&2; exit 2 ;;
esac
if [ ! -d "$dir" ]; then
  echo "hugepages: this kernel offers no $SIZE pages"; exit 1
fi
cur=$(cat "$dir/nr_hugepages")
if [ "$cur" -lt "$N" ]; then
  echo "$N" > "$dir/nr_hugepages" 2>/dev/null || true
fi
got=$(cat "$dir/nr_hugepages")
if ! grep -qs "hugetlbfs /dev/hugepages" /proc/mounts; then
  mkdir -p /dev/hugepages 2>/dev/null && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
fi
free=$(cat "$dir/free_hugepages")
mounted=$(grep -qs 'hugetlbfs /dev/hugepages' /proc/mounts && echo mounted || echo "not mounted (EAL's --in-memory, which ferrovs uses, does not need it)")
echo "hugepages: $got x $SIZE reserved ($free free), hugetlbfs $mounted"
[ "$got" -gt 0 ]
