#!/usr/bin/env bash
# The REST API against its own OpenAPI description, by schemathesis (PyPI): the live
# daemon (a net_pcap port, a token file) is fuzzed on every endpoint, with the token and
# without it; no answer may be a 5xx, and every answer must match the description
# (status code, content type, JSON schema).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=target/release/ferrovs
[ -x "$BIN" ] || cargo build --release -p mgmt --bin ferrovs 2>&1 | tail -1
VENV=$PWD/target/schemathesis-venv
ST_VERSION=4.32.5
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
T=$(mktemp -d /tmp/ferrovs-schemathesis.XXXX); PID=""
cleanup() { [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }; rm -rf "$T"; }
trap cleanup EXIT INT TERM
python3 -c "import struct,sys; open(sys.argv[1],'wb').write(struct.pack('<IHHiIII',0xa1b2c3d4,2,4,0,0,65535,1))" "$T/in.pcap"
echo "s3cret" > "$T/token"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$T/ferrovs.yaml" <<YAML
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256, file_prefix: "st$$" }
ports:
  - { name: p0, device: "net_pcap0,rx_pcap=$T/in.pcap,tx_pcap=$T/out.pcap", mac: "02:00:00:00:0a:01", addresses: ["10.0.0.1/24"] }
neighbors: [ { address: 10.0.0.20, mac: "02:00:00:00:10:20", port: p0 } ]
api: { listen: "127.0.0.1:$PORT", token_file: "$T/token" }
flows: { capacity: 65536 }
services:
  - { name: web, vip: 10.0.0.10, port: 80, backends: [ { address: 10.0.0.20 } ] }
YAML
FERROVS_LOCK_DIR=$T/locks "$BIN" --config "$T/ferrovs.yaml" 2> "$T/ferrovs.log" & PID=$!
for _ in $(seq 100); do grep -q "ferrovs running" "$T/ferrovs.log" && break; sleep 0.1; done
grep -q "ferrovs running" "$T/ferrovs.log" || { cat "$T/ferrovs.log"; echo "e2e schemathesis: FAILED: ferrovs did not start"; exit 1; }
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
for auth in token none; do
  H=(); [ "$auth" = token ] && H=(-H "Authorization: Bearer s3cret")
  # Run from the scratch directory: schemathesis keeps its example cache in the CWD.
  if ! (cd "$T" && "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" -c "$CHECKS" \
      -n 30 --request-timeout 10 "${H[@]}") > "$T/st-$auth.log" 2>&1; then
    tail -n 60 "$T/st-$auth.log"
    echo "e2e schemathesis: FAILED ($auth)"; exit 1
  fi
  echo "e2e schemathesis ($auth): $(grep -E '[0-9]+ generated' "$T/st-$auth.log" | tr -s ' ')"
done
kill "$PID"; wait "$PID" || true; PID=""
echo "e2e schemathesis: passed"
