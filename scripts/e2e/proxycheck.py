#!/usr/bin/env python3
"""PROXY protocol check: N HTTP requests to HOST:PORT, each on a fresh connection; the
backend answers `$proxy_protocol_addr:$proxy_protocol_port`, which must be this client's
own address and source port for that very connection. Prints one JSON object:
{"requests", "ok", "mismatched", "errors", "example"}. Bounded by per-request timeouts.

  proxycheck.py HOST PORT N
"""
import json, socket, sys

def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = {"requests": n, "ok": 0, "mismatched": 0, "errors": 0, "example": None}
    for _ in range(n):
        try:
            s = socket.create_connection((host, port), timeout=5)
            me = s.getsockname()
            s.sendall(f"GET / HTTP/1.0\r\nHost: x\r\n\r\n".encode())
            buf = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                buf += d
            s.close()
            body = buf.split(b"\r\n\r\n", 1)[1].decode().strip()
            want = f"{me[0]}:{me[1]}"
            if body == want:
                out["ok"] += 1
            else:
                out["mismatched"] += 1
            out["example"] = f"{want} -> {body}"
        except Exception:
            out["errors"] += 1
    print(json.dumps(out))

if __name__ == "__main__":
    main()
