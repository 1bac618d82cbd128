#!/usr/bin/env bash
# End-to-end, full NAT (fnat): the demo's two-arm topology, but the nginx backends have
# NO route back to the client (no default route: only their own subnet), so every reply
# must come back to ferrovs's local address. IPv4 and IPv6:
#   * 1000 requests, every one answered, spread over the three backends;
#   * a 10 MB download and a 10 MB upload through an fnat flow arrive byte-exact
#     (SHA-256 on both ends);
#   * the backends see the local address, not the client (nginx's $remote_addr);
#   * ferrovsctl list shows FullNat, the flows their local address:port;
#   * with proxy_protocol: v2, nginx (`listen ... proxy_protocol`) answers each of 500
#     connections with $proxy_protocol_addr:$proxy_protocol_port, which must be that
#     connection's own client address and port; a 10 MB download and upload through
#     fnat + PROXY flows arrive byte-exact (the upload server reads the header first).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ferrovs.sh
e2e_begin fnat
source scripts/lib/nat-topology.sh
cleanup() {
  kill_pids
  nat_topology_down
}
trap cleanup EXIT INT TERM
fail() { echo "e2e fnat: FAILED: $*"; [ -f $T/ferrovs.log ] && tail -15 $T/ferrovs.log; exit 1; }

nat_topology_up
v6addr $CLI c0$S 2001:db8::50/64
head -c 10485760 /dev/urandom > $T/big.bin; chmod 755 $T; chmod 644 $T/big.bin # nginx workers run as nobody
want=$(sha256sum $T/big.bin | cut -d' ' -f1)
for n in 1 2 3; do
  ns=fdbe$n$S
  # No way back to the client: only the connected subnets.
  ip netns exec $ns ip route del default
  v6addr $ns e$n$S fd00:1::1$n/64
  kill "$(cat $T/be$n/nginx.pid)"
  cat > $T/be$n/nginx.conf <<NGX
worker_processes 1; daemon on; pid $T/be$n/nginx.pid; error_log $T/be$n/error.log;
events { worker_connections 512; }
http { access_log off; server { listen 80 backlog=1024; listen [::]:80 backlog=1024;
  location = /big.bin { root $T; }
  location / { return 200 "backend $n saw \$remote_addr\n"; } }
  server { listen 8080 proxy_protocol backlog=1024; listen [::]:8080 proxy_protocol backlog=1024;
  location = /big.bin { root $T; }
  location / { return 200 "\$proxy_protocol_addr:\$proxy_protocol_port\n"; } } }
NGX
  for _ in $(seq 20); do [ -f $T/be$n/nginx.pid ] || break; sleep 0.1; done
  ip netns exec $ns nginx -c $T/be$n/nginx.conf
  ip netns exec $ns python3 $HERE/sha256server.py 8081 > /dev/null 2>&1 &
  PIDS+=($!)
  ip netns exec $ns python3 $HERE/sha256server.py 8082 proxy > /dev/null 2>&1 &
  PIDS+=($!)
done
API=127.0.0.1:$((24000 + S % 20000)); export FERROVS_API=http://$API
cat > $T/ferrovs.yaml <<YAML
dpdk: { cores: "0-1", memory_mb: 256, hugepages: false, file_prefix: "ferrovs-fnat-$S" }
ports:
  - { name: wan, device: "net_af_packet0,iface=$WAN", addresses: ["10.0.0.1/24", "2001:db8::1/64"] }
  - { name: lan, device: "net_af_packet1,iface=$LAN", addresses: ["10.1.0.1/24", "10.1.0.2/24", "fd00:1::1/64", "fd00:1::2/64"] }
flows: { capacity: 65536, capacity_ipv6: 65536 }
api: { listen: "$API" }
services:
  - { name: app, vip: 10.0.0.20, port: 80, forward: fnat, scheduler: rr, local_addresses: ["10.1.0.2"],
      backends: [ { address: 10.1.0.11 }, { address: 10.1.0.12 }, { address: 10.1.0.13 } ] }
  - { name: up, vip: 10.0.0.20, port: 8081, forward: fnat, scheduler: rr, local_addresses: ["10.1.0.2"],
      backends: [ { address: 10.1.0.11 } ] }
  - { name: app6, vip: "2001:db8::20", port: 80, forward: fnat, scheduler: rr, local_addresses: ["fd00:1::2"],
      backends: [ { address: "fd00:1::11" }, { address: "fd00:1::12" }, { address: "fd00:1::13" } ] }
  - { name: up6, vip: "2001:db8::20", port: 8081, forward: fnat, scheduler: rr, local_addresses: ["fd00:1::2"],
      backends: [ { address: "fd00:1::11" } ] }
  - { name: pp, vip: 10.0.0.30, port: 80, forward: fnat, proxy_protocol: v2, scheduler: rr, local_addresses: ["10.1.0.2"],
      backends: [ { address: 10.1.0.11, port: 8080 }, { address: 10.1.0.12, port: 8080 }, { address: 10.1.0.13, port: 8080 } ] }
  - { name: ppup, vip: 10.0.0.30, port: 8082, forward: fnat, proxy_protocol: v2, scheduler: rr, local_addresses: ["10.1.0.2"],
      backends: [ { address: 10.1.0.11 } ] }
  - { name: pp6, vip: "2001:db8::30", port: 80, forward: fnat, proxy_protocol: v2, scheduler: rr, local_addresses: ["fd00:1::2"],
      backends: [ { address: "fd00:1::11", port: 8080 }, { address: "fd00:1::12", port: 8080 } ] }
  - { name: ppup6, vip: "2001:db8::30", port: 8082, forward: fnat, proxy_protocol: v2, scheduler: rr, local_addresses: ["fd00:1::2"],
      backends: [ { address: "fd00:1::11" } ] }
YAML
start_ferrovs $T/ferrovs.yaml $T/ferrovs.log

for vip in 10.0.0.20 2001:db8::20; do
  ip netns exec $CLI python3 $HERE/httpload.py $vip 80 12 3 60 > /dev/null # ARP/NDP warm-up
  r=$(ip netns exec $CLI python3 $HERE/httpload.py $vip 80 1000 20 90)
  echo "fnat $vip: 1000 requests: $r"
  [ "$(echo "$r" | jget 'd["ok"]')" = 1000 ] || fail "not every request answered over $vip: $r"
  local=$([ $vip = 10.0.0.20 ] && echo 10.1.0.2 || echo fd00:1::2)
  for n in 1 2 3; do
    got=$(echo "$r" | jget "d['backends'].get('backend $n saw $local', 0)")
    [ "$got" -ge 300 ] || fail "backend $n saw $got requests from $local over $vip: $r"
  done
  url=$([ $vip = 10.0.0.20 ] && echo "http://$vip" || echo "http://[$vip]")
  got=$(ip netns exec $CLI curl -sg --max-time 60 "$url/big.bin" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "10 MB download over $vip: sha256 $got, want $want"
  up=$(ip netns exec $CLI curl -sg --max-time 60 --data-binary @$T/big.bin -H 'Content-Type: application/octet-stream' "$url:8081/")
  [ "$up" = "$want 10485760" ] || fail "10 MB upload over $vip: the backend read '$up', want '$want 10485760'"
  echo "fnat $vip: 10 MB download and upload byte-exact (sha256 $want)"
done
for vip in 10.0.0.30 2001:db8::30; do
  ip netns exec $CLI python3 $HERE/httpload.py $vip 80 6 2 60 > /dev/null
  r=$(ip netns exec $CLI python3 $HERE/proxycheck.py $vip 80 500)
  echo "fnat + PROXY v2 $vip: $r"
  [ "$(echo "$r" | jget 'd["ok"]')" = 500 ] || fail "the backends did not read the client's address and port from PROXY over $vip: $r"
  url=$([ $vip = 10.0.0.30 ] && echo "http://$vip" || echo "http://[$vip]")
  got=$(ip netns exec $CLI curl -sg --max-time 60 "$url/big.bin" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "10 MB download through fnat + PROXY over $vip: sha256 $got, want $want"
  up=$(ip netns exec $CLI curl -sg --max-time 60 -D $T/h.txt --data-binary @$T/big.bin -H 'Content-Type: application/octet-stream' "$url:8082/")
  [ "$up" = "$want 10485760" ] || fail "10 MB upload through fnat + PROXY over $vip: the backend read '$up', want '$want 10485760'"
  echo "fnat + PROXY v2 $vip: 10 MB download and upload byte-exact; the upload server saw $(grep -i x-proxy-client $T/h.txt | tr -d '\r')"
done
$CTL list | tee $T/list.txt
grep -E '^  -> 10\.1\.0\.11:80 +FullNat ' $T/list.txt >/dev/null || fail "ferrovsctl list: no FullNat backend"
curl -s "$FERROVS_API/metrics" | grep -E '^ferrovs_fnat_ports_in_use\{local_address="10\.1\.0\.2"\} [0-9]+' >/dev/null || fail "metric ferrovs_fnat_ports_in_use"
$CTL -o json flows --limit 5 | jget '[f["local"] for f in d]' | grep -E "10\.1\.0\.2:|fd00:1::2\]:" >/dev/null || fail "flows show no local address"
kill -TERM $FPID; wait $FPID || true
echo "e2e fnat: PASSED"
