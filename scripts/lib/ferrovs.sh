# Running the daemon in the end-to-end suites (source this file; needs $BIN, a PIDS
# array and a fail function).
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
