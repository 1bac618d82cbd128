#!/usr/bin/env bash
# The ferrovs demo: a client namespace, ferrovs on DPDK af_packet vdevs, and three nginx
# backends in NAT mode; real HTTP through the load balancer, ARP learned (no static
# neighbors), ferrovsctl list --stats, a live drain through the REST API. Cleans up on
# every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (network namespaces)"; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing what is missing and building"
bash scripts/setup.sh
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -p mgmt --bin ferrovs --bin ferrovsctl 2>&1 | tail -1
BIN=$PWD/target/release/ferrovs
CTL=$PWD/target/release/ferrovsctl

source scripts/lib/nat-topology.sh
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  nat_topology_down
}
trap cleanup EXIT INT TERM

say "creating the topology: client 10.0.0.50 -- [wan 10.0.0.1 | ferrovs | lan 10.1.0.1] -- bridge -- 3 nginx backends"
nat_topology_up

HUGE=false
if bash scripts/hugepages.sh 256 2M >/dev/null 2>&1; then HUGE=true; fi
API=127.0.0.1:$((20000 + S % 20000))
export FERROVS_API=http://$API
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: $HUGE, file_prefix: "ferrovs-demo-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24"] }
flows: { capacity: 65536 }
api: { listen: "$API" }
services:
  - name: web
    vip: 10.0.0.10
    port: 80
    scheduler: rr
    forward: nat
    backends:
      - { address: 10.1.0.11, port: 80 }
      - { address: 10.1.0.12, port: 80 }
      - { address: 10.1.0.13, port: 80 }
YAML
say "starting ferrovs (hugepages: $HUGE)"
RUST_LOG=info $BIN --config $T/ferrovs.yaml 2> $T/ferrovs.log &
PID=$!
for _ in $(seq 50); do grep -q "ferrovs running" $T/ferrovs.log && break; sleep 0.2; done
grep -q "ferrovs running" $T/ferrovs.log || { cat $T/ferrovs.log; echo "demo: ferrovs did not start"; exit 1; }
grep -E "port up|running" $T/ferrovs.log | sed 's/^.*INFO //'

run_requests() {
  for i in $(seq "$1"); do
    ip netns exec $CLI curl -s --max-time 3 http://10.0.0.10/ || echo "request $i FAILED"
  done | sort | uniq -c
}
say "9 HTTP requests from the client to the VIP 10.0.0.10 (rr over 3 backends)"
run_requests 9
say "1000 requests from 20 concurrent clients (a fresh connection each)"
ip netns exec $CLI python3 scripts/e2e/httpload.py 10.0.0.10 80 1000 20 60
say "neighbors ferrovs learned by ARP"
grep "neighbor learned" $T/ferrovs.log | sed 's/^.*INFO //'
say "ferrovsctl list --stats (ipvsadm -Ln --stats layout)"
$CTL list --stats
say "draining backend 3 live: ferrovsctl backend set web 10.1.0.13:80 --weight 0, then 9 more requests"
$CTL backend set web 10.1.0.13:80 --weight 0
$CTL list
run_requests 9
say "stopping ferrovs (SIGTERM) and cleaning up"
kill -TERM $PID; wait $PID; PID=""
tail -1 $T/ferrovs.log | sed 's/^.*INFO //'
