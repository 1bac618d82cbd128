#!/usr/bin/env python3
"""Steady HTTP load for the health-check tests: C threads send GET requests, each on a
fresh connection, for SECONDS; prints one JSON object: every request's (epoch time,
backend that answered or null for a failure). Bounded: per-request timeout, a deadline.

  steadyload.py HOST PORT SECONDS THREADS
"""
import http.client, json, sys, threading, time

def main():
    host, port, secs, conc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    end = time.time() + secs
    lock = threading.Lock()
    log = []

    def worker():
        while time.time() < end:
            t = time.time()
            who = None
            try:
                c = http.client.HTTPConnection(host, port, timeout=2)
                c.request("GET", "/")
                body = c.getresponse().read().decode()
                c.close()
                who = body.strip()
            except Exception:
                time.sleep(0.05)
            with lock:
                log.append((t, who))

    ts = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps(sorted(log, key=lambda x: x[0])))

if __name__ == "__main__":
    main()
