#!/usr/bin/env bash
# Compares two builds of the in-process harness in one sitting: runs the quick set with
# binary A and binary B alternately, N times each, and prints the median Mpps/core and
# cycles/packet of each and B's change against A. The harness is noisy on a shared VM
# (run-to-run memory placement moves 1M-flow figures by +-30%): alternate, and compare
# medians, never single runs.
#   perf/compare.sh A_BIN B_BIN [N=5]
# SET="dr 1000 established;nat 1000000 syn" picks the runs (mode flows traffic; default:
# the quick set at 1M flows). Each row: median and min-max of the N runs.
# e.g. build the old tree's ferrovs-bench into /tmp/old, this one into /tmp/new:
#   git worktree add /tmp/base <rev> && (cd /tmp/base && cargo build --release -p perf --bin ferrovs-bench)
set -euo pipefail
A=$1; B=$2; N=${3:-5}
[ -x "$A" ] && [ -x "$B" ] || { echo "usage: $0 A_BIN B_BIN [N]" >&2; exit 2; }
if [ "$(id -u)" -eq 0 ]; then bash "$(dirname "$0")/../scripts/hugepages.sh" 512 2M >/dev/null || true; fi
IFS=';' read -r -a SET <<< "${SET:-macswap 1000000 established;dr 1000000 established;nat 1000000 established;tun 1000000 established;nat 1000000 syn}"
out=$(mktemp); trap 'rm -f "$out"' EXIT
for r in $(seq "$N"); do
  for cfg in "${SET[@]}"; do
    read -r mode flows traffic <<< "$cfg"
    for which in A B; do
      bin=${!which}
      json=$("$bin" --mode "$mode" --flows "$flows" --traffic "$traffic" --seconds 2 2>/dev/null | sed -n 's/^JSON //p')
      echo "$which $mode/$flows $traffic $json" >> "$out"
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
print(f"{'mode/flows traffic':<26} {'A Mpps':>7} {'B Mpps':>7} {'change':>7}   {'A cycles/packet':>17} {'B cycles/packet':>17}   (medians, min-max of {sys.argv[2]})")
for (mode, traffic), r in rows.items():
    a = statistics.median(m for m, _ in r["A"]); b = statistics.median(m for m, _ in r["B"])
    ca = [c for _, c in r["A"]]; cb = [c for _, c in r["B"]]
    span = lambda c: f"{statistics.median(c):.0f} ({min(c):.0f}-{max(c):.0f})"
    print(f"{mode + ' ' + traffic:<26} {a:7.2f} {b:7.2f} {100 * (b - a) / a:+6.1f}%   {span(ca):>17} {span(cb):>17}")
PY
