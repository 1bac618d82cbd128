#!/usr/bin/env bash
# ferrovs benchmark harness, in-process part: a generator lcore and a real ferrovs worker
# lcore joined by DPDK ring ports (perf/src/bin/ferrovs-bench.rs), hugepages on when they
# can be reserved. For each mode (nat, dr, tun) at 1K and 1M flows, established and
# SYN-only traffic, IPv4 and (1M flows) IPv6: Mpps per worker core and cycles/packet (the
# worker's TSC busy-cycle accounting), plus a MAC-swap forwarder in the same harness as
# the ceiling, and the ratio.
#   perf/bench.sh          full set, 3 runs each (min/median/max), JSON in perf/results/,
#                          then between processes: perf/memif_bench.sh (generator vs the
#                          ferrovs daemon vs dpdk-testpmd io on memif, with latency)
#   perf/bench.sh quick    reduced set, 1 run each (under 3 minutes)
# FERROVS_BENCH_BIN=path runs that ferrovs-bench binary instead of building one (to
# compare two builds in one sitting, alternating them).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${1:-}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
BIN=${FERROVS_BENCH_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -p perf --bin ferrovs-bench 2>&1 | tail -1
  BIN=target/release/ferrovs-bench
fi
if [ "$(id -u)" -eq 0 ]; then bash scripts/hugepages.sh 512 2M || echo "bench: no hugepages: running --no-huge (about half the throughput)"; fi
mkdir -p perf/results
OUT=perf/results/inprocess-$(date +%Y%m%d-%H%M%S).json
: > "$OUT"

if [ "$QUICK" = quick ]; then
  RUNS=1; SECS=2
  SET=("macswap 1000000 established" "dr 1000000 established" "nat 1000000 established" "tun 1000000 established" "nat 1000000 syn"
       "dr 1000000 established ipv6" "nat 1000000 syn ipv6")
else
  RUNS=3; SECS=3
  SET=("macswap 1000000 established")
  for m in nat dr tun; do for f in 1000 1000000; do SET+=("$m $f established"); done; SET+=("$m 1000000 syn"); done
  for m in nat dr tun; do SET+=("$m 1000000 established ipv6" "$m 1000000 syn ipv6"); done
fi

declare -A MED
for cfg in "${SET[@]}"; do
  read -r mode flows traffic family <<< "$cfg"
  vals=()
  for r in $(seq $RUNS); do
    line=$($BIN --mode "$mode" --flows "$flows" --traffic "$traffic" --family "${family:-ipv4}" --seconds $SECS 2>/dev/null | grep -v '^EAL')
    echo "$line" | grep -v '^JSON'
    json=$(echo "$line" | sed -n 's/^JSON //p'); echo "$json" >> "$OUT"
    vals+=("$(echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["mpps"], d["cycles_per_packet"])')")
  done
  sorted=$(printf '%s\n' "${vals[@]}" | sort -n)
  min=$(echo "$sorted" | head -1 | cut -d' ' -f1); max=$(echo "$sorted" | tail -1 | cut -d' ' -f1)
  med=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
  MED["$cfg"]=$med
  [ $RUNS -gt 1 ] && echo "  $cfg: Mpps min/median/max $min / ${med%% *} / $max"
done
read -r ceil _ <<< "${MED[macswap 1000000 established]}"
read -r mpps cpp <<< "${MED[dr 1000000 established]}"
echo "results: $OUT"
if [ "$QUICK" != quick ]; then
  echo "== between processes (memif)"
  bash perf/memif_bench.sh 1000 4 | tail -7
fi
python3 -c "print('dr 1M established: %.2f Mpps/core, %.0f cycles/packet, %.2f of macswap' % ($mpps, $cpp, $mpps / $ceil))"
