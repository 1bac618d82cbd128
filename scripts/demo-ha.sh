#!/usr/bin/env bash
# The high-availability demo: two ferrovs boxes announce one VIP over BGP (BIRD 2) to a
# router namespace that spreads flows over both with ECMP; dr mode with the mh scheduler
# and three nginx backends. Shows ferrovsctl bgp, the router's two next hops, then stops
# one box with SIGTERM while 20 long-lived connections run: the box withdraws, the router
# moves its flows to the other box, and every connection carries on with its backend.
# Cleans up on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo-ha: run as root (network namespaces)"; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing what is missing (BIRD 2 included) and building"
bash scripts/setup.sh
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build --release -p mgmt --bin ferrovs --bin ferrovsctl 2>&1 | tail -1
BIN=$PWD/target/release/ferrovs
CTL=$PWD/target/release/ferrovsctl
source scripts/lib/bgp-topology.sh
trap bgp_topology_down EXIT INT TERM
die() { echo "demo-ha: $*"; for b in a b; do [ -f $T/$b.log ] && tail -5 $T/$b.log; done; exit 1; }
ctl() { local b=$1; shift; FERROVS_API=$(bgp_api "$b") "$CTL" "$@"; }

say "topology: client 10.9.0.2 -- router (BIRD, ECMP) -- bridge -- box a 10.3.0.1, box b 10.3.0.2 -- nginx 10.3.0.11-13; VIP $VIP"
bgp_topology_up
bgp_box_config a 1; bgp_box_config b 2
say "starting box a and box b (each runs its own BIRD in its exception namespace)"
bgp_box_start a || die "box a did not start"
bgp_box_start b || die "box b did not start"
bgp_wait_nexthops "via 10.3.0.1 via 10.3.0.2 " 30 || die "the router did not learn both boxes"
sleep 1
say "ferrovsctl bgp on box a"
ctl a bgp
say "the router's route to the VIP: one next hop per box (ECMP)"
ip -n $ROUTER route show $VIP/32

say "200 requests from the client: the router spreads them over both boxes"
ip netns exec $CLI python3 scripts/e2e/httpload.py $VIP 80 200 10 60
for b in a b; do echo "box $b received $(ctl $b -o json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["rx"])') packets"; done

say "20 long-lived connections (a request every 100 ms for 8 s); box a gets SIGTERM after 3 s"
ip netns exec $CLI python3 scripts/e2e/holdconns.py $VIP 80 20 8 0.1 10 > $T/hold.json &
HP=$!
sleep 3
kill -TERM $PID_a
bgp_wait_nexthops "via 10.3.0.2 " 5 || die "box a did not withdraw"
say "box a during its withdraw grace (withdraw_grace_s: 2): it withdrew, still forwards"
ctl a bgp || true
say "the router now has box b only"
ip -n $ROUTER route show $VIP/32
wait $PID_a || true
wait $HP
say "the long-lived connections: all completed, none reset, none changed backend"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("client_ports"); print(d)' $T/hold.json
echo "box b forwarded $(ctl b -o json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["stateless"])') packets of flows it had never seen (to the backend Maglev picks, the same on both boxes)"

say "box a back: it announces again"
bgp_box_start a || die "box a did not start again"
bgp_wait_nexthops "via 10.3.0.1 via 10.3.0.2 " 30 || die "box a did not come back"
ip -n $ROUTER route show $VIP/32
say "done; cleaning up"
