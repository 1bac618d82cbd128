# Health-check outage under load, shared by the e2e suites (source this file; needs
# start_nginx from nginx.sh, $CTL, $FERROVS_API, fail()).
#
# health_outage CLI VIP NS DIR TEXT LABEL SERVICE BACKEND [WHILE_DOWN]
#   Steady load from namespace CLI to VIP:80 for 14 s; at ~3 s the nginx of backend
#   BACKEND (service SERVICE; nginx in namespace NS, files in DIR, answering TEXT, which
#   contains LABEL) is killed; once the API shows it down, WHILE_DOWN is evaluated (a
#   reload, an API write: it must stay down); at ~9 s nginx is started again. Asserts:
#   no failed request before the kill nor later than fall x interval + timeout after it
#   (the other backends never fail), nothing from LABEL while down, traffic to it again
#   after it is back; prints the measured times and counts. HC_FALL, HC_INTERVAL_MS,
#   HC_TIMEOUT_MS, HC_RISE give the check's settings.
backend_health() { # SERVICE BACKEND -> up|down|unchecked
  curl -s "$FERROVS_API/api/v1/services/$1" | python3 -c '
import json, sys
for b in json.load(sys.stdin)["backends"]:
    if "%s:%s" % (b["address"], b["port"]) == sys.argv[1]: print(b["health"])' "$2"
}

health_outage() {
  local cli=$1 vip=$2 ns=$3 dir=$4 text=$5 label=$6 svc=$7 be=$8 while_down=${9:-}
  local here; here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../e2e" && pwd)
  local log; log=$(mktemp /tmp/ferrovs-load.XXXX)
  ip netns exec "$cli" python3 "$here/steadyload.py" "$vip" 80 14 4 > "$log" & local lp=$!
  sleep 3
  local kill_at; kill_at=$(date +%s.%N)
  kill "$(cat "$dir/nginx.pid")"
  local down=""
  for _ in $(seq 40); do
    [ "$(backend_health "$svc" "$be")" = down ] && { down=1; break; }
    sleep 0.1
  done
  [ -n "$down" ] || { wait $lp; rm -f "$log"; fail "$svc $be not down 4 s after its nginx was killed"; }
  if [ -n "$while_down" ]; then
    eval "$while_down"; sleep 0.5
    [ "$(backend_health "$svc" "$be")" = down ] || { wait $lp; rm -f "$log"; fail "'$while_down' brought the down backend $be up"; }
  fi
  sleep $(python3 -c "import time; print(max(0.0, $kill_at + 6 - time.time()))")
  local back_at; back_at=$(date +%s.%N)
  start_nginx "$ns" "$dir" "$text"
  wait $lp
  python3 - "$log" "$kill_at" "$back_at" "$HC_FALL" "$HC_INTERVAL_MS" "$HC_TIMEOUT_MS" "$HC_RISE" "$label" <<'PY' \
    || { rm -f "$log"; fail "health outage of $be: see above"; }
import json, sys
log = json.load(open(sys.argv[1]))
kill, back = float(sys.argv[2]), float(sys.argv[3])
fall, interval, timeout, rise = int(sys.argv[4]), int(sys.argv[5]) / 1000, int(sys.argv[6]) / 1000, int(sys.argv[7])
label = sys.argv[8]
bound = fall * interval + timeout
fails = [t for t, who in log if who is None]
# A request is logged at its start: one in flight when nginx died fails "before" it.
early = [t for t in fails if t < kill - 0.2]
late = [t for t in fails if t > kill + bound + 0.5]
last = max(fails) - kill if fails else 0.0
print(f"  {len(log)} requests; {len(fails)} failed, the last {last:.2f} s after the kill "
      f"(bound fall x interval + timeout = {bound:.2f} s)")
assert not early, f"failures before the kill: {[round(t - kill, 2) for t in early]} s"
assert not late, f"failures after the bound: {[round(t - kill, 2) for t in late]}"
mine = [t for t, who in log if who and label in who]
during = [t for t in mine if kill + bound + 0.5 < t < back]
after = [t for t in mine if t > back]
assert not during, f"{label} answered while down"
assert after, f"{label} got no traffic after it came back"
print(f"  {label} back: first answer {after[0] - back:.2f} s after nginx restarted "
      f"({rise} good probes needed, {interval:.2f} s apart)")
PY
  rm -f "$log"
}
