#!/usr/bin/env bash
# Compares two builds of the in-process harness in one sitting: runs the quick set with
# binary A and binary B alternately, N times each, and prints the median Mpps/core and
# cycles/packet of each and B's change against A. The harness is noisy on a shared VM
# (run-to-run memory placement moves 1M-flow figures by +-30%): alternate, and compare
# medians, never single runs.
#   perf/compare.sh A_BIN B_BIN [N=5]
# e.g. build the old tree's ferrovs-bench into /tmp/old, this one into /tmp/new:
#   git worktree add /tmp/base <rev> && (cd /tmp/base && cargo build --release -p perf --bin ferrovs-bench)
set -euo pipefail
A=$1; B=$2; N=${3:-5}
[ -x "$A" ] && [ -x "$B" ] || { echo "usage: $0 A_BIN B_BIN [N]" >&2; exit 2; }
if [ "$(id -u)" -eq 0 ]; then bash "$(dirname "$0")/../scripts/hugepages.sh" 512 2M >/dev/null || true; fi
SET=("macswap established" "dr established" "nat established" "tun established" "nat syn")
out=$(mktemp); trap 'rm -f "$out"' EXIT
for r in $(seq "$N"); do
  for cfg in "${SET[@]}"; do
    read -r mode traffic <<< "$cfg"
    for which in A B; do
      bin=${!which}
      json=$("$bin" --mode "$mode" --flows 1000000 --traffic "$traffic" --seconds 2 2>/dev/null | sed -n 's/^JSON //p')
      echo "$which $mode $traffic $json" >> "$out"
    done
  done
  echo "compare: round $r of $N done" >&2
done
python3 - "$out" "$N" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    which, mode, traffic, js = line.split(" ", 3)
    d = json.loads(js)
    rows.setdefault((mode, traffic), {}).setdefault(which, []).append((d["mpps"], d["cycles_per_packet"]))
print(f"{'1M flows':<22} {'A Mpps':>7} {'B Mpps':>7} {'change':>7}   {'A cyc/pkt':>9} {'B cyc/pkt':>9}   (medians of {sys.argv[2]})")
for (mode, traffic), r in rows.items():
    a = statistics.median(m for m, _ in r["A"]); b = statistics.median(m for m, _ in r["B"])
    ca = statistics.median(c for _, c in r["A"]); cb = statistics.median(c for _, c in r["B"])
    print(f"{mode + ' ' + traffic:<22} {a:7.2f} {b:7.2f} {100 * (b - a) / a:+6.1f}%   {ca:9.0f} {cb:9.0f}")
PY
