#!/usr/bin/env bash
# The exception path in the NAT demo topology: both ports get a kernel interface in a
# namespace of their own. From that namespace, ping and curl reach a backend through the
# lan port (the kernel's ARP resolves through it too); a TCP listener there answers the
# client on the wan port's address; all while 1000 requests go to the VIP with no error.
# ferrovs's static routes are the kernel's too (a reload removes them); then a short
# measurement of packets/s through the exception path both ways.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$PWD/target/release/ferrovs
CTL=$PWD/target/release/ferrovsctl
[ -x "$BIN" ] && [ -x "$CTL" ] || cargo build --release -p mgmt --bin ferrovs --bin ferrovsctl 2>&1 | tail -1
source scripts/lib/nat-topology.sh
XNS=fvx$S; PID=""
cleanup() {
  [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  ip netns pids $XNS 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del $XNS 2>/dev/null || true
  nat_topology_down
}
trap cleanup EXIT INT TERM
fail() { tail -n 30 "$T/ferrovs.log" 2>/dev/null; echo "e2e exception path: FAILED: $*"; exit 1; }
nat_topology_up
API=127.0.0.1:$((21000 + S % 20000))
export FERROVS_API=http://$API
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-x-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24"], kernel_interface: "fvw$S" }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24"], kernel_interface: "fvl$S" }
exception_path: { netns: "$XNS" }
flows: { capacity: 65536 }
api: { listen: "$API" }
routes: [ { prefix: "192.0.2.0/24", via: "10.0.0.50" } ]
services:
  - name: web
    vip: 10.0.0.10
    port: 80
    scheduler: rr
    backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ]
YAML
"$BIN" --config $T/ferrovs.yaml --check >/dev/null || fail "--check"
FERROVS_LOCK_DIR=$T/locks "$BIN" --config $T/ferrovs.yaml 2> $T/ferrovs.log & PID=$!
for _ in $(seq 100); do grep -q "ferrovs running" $T/ferrovs.log && break; sleep 0.1; done
grep -q "ferrovs running" $T/ferrovs.log || fail "ferrovs did not start"
grep "exception path up" $T/ferrovs.log | sed 's/^.*INFO //'
ip -n $XNS -br addr show | grep -E "fv[wl]$S" || fail "no kernel interfaces in $XNS"
X="ip netns exec $XNS"
# A listener in the exception namespace, on the wan address: echoes one line back.
$X python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.0.1", 2222)); s.listen(8); s.settimeout(60)
while True:
    c, _ = s.accept(); c.settimeout(5); d = c.recv(100); c.sendall(b"echo " + d); c.close()
' & LISTENER=$!
# VIP traffic all along.
ip netns exec $CLI python3 scripts/e2e/httpload.py 10.0.0.10 80 1000 10 60 > $T/load.json & LOAD=$!
$X ping -c 3 -i 0.2 -W 2 10.1.0.11 > $T/ping.txt || { cat $T/ping.txt; fail "ping from the exception namespace to a backend"; }
echo "exception path: $(grep -E 'packets transmitted' $T/ping.txt)"
body=$($X curl -s --max-time 5 http://10.1.0.12/) || fail "curl from the exception namespace to a backend"
[[ "$body" == "hello from backend 2"* ]] || fail "curl got: $body"
echo "exception path: curl from $XNS to 10.1.0.12 -> $body"
for i in 1 2 3; do
  got=$(ip netns exec $CLI python3 -c '
import socket, sys
c = socket.create_connection(("10.0.0.1", 2222), timeout=5); c.sendall(b"hi '"$i"'\n"); print(c.recv(100).decode().strip())
') || fail "TCP from the client to the listener in $XNS"
  [ "$got" = "echo hi $i" ] || fail "TCP to the exception namespace got: $got"
done
echo "exception path: 3 TCP connections from the client to 10.0.0.1:2222 in $XNS answered"
wait $LOAD
load=$(cat $T/load.json)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["ok"] == 1000 and d["errors"] == 0, d' "$load" || fail "VIP load: $load"
echo "exception path: 1000 VIP requests meanwhile: $load"
kill $LISTENER 2>/dev/null || true
# The kernel's ARP resolved through the port, and ferrovs's own table learned too.
$X ip neigh show 10.1.0.12 | grep -q lladdr || fail "the kernel did not resolve 10.1.0.12"
"$CTL" neighbors | grep "^10.1.0.11 " >/dev/null || fail "ferrovs did not learn 10.1.0.11"
# Packets/s through the exception path, both ways (UDP, 64-byte payloads, 2 s each).
ip netns exec $CLI python3 scripts/e2e/udprate.py recv 10.0.0.50 9000 3 > $T/from_kernel.txt & R=$!
sleep 0.3; $X python3 scripts/e2e/udprate.py send 10.0.0.50 9000 2 > /dev/null; wait $R
$X python3 scripts/e2e/udprate.py recv 10.0.0.1 9001 3 > $T/to_kernel.txt & R=$!
sleep 0.3; ip netns exec $CLI python3 scripts/e2e/udprate.py send 10.0.0.1 9001 2 > /dev/null; wait $R
echo "exception path rate: kernel -> port -> client: $(cat $T/from_kernel.txt); client -> port -> kernel: $(cat $T/to_kernel.txt)"
"$CTL" stats -o json | python3 -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    k = p["kernel"]
    print("exception path: port %s (%s): to_kernel %d, from_kernel %d, dropped %d / %d" % (p["name"], k["interface"], k["to_kernel"], k["from_kernel"], k["to_kernel_dropped"], k["from_kernel_dropped"]))
    assert k["to_kernel"] > 0 and k["from_kernel"] > 0, p
'
# The static route (the client as the router of 192.0.2.0/24) is the kernel's too.
ip -n $CLI addr add 192.0.2.1/32 dev lo
ip -n $XNS route show 192.0.2.0/24 | grep -q "via 10.0.0.50 dev fvw$S" || fail "the static route is not in $XNS"
$X ping -c 2 -i 0.2 -W 2 192.0.2.1 >/dev/null || fail "ping through the static route from $XNS"
sed -i '/^routes:/d' $T/ferrovs.yaml; kill -HUP $PID; sleep 1
! grep -A2 "reload rejected" $T/ferrovs.log || fail "the reload was rejected"
[ -z "$(ip -n $XNS route show 192.0.2.0/24)" ] || fail "a reload without the route left it in $XNS"
echo "exception path: static route 192.0.2.0/24 via 10.0.0.50 in $XNS (ping through it), removed by a reload"
kill -TERM $PID; wait $PID || true; PID=""
echo "e2e exception path: passed"
