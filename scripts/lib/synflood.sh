# What the SYN flood suites (scripts/e2e/synflood*.sh) check after a flood.
# during_flood LOG START END: of the new connections a steady load made (its log:
# [time, backend or null] pairs), at least 95% succeeded during the flood and all of
# them from 1 s after its end.
during_flood() {
python3 - "$1" "$2" "$3" <<'PY'
import json, sys
log = json.load(open(sys.argv[1])); t0, t1 = float(sys.argv[2]), float(sys.argv[3])
during = [who for t, who in log if t0 + 0.5 < t < t1]
after = [who for t, who in log if t > t1 + 1.0]
ok = sum(1 for w in during if w)
print(f"new connections during the flood: {ok} of {len(during)} succeeded ({100 * ok / max(1, len(during)):.1f}%); "
      f"after it (from 1 s on): {sum(1 for w in after if w)} of {len(after)}")
assert during and ok >= 0.95 * len(during), "fewer than 95% of new connections succeeded during the flood"
assert after and all(after), "new connections failed more than 1 s after the flood"
PY
}
# long_lived_completed FILE: the 20 connections holdconns.py kept open across the flood
# all completed (prints its result; the caller fails otherwise).
long_lived_completed() {
  local r; r=$(sed 's/, "client_ports": \[[^]]*\]//' "$1"); echo "long-lived connections across the flood: $r"
  [ "$(echo "$r" | jget 'd["completed"]')" = 20 ]
}
