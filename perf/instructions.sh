#!/usr/bin/env bash
# Instructions per packet of `pipeline::process_burst`, counted by valgrind (callgrind,
# only inside process_burst) on plain buffers (dataplane/examples/burst_cost.rs): exact
# and repeatable where this VM's cycle counts move by 10-30% between runs, so each step
# of the per-packet work is measured by what it removes. Cycles still come from
# perf/bench.sh; this says where they are spent.
#   perf/instructions.sh            the set below, one line each
#   perf/instructions.sh dr 1000 established
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions: needs valgrind (apt-get install valgrind)"; exit 1; }
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -q -p dataplane --no-default-features --example burst_cost
BIN=target/release/examples/burst_cost
BURSTS=${BURSTS:-500}
if [ $# -ge 3 ]; then SET=("$1 $2 $3"); else
  SET=("dr 1000 established" "nat 1000 established" "tun 1000 established" "dr 1000 syn" "nat 1000 syn")
fi
for cfg in "${SET[@]}"; do
  read -r mode flows traffic <<< "$cfg"
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    --toggle-collect='dataplane::pipeline::process_burst*' \
    "$BIN" "$mode" "$flows" "$traffic" "$BURSTS" 2>&1 | grep -q 'Collected' || { echo "instructions: $cfg failed"; exit 1; }
  ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out")
  rm -f "$out"
  python3 -c "print('%-24s %6.0f instructions/packet' % ('$cfg', $ir / ($BURSTS * 32)))"
done
