#!/usr/bin/env bash
# End-to-end, a SYN flood against a dr service (issue: attacks from the wire): the
# one-arm topology with a small flow table (8192 flows) and the flood of synflood.sh
# (random sources, 20,000 SYN/s for 12 s from an AF_PACKET socket on the client's
# segment) while a steady load opens fresh connections and 20 long-lived connections
# send a request every 100 ms. dr gets no SYN cookies (its backends answer the clients
# themselves): half-open flows are dropped early to make room, and a SYN that finds no
# room is sent where Maglev says (the scheduler is mh). Asserts: >= 95% of the new
# connections during the flood succeed, every long-lived connection completes, new
# connections work again within 1 s of the flood's end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ferrovs.sh
source scripts/lib/synflood.sh
e2e_begin "synflood dr"
S=$$; T=$(mktemp -d /tmp/ferrovs-flood-dr.XXXX)
VIP=10.2.0.100
cleanup() {
  kill_pids
  remove_nss_links
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() { echo "e2e synflood dr: FAILED: $*"; [ -f $T/ferrovs.log ] && tail -15 $T/ferrovs.log; exit 1; }
source scripts/lib/one-arm-topology.sh

one_arm_topology dr
API=127.0.0.1:$((29000 + S % 20000)); export FERROVS_API=http://$API
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-flood-dr-$S" }
ports:
  - { name: lan, device: "net_af_packet0,iface=$LB", addresses: ["10.2.0.1/24"] }
flows: { capacity: 8192 }
api: { listen: "$API" }
services:
  - { name: web, vip: $VIP, port: 80, forward: dr, scheduler: mh, backends: [ { address: 10.2.0.11 }, { address: 10.2.0.12 }, { address: 10.2.0.13 } ] }
YAML
start_ferrovs $T/ferrovs.yaml $T/ferrovs.log
ip netns exec $CLI python3 $HERE/httpload.py $VIP 80 12 3 60 > /dev/null
vipmac=$(ip netns exec $CLI ip neigh show $VIP | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$vipmac" ] || fail "no MAC for the VIP"

ip netns exec $CLI python3 $HERE/holdconns.py $VIP 80 20 17 0.1 10 > $T/hold.json & HP=$!
ip netns exec $CLI python3 $HERE/steadyload.py $VIP 80 17 2 > $T/steady.json & SP=$!
sleep 2
t0=$(date +%s.%N)
ip netns exec $CLI python3 $HERE/synflood.py c0 $vipmac $VIP 80 12 ${FLOOD_PPS:-20000} > $T/flood.json
t1=$(date +%s.%N)
wait $SP; wait $HP
echo "flood: $(cat $T/flood.json) (random sources in 198.18.0.0/16 -> $VIP:80, dr)"
$CTL -o json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); t=d["totals"]; print("ferrovs:", {"new_flows": t["new_flows"], "early_drops": t["early_drops"], "table_full": t["table_full"], "syn_cookies_sent": t["syn_cookies_sent"], "flows_active": d["flows"]["active"], "dropped": {k: v for k, v in d["drops"].items() if v}})'
during_flood $T/steady.json $t0 $t1 || fail "legitimate connections during the flood: see above"
long_lived_completed $T/hold.json || fail "long-lived connections broke during the flood"
kill -TERM $FPID; wait $FPID || true
echo "e2e synflood dr: PASSED"
