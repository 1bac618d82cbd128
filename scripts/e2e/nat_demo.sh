#!/usr/bin/env bash
# End-to-end check of the NAT path through real namespaces (the demo's topology):
# every request succeeds, rr spreads them evenly over the 3 nginx backends, ARP is
# learned, ferrovsctl shows ipvsadm's layout, and after a live drain (REST API) the
# drained backend gets no new connection.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(bash scripts/demo.sh 2>&1) || { echo "$out"; echo "e2e nat: demo failed"; exit 1; }
fail() { echo "$out"; echo "e2e nat: FAILED: $*"; exit 1; }
first=$(echo "$out" | sed -n '/9 HTTP requests/,/neighbors ferrovs learned/p')
stats=$(echo "$out" | sed -n '/ferrovsctl list --stats/,/draining backend 3/p')
after=$(echo "$out" | sed -n '/draining backend 3/,/stopping ferrovs/p')
echo "$out" | grep -q "FAILED" && fail "a request failed"
for n in 1 2 3; do
  echo "$first" | grep -qE "^ +3 hello from backend $n " || fail "backend $n did not get 3 of 9 requests"
done
[ "$(echo "$out" | grep -c 'neighbor learned')" -ge 4 ] || fail "client and backends were not learned by ARP"
load=$(echo "$out" | grep -E '^\{"ok"' | head -1)
python3 - "$load" <<'PY' || fail "1000 concurrent requests: $load"
import json, sys
d = json.loads(sys.argv[1])
assert d["ok"] == 1000 and d["errors"] == 0, d
assert all(abs(d["backends"].get("hello from backend %d (10.1.0.1%d)" % (n, n), 0) - 1000 / 3) <= 30 for n in (1, 2, 3)), d
PY
echo "e2e nat: 1000 concurrent requests: $load"
echo "$after" | grep -q "hello from backend 3" && fail "drained backend 3 received new connections"
[ "$(echo "$after" | grep -oE '^ +[0-9]+ hello' | awk '{s+=$1} END {print s}')" = 9 ] || fail "not all 9 requests after the drain succeeded"
conns=$(echo "$stats" | awk '/^TCP  10\.0\.0\.10:80 / {print $3}')
[ "${conns:-0}" -ge 1009 ] || fail "ferrovsctl list --stats counts ${conns:-no} connections, expected at least 1009"
echo "$after" | grep -qE '^  -> 10\.1\.0\.13:80 +Masq +0 ' || fail "ferrovsctl list does not show backend 3 drained"
echo "$out" | grep -q "stopped" || fail "ferrovs did not stop cleanly"
echo "e2e nat: 1018/1018 requests ok, 3 backends balanced, ARP learned, drain honoured"
