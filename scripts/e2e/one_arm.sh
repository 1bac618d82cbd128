#!/usr/bin/env bash
# End-to-end, one-arm topologies (TESTING.md): client, ferrovs and three nginx backends
# on one L2 segment (a bridge), ferrovs on a DPDK af_packet vdev, ARP learned (no static
# neighbors). For dr and tun:
#   * 1000 HTTP requests over many connections (scripts/e2e/httpload.py): all succeed,
#     every backend answers, shares follow the wrr weights 1:2:3 within 3% of the total;
# and, in dr mode, under load: drain, remove (its in-flight connections may fail, at most
# the load's concurrency), add, reload (SIGHUP) with requests/s and
# errors per step, a burst of malformed frames (counted, service unaffected);
# in both modes, a tcp health check whose probes leave through lan's kernel interface: a
# backend's nginx killed under steady load stops getting requests within fall x interval +
# timeout, and gets them again after it is back (scripts/lib/health.sh).
# tun uses the kernel's ipip where it exists, else a userspace decapsulator; it says which.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ferrovs.sh
e2e_begin one-arm
source scripts/lib/one-arm-topology.sh
source scripts/lib/health.sh
HC_INTERVAL_MS=500; HC_TIMEOUT_MS=300; HC_RISE=2; HC_FALL=3
S=$$; T=$(mktemp -d /tmp/ferrovs-e2e.XXXX)
VIP=10.2.0.100
cleanup() {
  kill_pids
  remove_nss_links
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() { echo "e2e one-arm ($MODE): FAILED: $*"; $CTL stats 2>/dev/null | jget "d[\"drops\"]"; [ -f "$T/ferrovs.log" ] && tail -20 "$T/ferrovs.log"; exit 1; }
load() { ip netns exec $CLI python3 $HERE/httpload.py $VIP 80 "$1" "${2:-20}" 90; }

start_one_arm() { # $1 = mode: its config, then the daemon (scripts/lib/ferrovs.sh)
  API=127.0.0.1:$((21000 + S % 20000)); export FERROVS_API=http://$API
  cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-e2e-$1-$S" }
ports:
  - { name: lan, device: "net_af_packet0,iface=$LB", addresses: ["10.2.0.1/24"], kernel_interface: "fk$1$S" }
exception_path: { netns: "fx$1$S" }
api: { listen: "$API" }
services:
  - name: web
    vip: $VIP
    port: 80
    scheduler: wrr
    forward: $1
    health_check: { type: tcp, interval_ms: $HC_INTERVAL_MS, timeout_ms: $HC_TIMEOUT_MS, rise: $HC_RISE, fall: $HC_FALL }
    backends:
      - { address: 10.2.0.11, weight: 1 }
      - { address: 10.2.0.12, weight: 2 }
      - { address: 10.2.0.13, weight: 3 }
YAML
  NSS+=(fx$1$S)
  start_ferrovs $T/ferrovs.yaml $T/ferrovs.log
}

check_shares() { # $1 = json of a load run, $2 = total
  local ok errors
  ok=$(echo "$1" | jget 'd["ok"]'); errors=$(echo "$1" | jget 'd["errors"]')
  [ "$ok" = "$2" ] && [ "$errors" = 0 ] || fail "expected $2 ok, got $ok ok / $errors errors: $1"
  for n in 1 2 3; do
    got=$(echo "$1" | jget "d['backends'].get('backend $n', 0)")
    want=$(( $2 * n / 6 ))
    diff=$(( got > want ? got - want : want - got ))
    [ $diff -le $(( $2 * 3 / 100 )) ] || fail "backend $n answered $got of $2, weight share is $want: $1"
  done
}

run_mode() {
  MODE=$1; TUNPATH="-"
  one_arm_topology $MODE
  start_one_arm $MODE
  # Warm up ARP both ways, then the measured run.
  load 12 3 > /dev/null
  r=$(load 1000 20); echo "$MODE 1000 requests: $r"
  check_shares "$r" 1000
  [ "$MODE" = tun ] && echo "tun decapsulation: $TUNPATH"
  learned=$($CTL neighbors | grep -c learned || true)
  [ "$learned" -ge 4 ] || fail "expected the client and 3 backends learned by ARP, got $learned"
  $CTL list --stats

  if [ "$MODE" = dr ]; then
    # Under load: each step runs while 600 requests are in flight.
    step() { # $1 = name, $2 = action, $3 = errors allowed (default 0)
      load 600 10 > $T/step.json & local lp=$!
      sleep 0.3; eval "$2"; wait $lp
      echo "under load, $1: $(cat $T/step.json)"
      [ "$(jget 'd["errors"]' < $T/step.json)" -le "${3:-0}" ] || fail "errors during: $1"
    }
    step "drain backend 3 (weight 0)" "$CTL backend set web 10.2.0.13:80 --weight 0 >/dev/null"
    r=$(load 300 10); echo "after drain: $r"
    [ "$(echo "$r" | jget "d['backends'].get('backend 3', 0)")" = 0 ] || fail "drained backend 3 got new connections"
    # Removing a backend ends its flows (docs/api.md): connections in flight to it fail (at
    # most the 10 the load keeps open); the other backends' connections must not.
    step "remove backend 2" "$CTL backend del web 10.2.0.12:80 >/dev/null" 10
    r=$(load 300 10)
    [ "$(echo "$r" | jget "d['backends'].get('backend 2', 0)")" = 0 ] || fail "removed backend 2 still answers"
    step "add backend 2 back (weight 2)" "$CTL backend add web 10.2.0.12:80 --weight 2 >/dev/null"
    r=$(load 300 10)
    [ "$(echo "$r" | jget "d['backends'].get('backend 2', 0)")" -gt 0 ] || fail "added backend 2 gets nothing"
    step "reload the config file (SIGHUP)" "kill -HUP $FPID"
    ! grep -A2 "reload rejected" $T/ferrovs.log || fail "the reload was rejected"
    # Malformed frames from the client namespace (raw AF_PACKET) to ferrovs's MAC. The IPv4
    # header is valid (bridge netfilter, on in these kernels, drops bad IP headers before
    # they reach ferrovs); the transport header is not: TCP data offset past the segment,
    # UDP length past the datagram. ferrovs must count each as malformed.
    counted() { $CTL stats | jget 'd["drops"]["malformed"] + d["ports"][0]["imissed"]'; }
    before=$(counted); before_m=$($CTL stats | jget 'd["drops"]["malformed"]')
    lbmac=$(cat /sys/class/net/$LB/address)
    ip netns exec $CLI python3 -c "
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ip(proto, l4):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, socket.inet_aton('10.2.0.50'), socket.inet_aton('$VIP'))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + l4
bad_tcp = struct.pack('!HHIIBBHHH', 40000, 80, 1, 0, 0xf0, 0x02, 1024, 0, 0)  # data offset 60 > 20
bad_udp = struct.pack('!HHHH', 40000, 80, 0xffff, 0)                          # length 65535 > 8
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('c0', 0))
dst = bytes.fromhex('$lbmac'.replace(':', ''))
src = bytes.fromhex(open('/sys/class/net/c0/address').read().strip().replace(':', ''))
import time
for i in range(1000):
    if i % 100 == 0: time.sleep(0.005)
    s.send(dst + src + b'\\x08\\x00' + (ip(6, bad_tcp) if i % 2 else ip(17, bad_udp)))
"
    sleep 0.5
    after=$(counted); after_m=$($CTL stats | jget 'd["drops"]["malformed"]')
    echo "malformed burst: 1000 frames sent: $(( after_m - before_m )) dropped as malformed by ferrovs, $(( after - before - after_m + before_m )) missed at the port (af_packet ring full)"
    [ $(( after - before )) -eq 1000 ] && [ $(( after_m - before_m )) -gt 0 ] || fail "malformed frames were not all counted"
    r=$(load 300 10); echo "after the burst: $r"
    [ "$(echo "$r" | jget 'd["errors"]')" = 0 ] || fail "service affected by malformed frames"
  fi
  echo "$MODE: backend 1's nginx killed under load, then back (tcp check every ${HC_INTERVAL_MS} ms):"
  health_outage $CLI $VIP fb${MODE}1$S $T/be1 "backend 1" "backend 1" web 10.2.0.11:80
  kill -TERM $FPID; wait $FPID || fail "ferrovs did not exit cleanly"
  cleanup; PIDS=(); NSS=(); LINKS=(); T=$(mktemp -d /tmp/ferrovs-e2e.XXXX)
  echo "e2e one-arm ($MODE): passed"
}

run_mode dr
run_mode tun

