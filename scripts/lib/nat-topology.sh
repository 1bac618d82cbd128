# The two-arm NAT topology of the demo, the NAT end-to-end check and the kernel
# comparison (source this file):
#   client ns 10.0.0.50 --veth-- $WAN (host) | load balancer | $LAN (host) --veth-- bridge
#   -- 3 backend namespaces 10.1.0.11-13 running nginx ("hello from backend N"), default
#   route via 10.1.0.1. $WAN and $LAN are left in the host for the load balancer to use.
# nat_topology_up creates it; nat_topology_down (trap it) removes it and $T;
# nat_topology_v6 adds IPv6 beside it (client 2001:db8::50/64, backends fd00:1::11-13/64,
# default routes via the load balancer's 2001:db8::1 and fd00:1::1).
source scripts/lib/nginx.sh
S=$$; T=$(mktemp -d /tmp/ferrovs-nat.XXXX)
CLI=fdcli$S; BR=fdbr$S; WAN=fdw$S; LAN=fdl$S

nat_topology_down() {
  for n in 1 2 3; do ip netns pids fdbe$n$S 2>/dev/null | xargs -r kill 2>/dev/null || true; ip netns del fdbe$n$S 2>/dev/null || true; done
  ip netns del $CLI 2>/dev/null || true
  ip link del $WAN 2>/dev/null || true; ip link del $LAN 2>/dev/null || true; ip link del $BR 2>/dev/null || true
  rm -rf "$T"
}

nat_topology_up() {
  ip netns add $CLI
  ip link add $WAN type veth peer name c0$S
  ip link set c0$S netns $CLI
  ip netns exec $CLI ip addr add 10.0.0.50/24 dev c0$S
  ip netns exec $CLI ip link set c0$S up; ip netns exec $CLI ip link set lo up
  ip netns exec $CLI ethtool -K c0$S tx off >/dev/null
  ip link add $BR type bridge; ip link set $BR up
  ip link add $LAN type veth peer name lb$S; ip link set lb$S master $BR; ip link set lb$S up
  for n in 1 2 3; do
    ns=fdbe$n$S
    ip netns add $ns
    ip link add b$n$S type veth peer name e$n$S
    ip link set b$n$S master $BR; ip link set b$n$S up
    ip link set e$n$S netns $ns
    ip netns exec $ns ip addr add 10.1.0.1$n/24 dev e$n$S
    ip netns exec $ns ip link set e$n$S up; ip netns exec $ns ip link set lo up
    ip netns exec $ns ip route add default via 10.1.0.1
    ip netns exec $ns ethtool -K e$n$S tx off >/dev/null
    start_nginx $ns $T/be$n "hello from backend $n (10.1.0.1$n)"
  done
  for i in $WAN $LAN; do ip link set $i up; ethtool -K $i rx off tx off gro off >/dev/null 2>&1 || true; done
}

# An IPv6 address without DAD, no router adverts: v6addr NAMESPACE INTERFACE ADDRESS/LEN
v6addr() {
  ip netns exec $1 sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
  ip netns exec $1 ip -6 addr add $3 dev $2 nodad
}

nat_topology_v6() {
  v6addr $CLI c0$S 2001:db8::50/64
  ip netns exec $CLI ip -6 route add default via 2001:db8::1
  for n in 1 2 3; do
    v6addr fdbe$n$S e$n$S fd00:1::1$n/64
    ip netns exec fdbe$n$S ip -6 route add default via fd00:1::1
  done
}
