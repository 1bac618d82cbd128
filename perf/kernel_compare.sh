#!/usr/bin/env bash
# Kernel comparison on the two-arm NAT topology (scripts/lib/nat-topology.sh): the same
# client, veths and 3 nginx backends behind
#   1. the Linux kernel: a namespace holding the two veths, forwarding, and nftables DNAT
#      spreading connections with numgen (as kube-proxy's nftables mode does);
#   2. ferrovs on DPDK af_packet vdevs bound to the same veths.
# Load: wrk from the client namespace, 5 s each: with "Connection: close" (every request a
# new connection: connections/s) and with keep-alive (requests/s over 50 connections).
# Both runs share this machine's cores with wrk and nginx; ferrovs also busy-polls one.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "kernel_compare: needs root"; exit 1; }
bash scripts/setup.sh >/dev/null
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -p mgmt --bin ferrovs 2>&1 | tail -1
source scripts/lib/nat-topology.sh
LBNS=fdlb$S; PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  ip netns del $LBNS 2>/dev/null || true
  nat_topology_down
}
trap cleanup EXIT INT TERM
nat_topology_up
DUR=${DUR:-5}

measure() { # $1 = label
  local close keep
  close=$(ip netns exec $CLI wrk -t2 -c50 -d${DUR}s -H "Connection: close" http://10.0.0.10/ 2>&1)
  keep=$(ip netns exec $CLI wrk -t2 -c50 -d${DUR}s http://10.0.0.10/ 2>&1)
  local cps rps cerr kerr
  cps=$(echo "$close" | awk '/Requests\/sec/ {print $2}'); rps=$(echo "$keep" | awk '/Requests\/sec/ {print $2}')
  cerr=$(echo "$close" | grep -E "Socket errors|Non-2xx" | tr '\n' ' ' || true); kerr=$(echo "$keep" | grep -E "Socket errors|Non-2xx" | tr '\n' ' ' || true)
  printf '%-34s %12s conn/s  %12s req/s (keep-alive)  %s\n' "$1" "${cps:-?}" "${rps:-?}" "${cerr}${kerr}"
}

echo "== kernel: nftables DNAT (numgen inc mod 3) in a namespace owning the same veths"
ip netns add $LBNS
ip link set $WAN netns $LBNS; ip link set $LAN netns $LBNS
ip netns exec $LBNS sh -e -c "
  ip link set lo up; ip link set $WAN up; ip link set $LAN up
  ip addr add 10.0.0.1/24 dev $WAN; ip addr add 10.0.0.10/32 dev $WAN; ip addr add 10.1.0.1/24 dev $LAN
  sysctl -qw net.ipv4.ip_forward=1
  nft -f - <<NFT
table ip lb {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.0.0.10 tcp dport 80 dnat to numgen inc mod 3 map { 0 : 10.1.0.11, 1 : 10.1.0.12, 2 : 10.1.0.13 }
  }
}
NFT"
ip netns exec $CLI curl -s --max-time 3 http://10.0.0.10/ >/dev/null || { echo "kernel LB does not answer"; exit 1; }
measure "kernel nftables DNAT"

echo "== ferrovs: net_af_packet on the same veths"
ip netns exec $LBNS ip link set $WAN netns 1; ip netns exec $LBNS ip link set $LAN netns 1
ip netns del $LBNS
for i in $WAN $LAN; do ip link set $i up; ethtool -K $i rx off tx off gro off >/dev/null 2>&1 || true; done
ip netns exec $CLI ip neigh flush all
HUGE=false; bash scripts/hugepages.sh 256 2M >/dev/null 2>&1 && HUGE=true
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: $HUGE, file_prefix: "ferrovs-cmp-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24"] }
api: { listen: "127.0.0.1:$((22000 + S % 20000))" }
services:
  - { name: web, vip: 10.0.0.10, port: 80, scheduler: rr, forward: nat,
      backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ] }
YAML
target/release/ferrovs --config $T/ferrovs.yaml 2> $T/ferrovs.log & PID=$!
for _ in $(seq 100); do grep -q "ferrovs running" $T/ferrovs.log && break; sleep 0.1; done
# Warm up: ARP both ways.
for _ in 1 2 3 4 5 6; do ip netns exec $CLI curl -s --max-time 3 http://10.0.0.10/ >/dev/null || true; done
measure "ferrovs (af_packet, 1 worker)"
