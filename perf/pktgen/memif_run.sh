#!/usr/bin/env bash
# pktgen-dpdk against ferrovs and against dpdk-testpmd io, on memif, in one window.
#
# pktgen is the memif server (one queue pair, as its memif port always is); ferrovs (dr,
# scheduler mh, the backend's MAC is pktgen's own, so what ferrovs forwards comes back)
# and then testpmd --forward-mode=io (the ceiling) are its client. Three runs each:
#   single     one UDP flow
#   range-udp  UDP from a range of source addresses and ports (pktgen range mode)
#   range-syn  TCP SYNs over the same ranges (every 5-tuple a new flow the first time)
# and prints, per run, Mpps pktgen sent and got back through each, and ferrovs/testpmd.
# Range mode cycles through pktgen's pre-built mbufs: about 24,576 distinct 5-tuples
# however wide the ranges, so range-syn is new flows only until those exist; after that
# it measures SYNs on existing flows (said in the output). New flows at scale: perf/bench.sh.
# memif lands at random in a fast or a slow copy mode on these VMs (DPDK-NOTES): the two
# programs are alternated for ROUNDS rounds and the best round of each is reported.
#   perf/pktgen/memif_run.sh [PKTGEN_BIN] [SECONDS=5] [ROUNDS=2]
# Without a pktgen binary it says so and exits 0 (build one: perf/pktgen/build.sh SRC).
set -euo pipefail
cd "$(dirname "$0")/../.."
PKTGEN=${1:-${PKTGEN:-/tmp/ferrovs-pktgen/src/build/app/pktgen}}
SECS=${2:-5}
ROUNDS=${3:-2}
if [ ! -x "$PKTGEN" ]; then
  echo "pktgen run: no pktgen binary at ${PKTGEN}: build one with perf/pktgen/build.sh <pktgen source>; nothing measured"
  exit 0
fi
command -v tmux >/dev/null || { echo "pktgen run: tmux missing (pktgen needs a terminal): apt-get install tmux"; exit 1; }
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -p mgmt --bin ferrovs 2>&1 | tail -1
S=$$; T=$(mktemp -d /tmp/ferrovs-pktgen-run.XXXX); SOCK=$T/pg.sock
LB_MAC=02:00:00:00:0a:01; PG_MAC=02:00:00:00:00:99; VIP=10.0.0.100
PID=""; SESSION=pg$S
cleanup() {
  [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  tmux kill-session -t "$SESSION" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "pktgen run: kept $T" || rm -rf "$T"
}
trap cleanup EXIT INT TERM
# pktgen makes several pools of 24,576 mbufs per queue: give it 4 GiB of ordinary memory;
# the client under test gets hugepages when they can be reserved.
PG_MEM="--no-huge -m 4096"
MEM="--no-huge -m 1024"; HUGE=false
if [ "$(id -u)" -eq 0 ] && bash scripts/hugepages.sh 1024 2M >/dev/null 2>&1; then
  MEM="-m 512 --in-memory"; HUGE=true
fi

# The three runs as pktgen command files; every one sets the destination MAC (pktgen's
# single mode sends to 00:00:00:00:00:00 otherwise).
common() { printf '%s\n' "stop 0" "set 0 size 64" "set 0 rate 100" "set 0 count 0"; }
{ common; cat <<EOF
disable 0 range
set 0 dst mac $LB_MAC
set 0 src ip 10.0.0.50/24
set 0 dst ip $VIP
set 0 proto udp
set 0 sport 1024
set 0 dport 80
EOF
} > "$T/single.pkt"
ranges() { cat <<EOF
range 0 dst mac start $LB_MAC
range 0 src mac start $PG_MAC
range 0 dst ip start $VIP
range 0 dst ip min $VIP
range 0 dst ip max $VIP
range 0 dst ip inc 0.0.0.0
range 0 src ip start 198.18.0.1
range 0 src ip min 198.18.0.1
range 0 src ip max 198.18.0.254
range 0 src ip inc 0.0.0.1
range 0 src port start 1024
range 0 src port min 1024
range 0 src port max 65000
range 0 src port inc 1
range 0 dst port start 80
range 0 dst port min 80
range 0 dst port max 80
range 0 dst port inc 0
range 0 size start 64
range 0 size min 64
range 0 size max 64
range 0 size inc 0
EOF
}
{ common; ranges; echo "range 0 proto udp"; echo "enable 0 range"; } > "$T/range-udp.pkt"
{ common; ranges; echo "range 0 proto tcp"; echo "range 0 tcp flag clr all"; echo "range 0 tcp flag set syn"; echo "enable 0 range"; } > "$T/range-syn.pkt"

# The Lua driver: each run loaded, 1 s of warm-up, SECS measured from pktgen's port
# counters, one result line per run in results.txt, then quit.
cat > "$T/run.lua" <<EOF
local out = io.open("$T/results.txt", "w")
local function counters()
  local t = pktgen.portStats("0", "port")
  return t[0].opackets, t[0].ipackets
end
pktgen.delay(3000)
for _, name in ipairs({"single", "range-udp", "range-syn"}) do
  pktgen.load("$T/" .. name .. ".pkt")
  pktgen.start("0")
  pktgen.delay(1000)
  local tx0, rx0 = counters()
  pktgen.delay($SECS * 1000)
  local tx1, rx1 = counters()
  pktgen.stop("0")
  out:write(string.format("%s %.3f %.3f\n", name, (tx1 - tx0) / $SECS / 1e6, (rx1 - rx0) / $SECS / 1e6))
  out:flush()
  pktgen.delay(1000)
end
out:close()
pktgen.quit()
EOF

cat > "$T/ferrovs.yaml" <<YAML
dpdk: { cores: "1,0", memory_mb: 512, hugepages: $HUGE, file_prefix: "lb$S", extra_args: ["--main-lcore", "1"] }
ports:
  - { name: p0, device: "net_memif0,role=client,socket=$SOCK,socket-abstract=no,mac=$LB_MAC", addresses: ["10.0.0.1/24"] }
neighbors: [ { address: 10.0.0.11, mac: "$PG_MAC", port: p0 } ]
api: { listen: "127.0.0.1:0" }
flows: { capacity: 1048576 }
services:
  - { name: bench-udp, vip: $VIP, port: 80, protocol: udp, forward: dr, scheduler: mh, backends: [ { address: 10.0.0.11 } ] }
  - { name: bench-tcp, vip: $VIP, port: 80, protocol: tcp, forward: dr, scheduler: mh, backends: [ { address: 10.0.0.11 } ] }
YAML

# $1: label; the client (ferrovs or testpmd) is started by $2.
round() {
  local label=$1 start=$2
  rm -f "$T/results.txt" "$SOCK"
  # pktgen: main lcore 0, its packet worker on lcore 1; the client's worker runs on 0.
  tmux new-session -d -s "$SESSION" -x 200 -y 50 \
    "$PKTGEN -l 0,1 --main-lcore 0 -n 1 --no-pci --file-prefix pg$S $PG_MEM --log-level '*:warning' \
       --vdev=net_memif0,role=server,socket=$SOCK,socket-abstract=no,mac=$PG_MAC \
       -- -P -m '[1].0' -f $T/run.lua > $T/pktgen-$label.log 2>&1"
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
  [ -S "$SOCK" ] || { cat "$T/pktgen-$label.log"; echo "pktgen run: pktgen did not start"; exit 1; }
  sleep 2 # the socket exists at probe time; let pktgen start its port before a client connects
  $start
  for _ in $(seq $(( (SECS + 3) * 3 * 10 + 150 ))); do
    [ -f "$T/results.txt" ] && [ "$(wc -l < "$T/results.txt")" -ge 3 ] && break
    sleep 0.1
  done
  sleep 1
  if [ "${label%-*}" = ferrovs ]; then
    # What range-syn was: how many flows ferrovs created over the three runs.
    local api
    api=$(sed -n 's/.*api listening api_addr=\([0-9.:]*\).*/\1/p' "$T/ferrovs.log" | head -1)
    curl -s "http://$api/api/v1/stats" | python3 -c 'import json,sys; d=json.load(sys.stdin); t=d["totals"]; print("  ferrovs: %d new flows over the three runs (%d in the table), %d packets (%d without a flow, forwarded by Maglev), drops %s" % (t["new_flows"], d["flows"]["active"], t["rx"], t["stateless"], {k: v for k, v in d["drops"].items() if v}))' || true
  fi
  kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""
  tmux kill-session -t "$SESSION" 2>/dev/null || true
  [ -s "$T/results.txt" ] || { tail -20 "$T/pktgen-$label.log" "$T/$label.log" 2>/dev/null; echo "pktgen run: no results from the $label round"; exit 1; }
  sed "s/^/${label%-*} /" "$T/results.txt" >> "$T/all.txt"
}
start_ferrovs() {
  target/release/ferrovs --config "$T/ferrovs.yaml" > "$T/ferrovs.log" 2>&1 & PID=$!
}
start_testpmd() {
  dpdk-testpmd -l 1,0 --main-lcore 1 --no-pci --file-prefix tp$S $MEM --log-level '*:warning' \
    --vdev="net_memif0,role=client,socket=$SOCK,socket-abstract=no,mac=$LB_MAC" -- \
    --forward-mode=io --nb-cores=1 --rxq=1 --txq=1 --stats-period=1 > "$T/testpmd.log" 2>&1 & PID=$!
}
: > "$T/all.txt"
for r in $(seq "$ROUNDS"); do
  round "ferrovs-$r" start_ferrovs
  [ "$r" = 1 ] && { grep -E "memif client|port up" "$T/ferrovs.log" | sed 's/^.*INFO //' | cut -c1-160 || true; }
  round "testpmd-$r" start_testpmd
done
mkdir -p perf/results
OUT=perf/results/pktgen-memif-$(date +%Y%m%d-%H%M%S).json
python3 - "$T/all.txt" "$OUT" "$SECS" <<'PY'
import json, sys
rows, rounds = {}, []
for line in open(sys.argv[1]):
    who, run, tx, rx = line.split()
    rounds.append({"program": who, "run": run, "tx_mpps": float(tx), "rx_mpps": float(rx)})
    best = rows.setdefault(run, {}).get(who)
    if best is None or float(rx) > best["rx_mpps"]:
        rows[run][who] = {"tx_mpps": float(tx), "rx_mpps": float(rx)}
json.dump({"seconds": int(sys.argv[3]), "best": rows, "rounds": rounds}, open(sys.argv[2], "w"), indent=1)
for r in rounds:
    print(f"  round: {r['program']:<8} {r['run']:<10} sent {r['tx_mpps']:6.2f}, back {r['rx_mpps']:6.2f} Mpps")
print(f"{'pktgen on memif, 64 B':<22} {'sent':>6} {'ferrovs':>8} {'sent':>6} {'testpmd':>8} {'ratio':>6}")
for run, r in rows.items():
    f, t = r.get("ferrovs", {}), r.get("testpmd", {})
    ratio = f.get("rx_mpps", 0) / t["rx_mpps"] if t.get("rx_mpps") else 0
    print(f"{run:<22} {f.get('tx_mpps', 0):6.2f} {f.get('rx_mpps', 0):8.2f} {t.get('tx_mpps', 0):6.2f} {t.get('rx_mpps', 0):8.2f} {ratio:6.2f}")
print("Mpps, best round of each: 'sent' by pktgen, 'ferrovs'/'testpmd' what came back through each; ratio = ferrovs / testpmd.")
print("range runs: pktgen cycles through ~24,576 pre-built packets, so range-syn creates new flows only")
print("until those 5-tuples exist; after that it measures SYNs on existing flows.")
print("results:", sys.argv[2])
PY
