# The BGP/ECMP topology of the BGP suite and the HA demo (source this file; needs $BIN
# and, for the boxes' configs, nothing else):
#   client ns 10.9.0.2 -- router ns (10.9.0.1 | 10.3.0.254, BIRD 2: BGP with both boxes,
#   ECMP multipath into its kernel, L4 multipath hash, hold time 3 s) -- bridge 10.3.0.0/24
#   -- box a (10.3.0.1) and box b (10.3.0.2): ferrovs on af_packet vdevs, dr + mh, BIRD in
#   their exception namespaces -- 3 nginx backends 10.3.0.11-13 ("backend N"), the VIP on
#   lo, default route via the router (dr: they answer clients directly).
# bgp_topology_up creates it; bgp_box_config / bgp_box_start run a box (pid in PID_a /
# PID_b, log in $T/a.log); bgp_topology_down (trap it) removes everything and $T.
source "$(dirname "${BASH_SOURCE[0]}")/nginx.sh"
S=$$; T=$(mktemp -d /tmp/ferrovs-bgp.XXXX)
VIP=10.4.0.100; RTR=10.3.0.254
BR=fgb$S; CLI=fgc$S; ROUTER=fgr$S
BGP_NSS=(); BGP_LINKS=(); BGP_PIDS=()

bgp_topology_down() {
  # Two SIGTERMs: a box stops at once instead of after its withdraw grace.
  for p in "${BGP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.1
  for p in "${BGP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${BGP_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  for ns in "${BGP_NSS[@]}"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; done
  for l in "${BGP_LINKS[@]}"; do ip link del "$l" 2>/dev/null || true; done
  rm -rf "$T"
}

# The API of box $1.
bgp_api() { echo "http://127.0.0.1:$((21000 + S % 20000 + $([ "$1" = a ] && echo 0 || echo 1)))"; }

# The router's next hops for the VIP, e.g. "via 10.3.0.1 via 10.3.0.2 ".
bgp_nexthops() { ip -n $ROUTER route show $VIP/32 2>/dev/null | grep -o 'via 10\.3\.0\.[0-9]*' | sort | tr '\n' ' ' || true; }

# bgp_wait_nexthops WANT SECONDS: waits until the router has exactly WANT; else prints
# what it has and fails.
bgp_wait_nexthops() {
  local got=""
  for _ in $(seq $(( $2 * 10 ))); do got=$(bgp_nexthops); [ "$got" = "$1" ] && return 0; sleep 0.1; done
  echo "the router's next hops for $VIP are '$got', want '$1'"
  return 1
}

_bgp_veth() { # namespace, host-side name, address/len
  ip link add $2 type veth peer name e0 netns $1; BGP_LINKS+=($2)
  ip link set $2 master $BR; ip link set $2 up
  ip netns exec $1 sh -c "ip addr add $3 dev e0 && ip link set e0 up && ip link set lo up && ethtool -K e0 tx off >/dev/null"
}

bgp_topology_up() {
  ip link add $BR type bridge; BGP_LINKS+=($BR); ip link set $BR up
  ip netns add $ROUTER; BGP_NSS+=($ROUTER)
  ip netns add $CLI; BGP_NSS+=($CLI)
  _bgp_veth $ROUTER fgrp$S $RTR/24
  ip link add fgcp$S type veth peer name c0 netns $CLI
  ip link set fgcp$S netns $ROUTER
  ip netns exec $ROUTER sh -c "ip addr add 10.9.0.1/24 dev fgcp$S && ip link set fgcp$S up && ethtool -K fgcp$S tx off >/dev/null"
  ip netns exec $CLI sh -c "ip addr add 10.9.0.2/24 dev c0 && ip link set c0 up && ip link set lo up && ip route add default via 10.9.0.1 && ethtool -K c0 tx off >/dev/null"
  ip netns exec $ROUTER sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  for n in 1 2 3; do
    local ns=fgb$n$S; BGP_NSS+=($ns); ip netns add $ns
    _bgp_veth $ns fgbp$n$S 10.3.0.1$n/24
    ip netns exec $ns sh -c "ip route add default via $RTR && ip addr add $VIP/32 dev lo"
    ip netns exec $ns sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    start_nginx $ns $T/be$n "backend $n"
  done
  for b in a b; do
    ip link add fgl$b$S type veth peer name fglp$b$S; BGP_LINKS+=(fgl$b$S)
    ip link set fglp$b$S master $BR; ip link set fglp$b$S up; ip link set fgl$b$S up
    ethtool -K fgl$b$S rx off tx off gro off >/dev/null 2>&1 || true
  done
  cat > $T/router.conf <<CONF
router id $RTR;
log "$T/router.log" all;
protocol device { scan time 1; }
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
protocol bgp box_a { local as 65000; neighbor 10.3.0.1 as 65001; hold time 3; keepalive time 1;
  connect retry time 1; error wait time 1, 2; ipv4 { import all; export none; }; }
protocol bgp box_b { local as 65000; neighbor 10.3.0.2 as 65001; hold time 3; keepalive time 1;
  connect retry time 1; error wait time 1, 2; ipv4 { import all; export none; }; }
CONF
  ip netns exec $ROUTER bird -c $T/router.conf -s $T/router.ctl -P $T/router.pid
}

bgp_box_config() { # a|b, address last byte, hugepages true|false
  cat > $T/$1.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: ${3:-false}, file_prefix: "ferrovs-bgp-$1-$S" }
ports:
  - { name: lan, device: "net_af_packet0,iface=fgl$1$S", addresses: ["10.3.0.$2/24"], kernel_interface: "fk$1$S" }
exception_path: { netns: "fx$1$S" }
flows: { capacity: 65536 }
api: { listen: "$(bgp_api $1 | sed 's|http://||')" }
bgp:
  local_as: 65001
  peers: [ { address: $RTR, remote_as: 65000 } ]
  withdraw_grace_s: 2
  bird: { control_socket: "$T/$1.ctl" }
services:
  - name: web
    vip: $VIP
    port: 80
    scheduler: mh
    forward: dr
    backends: [ { address: 10.3.0.11 }, { address: 10.3.0.12 }, { address: 10.3.0.13 } ]
YAML
}

bgp_box_start() { # a|b; returns 1 if it did not start within 10 s
  BGP_NSS+=(fx$1$S)
  $BIN --config $T/$1.yaml 2>> $T/$1.log &
  eval "PID_$1=$!"; BGP_PIDS+=($!)
  for _ in $(seq 100); do grep -q "ferrovs running" $T/$1.log && return 0; sleep 0.1; done
  return 1
}
