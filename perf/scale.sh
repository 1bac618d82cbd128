#!/usr/bin/env bash
# Flow-table scaling (issue: performance, "scaling measured"): N pinned threads on one
# shared table of 1M flows, established-flow lookups in bursts of 32 (as workers do) and
# new-flow churn (insert + remove), for N in 1..cores; Mops/s and the efficiency against
# N x the single-thread rate. Plain Rust: no DPDK, no hugepages, so the binary can be
# carried to a machine with more cores as it is:
#   perf/scale.sh                    build here and run here
#   perf/scale.sh BIN [OUT_DIR]      run a built dataplane/examples/table_scale binary
# Results: one JSON line per kind in OUT_DIR (default perf/results/) as scale-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
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
