#!/usr/bin/env bash
# End-to-end, source NAT: the demo's two-arm topology, an "internet" server in the client
# namespace (beyond the wan port) that answers with the address each connection came
# from. A backend (default route via ferrovs) opens 200 concurrent connections to it over
# IPv4 and 200 over IPv6: every one is answered, every one seen as coming from the rule's
# `to` address (ferrovs's wan address), never from the backend; its pings (ICMP echo,
# identifier translated) are answered over both families. Meanwhile the nat service
# works as before (its replies are not source-translated). GET /api/v1/snat and
# ferrovsctl snat show the rule. The first connection through the VIP, while no backend's
# MAC is known yet, completes without waiting for a SYN retransmission.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ferrovs.sh
e2e_begin snat
source scripts/lib/nat-topology.sh
cleanup() {
  kill_pids
  nat_topology_down
}
trap cleanup EXIT INT TERM
fail() { echo "e2e snat: FAILED: $*"; [ -f $T/ferrovs.log ] && tail -15 $T/ferrovs.log; exit 1; }

nat_topology_up
v6addr $CLI c0$S 2001:db8::50/64
v6addr fdbe1$S e1$S fd00:1::11/64
ip netns exec fdbe1$S ip -6 route add default via fd00:1::1
ip netns exec $CLI python3 $HERE/echoaddr.py 8000 > /dev/null 2>&1 &
PIDS+=($!)
API=127.0.0.1:$((25000 + S % 20000)); export FERROVS_API=http://$API
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-snat-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24", "2001:db8::1/64"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24", "fd00:1::1/64"] }
flows: { capacity: 65536, capacity_ipv6: 65536 }
api: { listen: "$API" }
snat:
  - { source: "10.1.0.0/24", port: wan, to: ["10.0.0.1"], port_range: "20000-29999" }
  - { source: "fd00:1::/64", port: wan, to: ["2001:db8::1"] }
services:
  - { name: web, vip: 10.0.0.10, port: 80, scheduler: rr, backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ] }
YAML
start_ferrovs $T/ferrovs.yaml $T/ferrovs.log
for _ in $(seq 30); do ip netns exec $CLI ss -ltn | grep -q ':8000 ' && break; sleep 0.1; done
# The very first connection through the VIP, while no backend's MAC is known: its SYN is
# held until the backend answers ARP (not dropped: a SYN retransmission would take 1 s).
t=$(ip netns exec $CLI curl -s -o /dev/null -w '%{time_total}' --max-time 5 http://10.0.0.10/)
echo "first request through the VIP, backends' MACs unknown: ${t} s ($($CTL -o json stats | python3 -c 'import json,sys; t=json.load(sys.stdin)["totals"]; print(t["held"], "held,", t["held_sent"], "sent when the neighbor answered")'))"
python3 -c "import sys; sys.exit(0 if float('$t') < 0.9 else 1)" || fail "the first connection waited ${t} s (a dropped first SYN)"

outbound() { # server address, expected source
  ip netns exec fdbe1$S python3 - "$1" "$2" <<'PY'
import http.client, json, sys, threading
host, want = sys.argv[1], sys.argv[2]
res = {"ok": 0, "wrong_source": 0, "errors": 0, "ports": set()}
lock = threading.Lock()
def one():
    try:
        c = http.client.HTTPConnection(host, 8000, timeout=10)
        c.request("GET", "/"); body = c.getresponse().read().decode().split()
        c.close()
        with lock:
            if body[0] == want:
                res["ok"] += 1; res["ports"].add(int(body[1]))
            else:
                res["wrong_source"] += 1
    except Exception:
        with lock:
            res["errors"] += 1
ts = [threading.Thread(target=one) for _ in range(200)]
for t in ts: t.start()
for t in ts: t.join()
res["distinct_ports"] = len(res.pop("ports"))
print(json.dumps(res))
PY
}
ip netns exec fdbe1$S curl -s --max-time 5 http://10.0.0.50:8000/ > /dev/null || true # neighbors warm-up
r=$(outbound 10.0.0.50 10.0.0.1); echo "snat IPv4: 200 concurrent connections from a backend: $r"
echo "$r" | grep -q '"ok": 200' || fail "IPv4 outbound: $r"
ip netns exec fdbe1$S curl -sg --max-time 5 "http://[2001:db8::50]:8000/" > /dev/null || true
r=$(outbound 2001:db8::50 2001:db8::1); echo "snat IPv6: 200 concurrent connections from a backend: $r"
echo "$r" | grep -q '"ok": 200' || fail "IPv6 outbound: $r"
for dst in 10.0.0.50 2001:db8::50; do
  ip netns exec fdbe1$S ping -c 3 -W 2 -i 0.2 $dst > $T/ping.txt || fail "ping from a backend to $dst through snat: $(cat $T/ping.txt)"
  echo "snat ping $dst: $(grep -o '[0-9]* received' $T/ping.txt)"
done
r=$(ip netns exec $CLI python3 $HERE/httpload.py 10.0.0.10 80 300 10 60); echo "the nat service meanwhile: $r"
echo "$r" | grep -q '"ok": 300' || fail "the nat service with snat configured: $r"
$CTL snat
$CTL -o json snat | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[0]["to"][0]["ports_in_use"] > 0 and d[0]["port_range"] == "20000-29999", d' || fail "GET /api/v1/snat: $($CTL -o json snat)"
kill -TERM $FPID; wait $FPID || true
echo "e2e snat: PASSED"
