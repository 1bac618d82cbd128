#!/usr/bin/env bash
# Binds NICs to vfio-pci for DPDK (wraps dpdk-devbind.py), refusing to take the
# interface that carries the default route (you would lose the machine).
#   scripts/bind-nics.sh 0000:3b:00.0 [0000:3b:00.1 ...]
#   scripts/bind-nics.sh --status
#   scripts/bind-nics.sh --unbind 0000:3b:00.0 <kernel-driver>
set -euo pipefail
command -v dpdk-devbind.py >/dev/null || { echo "bind-nics: dpdk-devbind.py missing (apt-get install dpdk)" >&2; exit 1; }
if [ "${1:-}" = "--status" ]; then exec dpdk-devbind.py --status-dev net; fi
if [ "${1:-}" = "--unbind" ]; then exec dpdk-devbind.py -b "$3" "$2"; fi
[ $# -ge 1 ] || { echo "usage: $0 PCI_ADDR... | --status | --unbind PCI_ADDR DRIVER" >&2; exit 2; }

route_if=$(ip -4 route show default 2>/dev/null | awk '/default/ {for(i=1;i<=NF;i++) if ($i=="dev") print $(i+1)}' | head -1)
route_pci=""
if [ -n "$route_if" ] && [ -e "/sys/class/net/$route_if/device" ]; then
  route_pci=$(basename "$(readlink -f "/sys/class/net/$route_if/device")")
fi
modprobe vfio-pci 2>/dev/null || true
for dev in "$@"; do
  if [ "$dev" = "$route_pci" ]; then
    echo "bind-nics: refusing to bind $dev: it is $route_if, which carries the default route" >&2
    exit 1
  fi
  for ifc in /sys/bus/pci/devices/"$dev"/net/*; do
    [ -e "$ifc" ] && ip link set "$(basename "$ifc")" down 2>/dev/null || true
  done
  dpdk-devbind.py -b vfio-pci "$dev"
  echo "bind-nics: $dev bound to vfio-pci"
done
