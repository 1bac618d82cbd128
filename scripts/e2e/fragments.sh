#!/usr/bin/env bash
# End-to-end, fragments and path MTU through nat (issue: attacks from the wire), on the
# demo's two-arm topology:
# 1. UDP datagrams of 100 to 20,000 bytes to a nat VIP: the client's kernel fragments
#    them, ferrovs sends each fragment after its first one's flow, a backend's kernel
#    reassembles and echoes, the backend's fragments come back the same way: every
#    answer arrives byte-exact; the same over IPv6 (fragment headers) to an IPv6 VIP.
#    Fragments sent last-first (an out-of-order datagram) are dropped and counted, and
#    the service goes on.
# 2. Path MTU: ferrovs's lan port has MTU 1200 (the backends' links 1500). A 4 MB upload
#    from the client (1500-byte segments with DF) makes ferrovs answer ICMP
#    "fragmentation needed"; the client's kernel lowers its path MTU to the VIP to 1200
#    and the upload arrives byte-exact.
# The ports are net_pcap on the veths, not net_af_packet: DPDK 22.11's af_packet PMD
# always asks the kernel to defragment (PACKET_FANOUT_FLAG_DEFRAG), so it never shows
# fragments (and truncates the reassembled datagram at its frame size); a NIC's PMD, like
# libpcap, delivers the fragments as they come.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ferrovs.sh
e2e_begin fragments
source scripts/lib/nat-topology.sh
cleanup() {
  kill_pids
  nat_topology_down
}
trap cleanup EXIT INT TERM
fail() { echo "e2e fragments: FAILED: $*"; $CTL -o json stats 2>/dev/null | jget '{k: v for k, v in d["drops"].items() if v}'; [ -f $T/ferrovs.log ] && tail -15 $T/ferrovs.log; exit 1; }

nat_topology_up
nat_topology_v6
for n in 1 2 3; do
  ip netns exec fdbe$n$S python3 $HERE/udpecho.py server 5353 > /dev/null 2>&1 & PIDS+=($!)
  ip netns exec fdbe$n$S python3 $HERE/sha256server.py 8000 > /dev/null 2>&1 & PIDS+=($!)
done
API=127.0.0.1:$((28000 + S % 20000)); export FERROVS_API=http://$API
config() { # $1 = lan MTU
  cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-frag-$S" }
ports:
  - { name: wan, device: "net_pcap0,iface=$WAN,phy_mac=1", addresses: ["10.0.0.1/24", "2001:db8::1/64"] }
  - { name: lan, device: "net_pcap1,iface=$LAN,phy_mac=1", addresses: ["10.1.0.1/24", "fd00:1::1/64"], mtu: $1 }
api: { listen: "$API" }
flows: { capacity: 65536, capacity_ipv6: 65536 }
services:
  - { name: dns6, vip: "2001:db8::10", port: 53, protocol: udp, scheduler: rr, backends: [ { address: "fd00:1::11", port: 5353 }, { address: "fd00:1::12", port: 5353 }, { address: "fd00:1::13", port: 5353 } ] }
  - { name: dns, vip: 10.0.0.10, port: 53, protocol: udp, scheduler: rr, backends: [ { address: 10.1.0.11, port: 5353 }, { address: 10.1.0.12, port: 5353 }, { address: 10.1.0.13, port: 5353 } ] }
  - { name: up, vip: 10.0.0.10, port: 8000, scheduler: rr, backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ] }
YAML
}
drop() { $CTL -o json stats | jget "d['drops']['$1']"; }

# 1. Fragments.
config 1500
start_ferrovs $T/ferrovs.yaml $T/ferrovs.log
r=$(ip netns exec $CLI python3 $HERE/udpecho.py client 10.0.0.10 53 300 100,1473,3000,8000,20000)
echo "udp echo through nat: $r"
[ "$(echo "$r" | jget 'd["ok"]')" = 300 ] || fail "fragmented datagrams did not all come back byte-exact"
r6=$(ip netns exec $CLI python3 $HERE/udpecho.py client 2001:db8::10 53 300 100,1453,3000,8000,20000)
echo "udp echo through nat over IPv6: $r6"
[ "$(echo "$r6" | jget 'd["ok"]')" = 300 ] || fail "fragmented IPv6 datagrams did not all come back byte-exact"
before=$(drop fragment)
lbmac=$(ip netns exec $CLI ip neigh show 10.0.0.10 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
ip netns exec $CLI python3 - c0$S $lbmac <<'PY'
# One 2000-byte datagram as two fragments, the later one first: ferrovs cannot know its
# flow yet and drops it; the first one then goes through, and the receiver's reassembly
# times out (as for a lost fragment).
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
src, dst = socket.inet_aton("10.0.0.50"), socket.inet_aton("10.0.0.10")
udp = struct.pack("!HHHH", 40000, 53, 2000, 0) + bytes(1992)
def frag(off, data, more):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), 0x4242, (0x2000 if more else 0) | off // 8, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return bytes(int(x, 16) for x in sys.argv[2].split(":")) + bytes([2, 0x66, 0, 0, 0, 1]) + b"\x08\x00" + ip + data
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((sys.argv[1], 0))
s.send(frag(1480, udp[1480:], False)); s.send(frag(0, udp[:1480], True))
PY
sleep 0.3
after=$(drop fragment)
echo "a datagram's later fragment sent before its first: dropped as fragment ($before -> $after)"
[ "$after" -gt "$before" ] || fail "an out-of-order fragment was not counted"
r=$(ip netns exec $CLI python3 $HERE/udpecho.py client 10.0.0.10 53 50 3000)
[ "$(echo "$r" | jget 'd["ok"]')" = 50 ] || fail "the service did not go on after the out-of-order fragment: $r"
kill -TERM $FPID; wait $FPID || true

# 2. Path MTU: lan's MTU is 1200.
config 1200
start_ferrovs $T/ferrovs.yaml $T/ferrovs.log
head -c 4194304 /dev/urandom > $T/up.bin; want=$(sha256sum $T/up.bin | cut -d' ' -f1)
ip netns exec $CLI ip route flush cache 2>/dev/null || true
up=$(ip netns exec $CLI curl -s --max-time 30 --data-binary @$T/up.bin -H 'Content-Type: application/octet-stream' http://10.0.0.10:8000/) || true
pmtu=$(ip netns exec $CLI ip route get 10.0.0.10 | grep -o 'mtu [0-9]*' || true)
echo "4 MB upload with lan MTU 1200: the backend read '$up'; the client's route to the VIP: ${pmtu:-no mtu cached}; frag_needed $(drop frag_needed)"
[ "$up" = "$want 4194304" ] || fail "the upload did not arrive byte-exact (path MTU discovery through nat)"
[ "$pmtu" = "mtu 1200" ] || fail "the client did not learn the path MTU from ferrovs"
[ "$(drop frag_needed)" -ge 1 ] || fail "no frag_needed counted"
kill -TERM $FPID; wait $FPID || true
echo "e2e fragments: PASSED"
