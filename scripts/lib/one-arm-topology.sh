# The one-arm topology (source this file; needs S, T, HERE, VIP and the arrays PIDS,
# NSS and LINKS, which the suite's cleanup removes): client ns 10.2.0.50, the load
# balancer's veth $LB (left in the host for ferrovs), three nginx backends 10.2.0.11-13
# ("backend N"), all on one bridge. dr: the backends hold the VIP on lo; tun: on tunl0
# (kernel ipip) or on a userspace decapsulator's tun device (TUNPATH says which).
# one_arm_topology MODE sets BR, CLI and LB.
source scripts/lib/nginx.sh
one_arm_topology() { # $1 = mode
  BR=fb$1$S; CLI=fc$1$S; LB=fl$1$S
  ip link add $BR type bridge; LINKS+=($BR); ip link set $BR up
  ip link add $LB type veth peer name flp$1$S; LINKS+=($LB)
  ip link set flp$1$S master $BR; ip link set flp$1$S up; ip link set $LB up
  ethtool -K $LB rx off tx off gro off >/dev/null 2>&1 || true
  ip netns add $CLI; NSS+=($CLI)
  ip link add fcp$1$S type veth peer name c0; ip link set c0 netns $CLI
  ip link set fcp$1$S master $BR; ip link set fcp$1$S up
  ip netns exec $CLI sh -c "ip addr add 10.2.0.50/24 dev c0 && ip link set c0 up && ip link set lo up && ethtool -K c0 tx off >/dev/null"
  for n in 1 2 3; do
    ns=fb$1$n$S; NSS+=($ns)
    ip netns add $ns
    ip link add fbp$1$n$S type veth peer name e0; ip link set e0 netns $ns
    ip link set fbp$1$n$S master $BR; ip link set fbp$1$n$S up
    ip netns exec $ns sh -c "ip addr add 10.2.0.1$n/24 dev e0 && ip link set e0 up && ip link set lo up && ethtool -K e0 tx off >/dev/null"
    # The VIP must not be answered by backends' ARP.
    ip netns exec $ns sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.e0.rp_filter=0
    if [ "$1" = dr ]; then
      ip netns exec $ns ip addr add $VIP/32 dev lo
    else
      # With the ipip module loaded, every namespace has the fallback device tunl0.
      if modprobe -q ipip 2>/dev/null && ip netns exec $ns ip link show tunl0 >/dev/null 2>&1; then
        TUNPATH="kernel ipip"
        ip netns exec $ns sh -c "ip link set tunl0 up 2>/dev/null; ip addr add $VIP/32 dev tunl0 && sysctl -qw net.ipv4.conf.tunl0.rp_filter=0"
      else
        TUNPATH="userspace decapsulator (no ipip module in this kernel)"
        ip netns exec $ns python3 -u $HERE/tundecap.py vip0 > $T/decap$n.log 2>&1 &
        PIDS+=($!)
        for _ in $(seq 50); do grep -q ready $T/decap$n.log 2>/dev/null && break; sleep 0.1; done
        ip netns exec $ns sh -c "ip addr add $VIP/32 dev vip0 && ip link set vip0 up && sysctl -qw net.ipv4.conf.vip0.rp_filter=0"
      fi
    fi
    start_nginx $ns $T/be$n "backend $n"
  done
}
