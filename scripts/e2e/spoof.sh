#!/usr/bin/env bash
# End-to-end, forged frames from the client side (issue: attacks from the wire), on the
# demo's two-arm nat topology (wan 10.0.0.1/16 here, so that a flood's senders are on
# its subnet), while 20 long-lived connections send a request every 100 ms:
# - ARP spoofing: gratuitous ARP replies and requests claiming each backend's address and
#   the VIP at a forged MAC. No neighbor changes, no request fails.
# - Forged resets for each live connection: one from each backend's address arriving on
#   wan (the wrong port: dropped as wrong_port) and 20 from the client's address with
#   random sequence numbers (forwarded, but the flow is not ended: resets_ignored).
#   Every connection completes.
# - An ARP flood: 150,000 requests for wan's address from random senders of 10.0.1-255.x
#   with random MACs. The neighbor table stays within its bound, ferrovs's memory grows
#   by less than 64 MB, its log by at most a few lines a second, and the service works.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ferrovs.sh
e2e_begin spoof
source scripts/lib/nat-topology.sh
cleanup() {
  kill_pids
  nat_topology_down
}
trap cleanup EXIT INT TERM
fail() { echo "e2e spoof: FAILED: $*"; $CTL -o json stats 2>/dev/null | jget "(d[\"totals\"], {k: v for k, v in d[\"drops\"].items() if v})"; [ -f $T/ferrovs.log ] && tail -15 $T/ferrovs.log; exit 1; }

nat_topology_up
API=127.0.0.1:$((27000 + S % 20000)); export FERROVS_API=http://$API
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-spoof-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/16"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24"] }
api: { listen: "$API" }
services:
  - { name: web, vip: 10.0.0.10, port: 80, scheduler: rr, backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ] }
YAML
start_ferrovs $T/ferrovs.yaml $T/ferrovs.log
ip netns exec $CLI python3 $HERE/httpload.py 10.0.0.10 80 30 3 60 > /dev/null
lbmac=$(ip netns exec $CLI ip neigh show 10.0.0.10 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$lbmac" ] || fail "no MAC for the VIP"
backend_macs() { $CTL -o json neighbors | jget '" ".join(sorted(n["address"] + "=" + n["mac"] for n in d if n["address"].startswith("10.1.0.1")))'; }
before=$(backend_macs); echo "backends' MACs: $before"
[ "$(echo "$before" | wc -w)" = 3 ] || fail "backends not resolved"
rss() { awk '/VmRSS/ {print $2}' /proc/$FPID/status; }
rss0=$(rss); log0=$(wc -l < $T/ferrovs.log)

ip netns exec $CLI python3 $HERE/holdconns.py 10.0.0.10 80 20 10 0.1 5 > $T/hold.json & HP=$!
sleep 1.5
ports=$(ip netns exec $CLI ss -Htn state established dst 10.0.0.10 dport = :80 | awk '{split($3, a, ":"); print a[2]}' | paste -sd,)
[ -n "$ports" ] || fail "no live connections to forge resets for"
echo "spoof: $(ip netns exec $CLI python3 $HERE/spoof.py c0$S $lbmac arp 10.1.0.11,10.1.0.12,10.1.0.13,10.0.0.10)"
echo "spoof: $(ip netns exec $CLI python3 $HERE/spoof.py c0$S $lbmac rst 10.0.0.10 80 10.0.0.50 $ports 10.1.0.11:80,10.1.0.12:80,10.1.0.13:80) for $(echo $ports | tr , '\n' | wc -l) connections"
echo "spoof: $(ip netns exec $CLI python3 $HERE/spoof.py c0$S $lbmac arpflood 10.0.0.1 10.0 150000)"
wait $HP
r=$(sed 's/, "client_ports": \[[^]]*\]//' $T/hold.json); echo "long-lived connections: $r"
[ "$(echo "$r" | jget 'd["completed"]')" = 20 ] || fail "a forged frame broke a connection: $r"

after=$(backend_macs)
[ "$after" = "$before" ] || fail "a spoofed ARP changed a backend's MAC: $after"
$CTL -o json neighbors | jget '[n for n in d if n["address"] == "10.0.0.10"]' | grep -q '^\[\]$' || fail "the VIP was learned as a neighbor"
r=$(ip netns exec $CLI python3 $HERE/httpload.py 10.0.0.10 80 300 10 60); echo "after the attacks: $r"
[ "$(echo "$r" | jget 'd["errors"]')" = 0 ] || fail "requests failed after the attacks"

stats=$($CTL -o json stats)
wrong=$(echo "$stats" | jget 'd["drops"]["wrong_port"]'); ignored=$(echo "$stats" | jget 'd["totals"]["resets_ignored"]')
n=$($CTL -o json neighbors | jget 'len(d)'); rss1=$(rss); log1=$(wc -l < $T/ferrovs.log)
echo "ferrovs: wrong_port $wrong, resets_ignored $ignored, neighbors $n, RSS ${rss0} -> ${rss1} kB, log +$((log1 - log0)) lines, requests_suppressed $(echo "$stats" | jget 'd["totals"]["requests_suppressed"]')"
[ "$wrong" -ge 20 ] || fail "forged resets from the backends' addresses were not dropped as wrong_port"
[ "$ignored" -ge 300 ] || fail "blind resets were not ignored"
[ "$n" -le 65536 ] || fail "the neighbor table grew past its bound"
[ $((rss1 - rss0)) -lt 65536 ] || fail "memory grew by $((rss1 - rss0)) kB under the ARP flood"
[ $((log1 - log0)) -lt 200 ] || fail "the log grew by $((log1 - log0)) lines under the ARP flood"
kill -TERM $FPID; wait $FPID || true
echo "e2e spoof: PASSED"
