#!/usr/bin/env bash
# The control for memif latency (perf/memif_bench.sh): on a 2-vCPU machine the
# generator shares core 0 with ferrovs's management thread, which wakes every 0.5 ms
# (about 4% of a core: the expiry sweep, neighbor and API work, the sleep itself), while
# testpmd's main lcore sleeps. This runs dpdk-testpmd io at a fixed rate three ways: as
# it is, with a process on core 0 that wakes every 0.5 ms and works WORK_US, and again
# as it is; if testpmd's tail grows to ferrovs's under that load, the gap in the tail is
# the shared core, not ferrovs's worker.
#   perf/latency_control.sh [rate_mpps=2] [work_us=20] [seconds=4]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-2}; WORK=${2:-20}; SECS=${3:-4}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -q -p perf --bin ferrovs-gen
S=$$; T=$(mktemp -d /tmp/ferrovs-latctl.XXXX); SOCK=$T/tp.sock
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT INT TERM
MEM="--no-huge -m 512"
if [ "$(id -u)" -eq 0 ] && bash scripts/hugepages.sh 512 2M >/dev/null 2>&1; then MEM="-m 256 --in-memory"; fi
cat > $T/noise.c <<C
#include <time.h>
static long us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000L + t.tv_nsec / 1000; }
int main(void) { struct timespec p = {0, 500000}; for (;;) { nanosleep(&p, 0); long s = us(); while (us() - s < $WORK) {} } }
C
cc -O2 -o $T/noise $T/noise.c
SERVER="net_memif0,role=server,socket=$SOCK,socket-abstract=no,mac=02:00:00:00:0a:01"
dpdk-testpmd -l 0,1 --no-pci --file-prefix tp$S $MEM --log-level '*:warning' --vdev="$SERVER" -- \
  --forward-mode=io --nb-cores=1 --stats-period=1 > $T/testpmd.log 2>&1 & PIDS+=($!)
gen() {
  sleep 1
  target/release/ferrovs-gen --rate "$RATE" --eal "-l 0 --no-pci --file-prefix gen$S $MEM --log-level *:warning --vdev=net_memif0,role=client,socket=$SOCK,socket-abstract=no,mac=02:00:00:00:00:99" \
    --dst-mac 02:00:00:00:0a:01 --vip 10.0.0.100 --flows 1000 --seconds "$SECS" 2>/dev/null | grep '^total' | sed "s/^/$1 /"
}
gen "testpmd io, quiet core 0:"
taskset -c 0 $T/noise & NOISE=$!; PIDS+=($NOISE)
gen "testpmd io, core 0 woken every 0.5 ms for $WORK us:"
kill $NOISE
gen "testpmd io, quiet core 0 again:"
