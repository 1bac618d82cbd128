#!/usr/bin/env bash
# Health checks at scale: 1000 backends probed (tcp) every second, and forwarding beside it.
#
# The NAT topology of the demo plus one namespace on the backend bridge that holds 1000
# addresses (10.1.8.1 ...) and one nginx listening on all of them. ferrovs (lan
# 10.1.0.1/16 with a kernel interface) serves:
#   many: 10.0.0.20:80, the 1000 addresses, health_check tcp every 1000 ms;
#   udp:  10.0.0.10:9000/udp -> backend 1, a UDP stream from the client measures forwarding.
# Phase "probing": 10 s of the UDP stream while the 1000 backends are probed; then a reload
# without the health_check; phase "idle": the same 10 s. For each phase: CPU of ferrovs's
# threads (health, management, workers; from /proc), probes done per second, the UDP
# packets/s sent and received. Prints a table and writes perf/results/health-scale-*.json.
# Needs root; ~1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "health_scale: needs root"; exit 1; }
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -p mgmt --bin ferrovs 2>&1 | tail -1
BIN=$PWD/target/release/ferrovs
source scripts/lib/nat-topology.sh
N=${N:-1000}
XNS=fvx$S; MANY=fdmany$S; PID=""
cleanup() {
  [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  ip netns pids $MANY 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del $MANY 2>/dev/null || true
  ip netns del $XNS 2>/dev/null || true
  nat_topology_down
}
trap cleanup EXIT INT TERM
nat_topology_up
ip netns add $MANY
ip link add m$S type veth peer name em$S
ip link set m$S master $BR; ip link set m$S up; ip link set em$S netns $MANY
addr() { echo "10.1.$((8 + $1 / 250)).$((1 + $1 % 250))"; }
{
  for i in $(seq 0 $((N - 1))); do echo "addr add $(addr $i)/16 dev em$S"; done
  echo "link set em$S up"; echo "link set lo up"
} | ip -n $MANY -batch -
ip netns exec $MANY ethtool -K em$S tx off >/dev/null
start_nginx $MANY $T/many "many"
API=127.0.0.1:$((23000 + S % 20000))
write_config() { # $1 = health_check line or empty
  {
    cat <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-hs-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/16"], kernel_interface: "fvs$S" }
exception_path: { netns: "$XNS" }
api: { listen: "$API" }
services:
  - { name: udp, vip: 10.0.0.10, port: 9000, protocol: udp, backends: [ { address: 10.1.0.11 } ] }
  - name: many
    vip: 10.0.0.20
    port: 80
    $1
    backends:
YAML
    for i in $(seq 0 $((N - 1))); do echo "      - { address: $(addr $i) }"; done
  } > $T/ferrovs.yaml
}
write_config "health_check: { type: tcp, interval_ms: 1000, timeout_ms: 500 }"
ip netns add $XNS
# The probes' neighbors (N + a few) must fit the kernel's neighbor table: gc_thresh3
# (global, default 1024) bounds it.
FERROVS_LOCK_DIR=$T "$BIN" --config $T/ferrovs.yaml 2> $T/ferrovs.log & PID=$!
for _ in $(seq 100); do grep -q "ferrovs running" $T/ferrovs.log && break; sleep 0.1; done
grep -q "ferrovs running" $T/ferrovs.log || { tail $T/ferrovs.log; echo "ferrovs did not start"; exit 1; }

probes() { curl -s "http://$API/api/v1/health" | python3 -c '
import json, sys
rows = json.load(sys.stdin)
print(sum(r["probes_ok"] for r in rows), sum(r["probes_failed"] for r in rows),
      sum(r["health"] == "up" for r in rows), len(rows))'; }
threads() { # tid:name:ticks per thread
  for t in /proc/$PID/task/*; do
    echo "$(basename $t) $(tr ' ' '_' < $t/comm) $(awk '{print $14 + $15}' $t/stat)"
  done
}
phase() { # $1 = name
  local p0 p1 t0 t1 start end
  read -r -a p0 <<< "$(probes)"; threads > $T/t0; start=$(date +%s.%N)
  ip netns exec fdbe1$S python3 scripts/e2e/udprate.py recv 10.1.0.11 9000 11 > $T/recv.txt & local r=$!
  sleep 0.3
  ip netns exec $CLI python3 scripts/e2e/udprate.py send 10.0.0.10 9000 10 > $T/send.txt
  wait $r
  end=$(date +%s.%N); threads > $T/t1; read -r -a p1 <<< "$(probes)"
  python3 - "$1" "$start" "$end" "$T/t0" "$T/t1" "${p0[*]:-0 0 0 0}" "${p1[*]:-0 0 0 0}" \
    "$(cat $T/send.txt)" "$(cat $T/recv.txt)" "$(getconf CLK_TCK)" >> $T/phases.jsonl <<'PY'
import json, sys
name, start, end, f0, f1, p0, p1, sent, recv, hz = sys.argv[1:]
secs = float(end) - float(start)
def load(f):
    return {l.split()[0]: (l.split()[1], int(l.split()[2])) for l in open(f)}
t0, t1 = load(f0), load(f1)
cpu = {}
for tid, (comm, ticks) in t1.items():
    used = (ticks - t0.get(tid, (comm, 0))[1]) / int(hz) / secs * 100
    cpu[comm] = round(cpu.get(comm, 0) + used, 1)
p0, p1 = [int(x) for x in p0.split()], [int(x) for x in p1.split()]
print(json.dumps({
    "phase": name, "seconds": round(secs, 1),
    "thread_cpu_percent": {k: v for k, v in cpu.items() if v >= 0.1},
    "probes_per_s": round((p1[0] + p1[1] - p0[0] - p0[1]) / secs),
    "probes_failed": p1[1] - p0[1], "backends_up": p1[2], "backends_checked": p1[3],
    "udp_sent_pps": float(sent.split()[-2]), "udp_received_pps": float(recv.split()[-2]),
}))
PY
}
# Warm up: every backend probed a few times (ARP for 1000 addresses, first connections).
sleep 4
read -r -a p <<< "$(probes)"
echo "health_scale: $N backends, ${p[2]} up after 4 s"
phase probing
write_config ""
kill -HUP $PID; sleep 2
! grep -A2 "reload rejected" $T/ferrovs.log || exit 1
phase idle
kill -TERM $PID; wait $PID || true; PID=""
out=perf/results/health-scale-$(date -u +%Y%m%d-%H%M%S).json
python3 - $T/phases.jsonl "$out" "$N" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
json.dump({"backends": int(sys.argv[3]), "interval_ms": 1000, "phases": rows},
          open(sys.argv[2], "w"), indent=1)
for r in rows:
    cpu = ", ".join(f"{k} {v}%" for k, v in sorted(r["thread_cpu_percent"].items()))
    print(f"{r['phase']:8} probes/s {r['probes_per_s']:5} (failed {r['probes_failed']}, "
          f"up {r['backends_up']}/{r['backends_checked']}); udp sent {r['udp_sent_pps']:.0f} pps, "
          f"received {r['udp_received_pps']:.0f} pps; cpu: {cpu}")
PY
echo "health_scale: wrote $out"
