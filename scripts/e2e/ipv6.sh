#!/usr/bin/env bash
# End-to-end, IPv6 (TESTING.md): real HTTP over IPv6 through ferrovs on DPDK af_packet
# vdevs, neighbors resolved and learned by NDP (no static entries).
#   * nat, two-arm, dual-stack: the demo's topology with IPv6 beside IPv4 (client
#     2001:db8::50, ferrovs 2001:db8::1 | fd00:1::1, backends fd00:1::11-13 with their
#     default IPv6 route via ferrovs). An IPv6 service (wrr 1:2:3) and an IPv4 one on the
#     same nginx: 1000 requests over IPv6 alone (shares within 3% of the weights), then
#     both families at once (every request answered); ping6 of the VIP answered by
#     ferrovs; ferrovsctl list in ipvsadm's IPv6 layout; neighbors learned by NDP.
#   * dr, one-arm: client, ferrovs and backends on one bridge, the VIP on the backends'
#     loopback: 1000 requests over IPv6, shares within 3%.
#   * tun, one-arm (same bridge): IPv6-in-IPv6 to the backends, decapsulated by the
#     kernel's ip6_tunnel where it exists, else by a userspace decapsulator (it says
#     which): 1000 requests over IPv6, shares within 3%.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ferrovs.sh
e2e_begin ipv6
source scripts/lib/nat-topology.sh
cleanup() {
  kill_pids
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  remove_nss_links
  nat_topology_down
}
trap cleanup EXIT INT TERM
fail() { echo "e2e ipv6 ($STEP): FAILED: $*"; for f in $T/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done; exit 1; }
v6() { v6addr "$@"; } # namespace, interface, address/len (scripts/lib/nat-topology.sh)
check_shares() { # json of a load run, total, label prefix of backend n's answer
  local ok errors got want diff
  ok=$(echo "$1" | jget 'd["ok"]'); errors=$(echo "$1" | jget 'd["errors"]')
  [ "$ok" = "$2" ] && [ "$errors" = 0 ] || fail "expected $2 ok, got $ok ok / $errors errors: $1"
  for n in 1 2 3; do
    got=$(echo "$1" | jget "sum(v for k, v in d['backends'].items() if k.startswith('$3$n'))")
    want=$(( $2 * n / 6 ))
    diff=$(( got > want ? got - want : want - got ))
    [ $diff -le $(( $2 * 3 / 100 )) ] || fail "backend $n answered $got of $2, weight share is $want: $1"
  done
}

# --- nat, two-arm, dual-stack
STEP=nat
nat_topology_up
nat_topology_v6
API=127.0.0.1:$((22000 + S % 20000)); export FERROVS_API=http://$API
cat > $T/nat.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-v6nat-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24", "2001:db8::1/64"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24", "fd00:1::1/64"] }
flows: { capacity: 65536, capacity_ipv6: 65536 }
api: { listen: "$API" }
services:
  - name: web6
    vip: "2001:db8::10"
    port: 80
    scheduler: wrr
    backends: [ { address: "fd00:1::11", weight: 1 }, { address: "fd00:1::12", weight: 2 }, { address: "fd00:1::13", weight: 3 } ]
  - name: web
    vip: 10.0.0.10
    port: 80
    scheduler: wrr
    backends: [ { address: 10.1.0.11, weight: 1 }, { address: 10.1.0.12, weight: 2 }, { address: 10.1.0.13, weight: 3 } ]
YAML
$BIN --check --config $T/nat.yaml >/dev/null || fail "--check: $($BIN --check --config $T/nat.yaml 2>&1)"
start_ferrovs $T/nat.yaml $T/nat.log
load() { ip netns exec $CLI python3 $HERE/httpload.py "$1" 80 "$2" "${3:-20}" 90; }
# The very first connection to the IPv6 VIP, no backend's MAC known yet: its SYN is held
# (its next hop riding in front of the frame to the management thread) until NDP answers.
t=$(ip netns exec $CLI curl -s -g -o /dev/null -w '%{time_total}' --max-time 5 'http://[2001:db8::10]/')
held=$($CTL -o json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["held_sent"])')
echo "first IPv6 request, backends' MACs unknown: ${t} s ($held held packets sent when NDP answered)"
python3 -c "import sys; sys.exit(0 if float('$t') < 0.9 and $held >= 1 else 1)" \
  || fail "the first IPv6 connection waited ${t} s, $held held packets sent (a dropped first SYN)"
load 2001:db8::10 12 3 > /dev/null # NDP warm-up both ways
r=$(load 2001:db8::10 1000 20); echo "nat, IPv6: 1000 requests: $r"
check_shares "$r" 1000 "hello from backend "
load 2001:db8::10 600 10 > $T/v6.json & p6=$!
load 10.0.0.10 600 10 > $T/v4.json & p4=$!
wait $p6; wait $p4
echo "nat, both families at once: IPv6 $(cat $T/v6.json)"
echo "                            IPv4 $(cat $T/v4.json)"
for f in v6 v4; do
  [ "$(jget 'd["ok"]' < $T/$f.json)" = 600 ] || fail "dual-stack load over $f: $(cat $T/$f.json)"
done
ip netns exec $CLI ping -6 -c 2 -W 2 -i 0.2 2001:db8::10 >/dev/null || fail "ping6 of the VIP not answered"
$CTL list > $T/list.txt
cat $T/list.txt
grep -E '^TCP  \[2001:db8::10\]:80 wrr' $T/list.txt >/dev/null || fail "ferrovsctl list: no IPv6 service line"
grep -E '^  -> \[fd00:1::13\]:80 +Masq +3 ' $T/list.txt >/dev/null || fail "ferrovsctl list: no IPv6 backend line"
learned=$($CTL neighbors | grep -cE '^(2001:db8::50|fd00:1::1[123]) .* learned' || true)
[ "$learned" -ge 4 ] || fail "expected the client and 3 backends learned by NDP, got $learned: $($CTL neighbors)"
active6=$($CTL -o json stats | jget 'd["flows"]["active_ipv6"]')
[ "$active6" -gt 0 ] || fail "no IPv6 flow in the table"
grep -E '"(ipv6_extension_header|malformed)": [1-9]' <($CTL -o json stats) >/dev/null && fail "IPv6 packets dropped as malformed or extension headers: $($CTL -o json stats)"
kill -TERM $FPID; wait $FPID || true

# --- dr, one-arm
STEP=dr
BR6=f6b$S; C6=f6c$S; L6=f6l$S
ip link add $BR6 type bridge; LINKS+=($BR6); ip link set $BR6 up
ip link add $L6 type veth peer name f6lp$S; LINKS+=($L6)
ip link set f6lp$S master $BR6; ip link set f6lp$S up; ip link set $L6 up
ethtool -K $L6 rx off tx off gro off >/dev/null 2>&1 || true
ip netns add $C6; NSS+=($C6)
ip link add f6cp$S type veth peer name c0 netns $C6; LINKS+=(f6cp$S)
ip link set f6cp$S master $BR6; ip link set f6cp$S up
ip netns exec $C6 sh -c "ip link set c0 up && ip link set lo up && ethtool -K c0 tx off >/dev/null"
v6 $C6 c0 2001:db8:2::50/64
for n in 1 2 3; do
  ns=f6d$n$S; NSS+=($ns); ip netns add $ns
  ip link add f6dp$n$S type veth peer name e0 netns $ns; LINKS+=(f6dp$n$S)
  ip link set f6dp$n$S master $BR6; ip link set f6dp$n$S up
  ip netns exec $ns sh -c "ip link set e0 up && ip link set lo up && ethtool -K e0 tx off >/dev/null"
  v6 $ns e0 2001:db8:2::1$n/64
  # The VIP on the loopback: the backend accepts it and answers from it, directly.
  ip netns exec $ns ip -6 addr add 2001:db8:2::100/128 dev lo
  # The tun VIP on a tunnel device: the kernel's ip6tnl, else a userspace decapsulator.
  if modprobe -q ip6_tunnel 2>/dev/null && ip netns exec $ns ip link show ip6tnl0 >/dev/null 2>&1; then
    TUNPATH="kernel ip6_tunnel"
    ip netns exec $ns sh -c "ip link set ip6tnl0 up && ip -6 addr add 2001:db8:2::200/128 dev ip6tnl0"
  else
    TUNPATH="userspace decapsulator (no ip6_tunnel module in this kernel)"
    ip netns exec $ns python3 -u $HERE/tundecap.py vip0 6 > $T/decap$n.log 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do grep -q ready $T/decap$n.log 2>/dev/null && break; sleep 0.1; done
    ip netns exec $ns sh -c "ip link set vip0 up && ip -6 addr add 2001:db8:2::200/128 dev vip0 nodad"
  fi
  start_nginx $ns $T/dr$n "dr backend $n"
done
API=127.0.0.1:$((23000 + S % 20000)); export FERROVS_API=http://$API
cat > $T/dr.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-v6dr-$S" }
ports:
  - { name: lan, device: "net_af_packet0,iface=$L6", addresses: ["2001:db8:2::1/64"] }
api: { listen: "$API" }
services:
  - name: dr6
    vip: "2001:db8:2::100"
    port: 80
    forward: dr
    scheduler: wrr
    backends: [ { address: "2001:db8:2::11", weight: 1 }, { address: "2001:db8:2::12", weight: 2 }, { address: "2001:db8:2::13", weight: 3 } ]
  - name: tun6
    vip: "2001:db8:2::200"
    port: 80
    forward: tun
    scheduler: wrr
    backends: [ { address: "2001:db8:2::11", weight: 1 }, { address: "2001:db8:2::12", weight: 2 }, { address: "2001:db8:2::13", weight: 3 } ]
YAML
start_ferrovs $T/dr.yaml $T/dr.log
load6() { ip netns exec $C6 python3 $HERE/httpload.py "${3:-2001:db8:2::100}" 80 "$1" "${2:-20}" 90; }
load6 12 3 > /dev/null
r=$(load6 1000 20); echo "dr, IPv6: 1000 requests: $r"
check_shares "$r" 1000 "dr backend "
STEP=tun
load6 12 3 2001:db8:2::200 > /dev/null
r=$(load6 1000 20 2001:db8:2::200); echo "tun, IPv6 (ip6ip6): 1000 requests: $r"
check_shares "$r" 1000 "dr backend "
echo "tun decapsulation: $TUNPATH"
STEP=dr
# The VIP's MAC the client learned is ferrovs's (its solicitation was answered by ferrovs,
# not by a backend holding the VIP on its loopback).
lbmac=$(cat /sys/class/net/$L6/address)
vipmac=$(ip netns exec $C6 ip -6 neigh show 2001:db8:2::100 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
[ "$vipmac" = "$lbmac" ] || fail "the client reaches the VIP at $vipmac, ferrovs is $lbmac"
$CTL list
echo "e2e ipv6: PASSED"
