#!/usr/bin/env bash
# Health checks in the NAT topology, probes leaving through lan's kernel interface:
#  * an http check that gets 500 from backend 3 marks it down, a tcp check does not;
#  * under steady load, backend 1's nginx is killed: the failures stop within
#    fall x interval + timeout (the time and the number of failed requests are printed),
#    a reload and an API weight change meanwhile keep it down; nginx comes back: the
#    backend gets traffic again after rise probes; the other backends never fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$PWD/target/release/ferrovs
CTL=$PWD/target/release/ferrovsctl
[ -x "$BIN" ] && [ -x "$CTL" ] || cargo build --release -p mgmt --bin ferrovs --bin ferrovsctl 2>&1 | tail -1
source scripts/lib/nat-topology.sh
source scripts/lib/health.sh
XNS=fvh$S; PID=""
cleanup() {
  [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  ip netns del $XNS 2>/dev/null || true
  nat_topology_down
}
trap cleanup EXIT INT TERM
fail() { tail -n 30 "$T/ferrovs.log" 2>/dev/null; echo "e2e health: FAILED: $*"; exit 1; }
nat_topology_up
# Backend 3 answers /healthz with 500 (and everything else with 200).
kill "$(cat $T/be3/nginx.pid)"; sleep 0.3
start_nginx fdbe3$S $T/be3 "hello from backend 3 (10.1.0.13)" 500
HC_INTERVAL_MS=500; HC_TIMEOUT_MS=300; HC_RISE=2; HC_FALL=3
API=127.0.0.1:$((22000 + S % 20000))
export FERROVS_API=http://$API
check() { echo "{ type: $1, interval_ms: $HC_INTERVAL_MS, timeout_ms: $HC_TIMEOUT_MS, rise: $HC_RISE, fall: $HC_FALL $2 }"; }
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-h-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24"], kernel_interface: "fvl$S" }
exception_path: { netns: "$XNS" }
flows: { capacity: 65536 }
api: { listen: "$API" }
services:
  - name: web
    vip: 10.0.0.10
    port: 80
    scheduler: rr
    health_check: $(check tcp "")
    backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ]
  - name: webhttp
    vip: 10.0.0.20
    port: 80
    scheduler: rr
    health_check: $(check http ", path: /healthz, expect_status: 200")
    backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ]
YAML
"$BIN" --config $T/ferrovs.yaml --check >/dev/null || fail "--check"
FERROVS_LOCK_DIR=$T/locks "$BIN" --config $T/ferrovs.yaml 2> $T/ferrovs.log & PID=$!
for _ in $(seq 100); do grep -q "ferrovs running" $T/ferrovs.log && break; sleep 0.1; done
grep -q "ferrovs running" $T/ferrovs.log || fail "ferrovs did not start"
sleep 2.5
[ "$(backend_health webhttp 10.1.0.13:80)" = down ] || fail "the http check did not mark backend 3 (HTTP 500) down"
[ "$(backend_health web 10.1.0.13:80)" = up ] || fail "the tcp check marked backend 3 down"
[ "$(backend_health web 10.1.0.11:80)" = up ] || fail "backend 1 is not up"
echo "e2e health: http check: backend 3 down (HTTP 500); tcp check: backend 3 up"
"$CTL" health | sed 's/^/  /'
# A backend added at runtime is probed at once; nothing listens there: it goes down.
"$CTL" backend add web 10.1.0.14:80 >/dev/null
sleep 0.6
probed=$(curl -s "http://$API/api/v1/health" | python3 -c '
import json, sys
r = [r for r in json.load(sys.stdin) if r["backend"] == "10.1.0.14:80"]
print(r[0]["probes_ok"] + r[0]["probes_failed"] if r else 0)')
[ "$probed" -ge 1 ] || fail "a backend added at runtime was not probed within 0.6 s"
for _ in $(seq 30); do [ "$(backend_health web 10.1.0.14:80)" = down ] && break; sleep 0.1; done
[ "$(backend_health web 10.1.0.14:80)" = down ] || fail "the added backend with nothing behind it is not down"
"$CTL" backend del web 10.1.0.14:80 >/dev/null
echo "e2e health: a backend added at runtime: probed within 0.6 s, down after $HC_FALL failed probes"
echo "e2e health: nat: backend 1's nginx killed under load, a reload and an API weight change while down, nginx back:"
health_outage $CLI 10.0.0.10 fdbe1$S $T/be1 "hello from backend 1 (10.1.0.11)" "backend 1" web 10.1.0.11:80 \
  'kill -HUP $PID; "$CTL" backend set web 10.1.0.12:80 --weight 2 >/dev/null'
! grep -A2 "reload rejected" $T/ferrovs.log || fail "the reload was rejected"
grep -E "backend (down|up): web 10.1.0.11" $T/ferrovs.log | sed 's/^.*\(WARN\|INFO\) //' | head -3
n_down=$(grep -c "backend down: web 10.1.0.11:80: connect refused after $HC_FALL failures" $T/ferrovs.log || true)
[ "$n_down" = 1 ] || fail "the transition was logged $n_down times, not once"
curl -s "http://$API/metrics" | grep -E '^ferrovs_backend_up\{service="web".*backend="10.1.0.11:80"\} 1' >/dev/null \
  || fail "ferrovs_backend_up for backend 1 is not 1 again"
curl -s "http://$API/metrics" | grep -E '^ferrovs_health_checks_total\{service="web",backend="10.1.0.11:80",result="failed"\} [1-9]' >/dev/null \
  || fail "ferrovs_health_checks_total lacks backend 1's failures"
# Every backend of web down: the service says so, new flows are dropped as no_backend.
for n in 1 2 3; do kill "$(cat $T/be$n/nginx.pid)"; done
state=""
for _ in $(seq 40); do
  state=$(curl -s "http://$API/api/v1/services/web" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$state" = down ] && break; sleep 0.1
done
[ "$state" = down ] || fail "service web is not down with every backend down"
nb() { "$CTL" stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["drops"]["no_backend"])'; }
before=$(nb)
ip netns exec $CLI curl -s -m 1 http://10.0.0.10/ >/dev/null && fail "a request got through with every backend down"
after=$(nb)
[ "$after" -gt "$before" ] || fail "no_backend drops did not grow ($before -> $after)"
echo "e2e health: every backend down: service web is down, new flows dropped as no_backend ($before -> $after)"
kill -TERM $PID; wait $PID || true; PID=""
echo "e2e health: passed"
