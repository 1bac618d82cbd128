#!/usr/bin/env bash
# Flow-table scaling (issue: performance, "scaling measured"): N pinned threads on one
# shared table of 1M flows, established-flow lookups in bursts of 32 (as workers do) and
# new-flow churn (insert + remove), for N in 1..cores; Mops/s and the efficiency against
# N x the single-thread rate. Plain Rust: no DPDK, no hugepages, so the binary can be
# carried to a machine with more cores as it is:
#   perf/scale.sh                    build here and run here
#   perf/scale.sh BIN [OUT_DIR]      run a built dataplane/examples/table_scale binary
# Results: one JSON line per kind in OUT_DIR (default perf/results/) as scale-*.json.
#
# The in-process DPDK harness with 1..N workers (ferrovs-bench --workers N: N workers on
# one flow table, each fed by its own generator core, so 2N + 1 cores), dr established
# traffic over 1M flows and nat new flows, total Mpps and efficiency against N x one
# worker's. It needs DPDK's libraries where it runs (libdpdk-dev's, or the .so files
# carried beside the binary with LD_LIBRARY_PATH) and, for meaningful figures, hugepages:
#   perf/scale.sh harness [FERROVS_BENCH_BIN] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = harness ]; then
  BIN=${2:-}; OUT=${3:-perf/results}
  if [ -z "$BIN" ]; then
    CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build --release -p perf --bin ferrovs-bench 2>&1 | tail -1
    BIN=target/release/ferrovs-bench
  fi
  if [ "$(id -u)" -eq 0 ]; then bash scripts/hugepages.sh 2048 2M || true; fi # up to 7 workers: 1.5 GB
  cores=$(nproc); max=$(( (cores - 1) / 2 ))
  [ $max -ge 2 ] || { echo "scale harness: $cores cores run one worker only (2N + 1 cores for N workers)"; exit 1; }
  mkdir -p "$OUT"; file=$OUT/scale-harness-$(hostname -s)-$(date +%Y%m%d-%H%M%S).json; : > "$file"
  for run in "dr 1000000 established" "nat 1000000 syn"; do
    read -r mode flows traffic <<< "$run"
    one=""
    for n in $(seq 1 $max); do
      json=$("$BIN" --mode $mode --flows $flows --traffic $traffic --workers $n --seconds 2 2>/dev/null | sed -n 's/^JSON //p')
      echo "$json" >> "$file"
      total=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["mpps_total"])')
      [ -n "$one" ] || one=$total
      python3 -c "print('%-6s %-4s %2d workers: %6.2f Mpps in all, %.2f of linear' % ('$mode', '$traffic'[:4], $n, $total, $total / ($n * $one)))"
    done
  done
  echo "scale harness: results in $file"
  exit 0
fi
BIN=${1:-}
OUT=${2:-perf/results}
if [ -z "$BIN" ]; then
  CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build --release -p dataplane --no-default-features --example table_scale 2>&1 | tail -1
  BIN=target/release/examples/table_scale
fi
cores=$(nproc)
threads=1
for n in 2 4 6 8 10 12 14 16 24 32; do [ $n -le $cores ] && threads="$threads,$n"; done
mkdir -p "$OUT"
file=$OUT/scale-$(hostname -s)-$(date +%Y%m%d-%H%M%S).json
: > "$file"
echo "scale: $cores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), threads $threads"
for ops in lookup churn; do
  "$BIN" --threads "$threads" --flows 1000000 --seconds 2 --ops $ops | tee /dev/stderr | sed -n 's/^JSON //p' >> "$file"
done 2>&1 | grep -v '^{' 
echo "scale: results in $file"
