#!/usr/bin/env bash
# ferrovs links with a one-queue memif peer in either role (as pktgen's memif port is):
# dpdk-testpmd in txonly mode (one queue pair) sends UDP to a dr service's VIP; ferrovs,
# as the memif client and then as the server, must bring the link up, receive the
# packets and forward them (counted as tx, or tx_full: txonly never receives).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=target/release/ferrovs
[ -x "$BIN" ] || cargo build --release -p mgmt --bin ferrovs 2>&1 | tail -1
command -v dpdk-testpmd >/dev/null || { echo "e2e memif: dpdk-testpmd missing (apt-get install dpdk)"; exit 1; }
T=$(mktemp -d /tmp/ferrovs-memif-e2e.XXXX); S=$$
LB_MAC=02:00:00:00:0a:01; TP_MAC=02:00:00:00:00:99
PIDS=()
# Stops what runs, the last started first (memif: the client stops before the server).
stop_all() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() { stop_all; rm -rf "$T"; }
trap cleanup EXIT INT TERM

# $1: ferrovs's memif role; testpmd takes the other one.
run() {
  local role=$1 peer sock=$T/$1.sock
  [ "$role" = client ] && peer=server || peer=client
  PIDS=()
  cat > "$T/$role.yaml" <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "lb$S$role" }
ports:
  - { name: p0, device: "net_memif0,role=$role,socket=$sock,socket-abstract=no,mac=$LB_MAC", addresses: ["10.0.0.1/24"] }
neighbors: [ { address: 10.0.0.11, mac: "$TP_MAC", port: p0 } ]
api: { listen: "127.0.0.1:0" }
flows: { capacity: 65536 }
services:
  - { name: bench, vip: 10.0.0.100, port: 80, protocol: udp, forward: dr, scheduler: mh, backends: [ { address: 10.0.0.11 } ] }
YAML
  testpmd() {
    dpdk-testpmd -l 0,1 --no-pci --file-prefix "tp$S$role" --no-huge -m 1024 --log-level '*:warning' \
      --vdev="net_memif0,role=$peer,socket=$sock,socket-abstract=no,mac=$TP_MAC" -- \
      --forward-mode=txonly --nb-cores=1 --rxq=1 --txq=1 --total-num-mbufs=8192 \
      --eth-peer=0,$LB_MAC --tx-ip=10.0.0.50,10.0.0.100 --tx-udp=1024,80 --stats-period=1 \
      > "$T/testpmd-$role.log" 2>&1 &
    PIDS+=($!)
  }
  ferrovs() {
    "$BIN" --config "$T/$role.yaml" > "$T/ferrovs-$role.log" 2>&1 &
    PIDS+=($!)
  }
  # memif: the server starts first, and the client once the server's port is started
  # (its socket exists from the probe on, before the port can accept a client).
  local log ready
  if [ "$role" = server ]; then
    ferrovs; log=$T/ferrovs-$role.log; ready="ferrovs running"
  else
    testpmd; log=$T/testpmd-$role.log; ready="Checking link statuses"
  fi
  for _ in $(seq 150); do [ -S "$sock" ] && grep -q "$ready" "$log" 2>/dev/null && break; sleep 0.1; done
  grep -q "$ready" "$log" || { tail -n 20 "$T"/*.log; echo "e2e memif ($role): FAILED: the memif server did not start"; exit 1; }
  sleep 0.5
  if [ "$role" = server ]; then testpmd; else ferrovs; fi
  local api=""
  for _ in $(seq 100); do
    api=$(sed -n 's/.*api listening api_addr=\([0-9.:]*\).*/\1/p' "$T/ferrovs-$role.log" | head -1)
    [ -n "$api" ] && grep -q "ferrovs running" "$T/ferrovs-$role.log" && break
    sleep 0.1
  done
  [ -n "$api" ] || { cat "$T/ferrovs-$role.log"; echo "e2e memif ($role): FAILED: ferrovs did not start"; exit 1; }
  local stats="" ok=""
  for _ in $(seq 20); do
    sleep 0.5
    stats=$(curl -s "http://$api/api/v1/stats")
    if python3 - "$stats" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
t = d["totals"]
sys.exit(0 if d["ports"][0]["link_up"] and t["rx"] > 10000 and t["tx"] + d["drops"]["tx_full"] > 10000 else 1)
PY
    then ok=1; break; fi
  done
  python3 - "$role" "$stats" <<'PY'
import json, sys
d = json.loads(sys.argv[2]); p = d["ports"][0]; t = d["totals"]
print("e2e memif (ferrovs %s of a one-queue testpmd): link %s, rx_queues %d, tx_queues %d (%s), rx %d, forwarded %d (tx %d, tx_full %d), other drops %d"
      % (sys.argv[1], "up" if p["link_up"] else "DOWN", p["rx_queues"], p["tx_queues"], p["mgmt_tx"], t["rx"],
         t["tx"] + d["drops"]["tx_full"], t["tx"], d["drops"]["tx_full"], t["drops"] - d["drops"]["tx_full"]))
PY
  if [ -z "$ok" ]; then
    tail -n 20 "$T/ferrovs-$role.log" "$T/testpmd-$role.log"
    echo "e2e memif ($role): FAILED: no link, or packets not received and forwarded"
    exit 1
  fi
  stop_all
}

run client
run server
echo "e2e memif: passed"
