# Running the daemon in the end-to-end suites (source this file from the repository
# root, then call e2e_begin; start_ferrovs needs a fail function).
# start_ferrovs CONFIG LOG: starts ferrovs on CONFIG, its log in LOG, its pid in FPID (and
# in PIDS, for the suite's cleanup); fails unless it runs within 10 s.
start_ferrovs() {
  $BIN --config "$1" 2> "$2" &
  FPID=$!; PIDS+=($FPID)
  for _ in $(seq 100); do grep -q "ferrovs running" "$2" && return 0; sleep 0.1; done
  fail "ferrovs did not start"
}
# jget EXPR: evaluates EXPR over the JSON on stdin (as `d`) and prints it.
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }

# e2e_begin NAME: what every end-to-end suite starts with: root, ferrovs and ferrovsctl
# built, BIN, CTL and HERE set, and empty PIDS, NSS and LINKS for the processes it
# starts and the namespaces and links it creates (kill_pids, remove_nss_links).
e2e_begin() {
  [ "$(id -u)" -eq 0 ] || { echo "e2e $1: needs root"; exit 1; }
  export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
  cargo build --release -p mgmt --bin ferrovs --bin ferrovsctl 2>&1 | tail -1
  BIN=$PWD/target/release/ferrovs; CTL=$PWD/target/release/ferrovsctl
  HERE=$PWD/scripts/e2e
  PIDS=(); NSS=(); LINKS=()
}
# kill_pids: stops the processes the suite started (for its cleanup).
kill_pids() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
# remove_nss_links: removes the namespaces (their processes first) and links it created.
remove_nss_links() {
  for ns in "${NSS[@]}"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; done
  for l in "${LINKS[@]}"; do ip link del "$l" 2>/dev/null || true; done
}
