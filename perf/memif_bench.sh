#!/usr/bin/env bash
# Between processes: our generator (ferrovs-gen) on a net_memif client port against
#   1. the ferrovs daemon on the memif server port (dr: the backend's MAC is the
#      generator's, so what ferrovs forwards comes straight back), and
#   2. dpdk-testpmd --forward-mode=io on the same memif setup: the ceiling.
# Reports Mpps and p50/p99 latency of both from one run, and their ratio. memif copies
# packets between processes: here it caps both near 10-13 Mpps (DPDK-NOTES.md), so this
# shows ferrovs keeping up, not its per-packet cost (see perf/bench.sh for that).
#   perf/memif_bench.sh [flows] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${1:-1000}; SECS=${2:-5}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -p perf --bin ferrovs-gen -p mgmt --bin ferrovs 2>&1 | tail -1
S=$$; T=$(mktemp -d /tmp/ferrovs-memif.XXXX); SOCK=$T/lb.sock
LB_MAC=02:00:00:00:0a:01; GEN_MAC=02:00:00:00:00:99
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT INT TERM
MEM="--no-huge -m 512"; HUGE=false
if [ "$(id -u)" -eq 0 ] && bash scripts/hugepages.sh 512 2M >/dev/null 2>&1; then MEM="-m 256 --in-memory"; HUGE=true; fi
SERVER="net_memif0,role=server,socket=$SOCK,socket-abstract=no,mac=$LB_MAC"
gen() { # $1 = label, $2 = target rate in Mpps (0: maximum)
  sleep 1
  target/release/ferrovs-gen --rate "${2:-0}" --eal "-l 0 --no-pci --file-prefix gen$S $MEM --log-level *:warning --vdev=net_memif0,role=client,socket=$SOCK,socket-abstract=no,mac=$GEN_MAC" \
    --dst-mac $LB_MAC --vip 10.0.0.100 --flows $FLOWS --seconds $SECS 2>/dev/null | grep -E "^(total|JSON)" | sed "s/^/$1 /"
}

cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: $HUGE, file_prefix: "lb$S" }
ports:
  - { name: p0, device: "$SERVER", addresses: ["10.0.0.1/24"] }
routes: [ { prefix: "172.16.0.0/12", via: "10.0.0.254" } ]
neighbors:
  - { address: 10.0.0.11, mac: "$GEN_MAC", port: p0 }
  - { address: 10.0.0.254, mac: "$GEN_MAC", port: p0 }
api: { listen: "127.0.0.1:0" }
flows: { capacity: ${CAPACITY:-1048576} }
services:
  - { name: bench, vip: 10.0.0.100, port: 80, forward: dr, scheduler: mh, backends: [ { address: 10.0.0.11 } ] }
YAML
target/release/ferrovs --config $T/ferrovs.yaml 2> $T/ferrovs.log & PID=$!
for _ in $(seq 100); do grep -q "ferrovs running" $T/ferrovs.log && break; sleep 0.1; done
grep -q "ferrovs running" $T/ferrovs.log || { cat $T/ferrovs.log; exit 1; }
FERROVS=$(gen "ferrovs dr, max:")
MAX=$(echo "$FERROVS" | sed -n 's/.*JSON //p' | python3 -c 'import json,sys; print(json.load(sys.stdin)["rx_mpps"])')
R50=$(python3 -c "print(round($MAX * 0.5, 3))"); R90=$(python3 -c "print(round($MAX * 0.9, 3))")
F50=$(gen "ferrovs dr, 50%:" $R50); F90=$(gen "ferrovs dr, 90%:" $R90)
kill -TERM $PID; wait $PID || true; PID=""
printf '%s\n' "$FERROVS" "$F50" "$F90" | grep -v JSON

dpdk-testpmd -l 0,1 --no-pci --file-prefix tp$S $MEM --log-level '*:warning' --vdev="$SERVER" -- \
  --forward-mode=io --nb-cores=1 --stats-period=1 > $T/testpmd.log 2>&1 & PID=$!
CEIL=$(gen "testpmd io, max:")
C50=$(gen "testpmd io, same 50%:" $R50); C90=$(gen "testpmd io, same 90%:" $R90)
kill -INT $PID; wait $PID || true; PID=""
printf '%s\n' "$CEIL" "$C50" "$C90" | grep -v JSON
mkdir -p perf/results
printf '%s\n' "$FERROVS" "$F50" "$F90" "$CEIL" "$C50" "$C90" | sed -n 's/^\(.*\): .*JSON /{"run": "\1", "result": /p' | sed 's/$/}/' > perf/results/memif-$(date +%Y%m%d-%H%M%S).json
python3 - "$FERROVS" "$CEIL" <<'PY'
import json, sys
f = json.loads(sys.argv[1].split("JSON ", 1)[1]); c = json.loads(sys.argv[2].split("JSON ", 1)[1])
print("memif, %d flows: ferrovs %.2f Mpps (p50 %.1f us, p99 %.1f us), testpmd io %.2f Mpps (p50 %.1f us, p99 %.1f us): ratio %.2f"
      % (f["flows"], f["rx_mpps"], f["latency_us"]["p50"], f["latency_us"]["p99"], c["rx_mpps"], c["latency_us"]["p50"], c["latency_us"]["p99"], f["rx_mpps"] / c["rx_mpps"] if c["rx_mpps"] else 0))
PY
