#!/usr/bin/env bash
# End-to-end, a SYN flood against a nat service (issue: attacks from the wire): the demo's
# two-arm topology with a small flow table (8192 flows), a random-source SYN flood from
# the client side through an AF_PACKET socket (pre-built frames, as fast as one core
# sends them) for 12 s, while a steady load opens fresh connections and 20 long-lived
# connections send a request every 100 ms. Without early drop the flood fills the table
# with half-open flows and nat's new connections fail (their replies cannot be
# translated); with it, a new SYN makes room. Asserts: >= 95% of the new connections
# during the flood succeed, every long-lived connection completes, and new connections
# work again within 1 s of the flood's end. Prints the injected rate and the counters.
# Then the same over IPv6 (an IPv6 VIP, a flood from random IPv6 sources, 8 s): SYN
# cookies answer it, and >= 95% of the new IPv6 connections during it succeed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ferrovs.sh
source scripts/lib/synflood.sh
e2e_begin synflood
source scripts/lib/nat-topology.sh
cleanup() {
  kill_pids
  nat_topology_down
}
trap cleanup EXIT INT TERM
fail() { echo "e2e synflood: FAILED: $*"; [ -f $T/ferrovs.log ] && tail -15 $T/ferrovs.log; exit 1; }

nat_topology_up
nat_topology_v6
API=127.0.0.1:$((26000 + S % 20000)); export FERROVS_API=http://$API
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-flood-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24", "2001:db8::1/64"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24", "fd00:1::1/64"] }
flows: { capacity: 8192, capacity_ipv6: 8192 }
api: { listen: "$API" }
services:
  - { name: web6, vip: "2001:db8::10", port: 80, scheduler: rr, backends: [ { address: "fd00:1::11" }, { address: "fd00:1::12" }, { address: "fd00:1::13" } ] }
  - { name: web, vip: 10.0.0.10, port: 80, scheduler: rr, backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ] }
YAML
start_ferrovs $T/ferrovs.yaml $T/ferrovs.log
ip netns exec $CLI python3 $HERE/httpload.py 10.0.0.10 80 12 3 60 > /dev/null
vipmac=$(ip netns exec $CLI ip neigh show 10.0.0.10 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$vipmac" ] || fail "no MAC for the VIP"

ip netns exec $CLI python3 $HERE/holdconns.py 10.0.0.10 80 20 17 0.1 10 > $T/hold.json & HP=$!
ip netns exec $CLI python3 $HERE/steadyload.py 10.0.0.10 80 17 2 > $T/steady.json & SP=$!
sleep 2
t0=$(date +%s.%N)
ip netns exec $CLI python3 $HERE/synflood.py c0$S $vipmac 10.0.0.10 80 12 ${FLOOD_PPS:-20000} > $T/flood.json
t1=$(date +%s.%N)
wait $SP; wait $HP
echo "flood: $(cat $T/flood.json) (random sources in 198.18.0.0/16 -> 10.0.0.10:80)"
$CTL -o json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); t=d["totals"]; print("ferrovs:", {"new_flows": t["new_flows"], "early_drops": t["early_drops"], "table_full": t["table_full"], "syn_cookies_sent": t["syn_cookies_sent"], "syn_cookies_valid": t["syn_cookies_valid"], "syn_proxied": t["syn_proxied"], "flows_active": d["flows"]["active"], "dropped": {k: v for k, v in d["drops"].items() if v}})'
during_flood $T/steady.json $t0 $t1 || fail "legitimate connections during the flood: see above"
long_lived_completed $T/hold.json || fail "long-lived connections broke during the flood"

# IPv6: the same kind of flood from random IPv6 sources, against the IPv6 VIP.
sleep 2
ip netns exec $CLI python3 $HERE/httpload.py 2001:db8::10 80 6 3 30 > /dev/null || fail "no IPv6 service before the flood"
vipmac6=$(ip netns exec $CLI ip -6 neigh show 2001:db8::10 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$vipmac6" ] || fail "no MAC for the IPv6 VIP"
totals() { $CTL -o json stats | jget "d['totals']['$1']"; }
sent0=$(totals syn_cookies_sent); valid0=$(totals syn_cookies_valid)
ip netns exec $CLI python3 $HERE/steadyload.py 2001:db8::10 80 12 2 > $T/steady6.json & SP=$!
sleep 2
t0=$(date +%s.%N)
ip netns exec $CLI python3 $HERE/synflood.py c0$S $vipmac6 2001:db8::10 80 8 ${FLOOD_PPS:-20000} > $T/flood6.json
t1=$(date +%s.%N)
wait $SP
sent=$(( $(totals syn_cookies_sent) - sent0 )); valid=$(( $(totals syn_cookies_valid) - valid0 ))
echo "IPv6 flood: $(cat $T/flood6.json) (random sources in 2001:db8:ffff::/48 -> [2001:db8::10]:80); cookie SYN-ACKs $sent, handshakes through a cookie $valid"
during_flood $T/steady6.json $t0 $t1 || fail "legitimate IPv6 connections during the flood: see above"
[ "$sent" -gt 1000 ] || fail "SYN cookies did not answer the IPv6 flood"
[ "$valid" -gt 0 ] || fail "no IPv6 connection came through a cookie"
kill -TERM $FPID; wait $FPID || true
echo "e2e synflood: PASSED"
