#!/usr/bin/env python3
"""A small concurrent HTTP load client for the end-to-end tests.

Sends N GET requests from C threads, each on a fresh TCP connection (so every request is
a new flow through the load balancer), tallies which backend answered (the body names
it), and prints one JSON line: ok, errors, per-backend counts, requests/s.
Bounded: every request has a timeout, the whole run a deadline.
"""
import http.client, json, sys, threading, time

def main():
    host, port = sys.argv[1], int(sys.argv[2])
    total, conc = int(sys.argv[3]), int(sys.argv[4])
    deadline = time.time() + float(sys.argv[5]) if len(sys.argv) > 5 else time.time() + 120
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "errors": 0, "backends": {}, "error_kinds": {}}

    def worker():
        while time.time() < deadline:
            with lock:
                if state["next"] >= total:
                    return
                state["next"] += 1
            try:
                c = http.client.HTTPConnection(host, port, timeout=5)
                c.request("GET", "/")
                r = c.getresponse()
                body = r.read().decode(errors="replace").strip()
                c.close()
                with lock:
                    if r.status == 200:
                        state["ok"] += 1
                        state["backends"][body] = state["backends"].get(body, 0) + 1
                    else:
                        state["errors"] += 1
            except Exception as e:  # counted, never raised: the test judges the totals
                with lock:
                    state["errors"] += 1
                    k = type(e).__name__
                    state["error_kinds"][k] = state["error_kinds"].get(k, 0) + 1

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    print(json.dumps({"ok": state["ok"], "errors": state["errors"], "error_kinds": state["error_kinds"],
                      "backends": state["backends"], "seconds": round(dt, 2),
                      "rps": round(state["ok"] / dt, 1) if dt > 0 else 0}))

if __name__ == "__main__":
    main()
