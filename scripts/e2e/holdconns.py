#!/usr/bin/env python3
"""Long-lived connections for the failover tests: N keep-alive HTTP/1.1 connections, each
from its own source port, each sending GET / every INTERVAL seconds for SECONDS. A
connection completes when every request got an answer from the same backend; it fails on
a reset, a timeout (TIMEOUT s per request) or a close. Prints one JSON object:
  {"connections", "completed", "reset", "timeout", "closed", "other", "requests",
   "backend_changed", "slowest_s", "client_ports"}
Bounded: per-request timeout, a deadline.

  holdconns.py HOST PORT N SECONDS [INTERVAL] [TIMEOUT]
"""
import json, socket, sys, threading, time


def main():
    host, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    interval = float(sys.argv[5]) if len(sys.argv) > 5 else 0.1
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
    end = time.time() + secs
    lock = threading.Lock()
    out = {"connections": n, "completed": 0, "reset": 0, "timeout": 0, "closed": 0,
           "other": 0, "requests": 0, "backend_changed": 0, "slowest_s": 0.0,
           "client_ports": []}
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    def answer(s, buf):
        """Reads one response (headers + Content-Length body); returns (body, rest)."""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                raise EOFError
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(buf) < length:
            d = s.recv(4096)
            if not d:
                raise EOFError
            buf += d
        return buf[:length].decode().strip(), buf[length:]

    def conn():
        first, result, slowest, count = None, "completed", 0.0, 0
        try:
            s = socket.create_connection((host, port), timeout=timeout)
        except Exception:
            with lock:
                out["other"] += 1
            return
        with lock:
            out["client_ports"].append(s.getsockname()[1])
        buf = b""
        try:
            while time.time() < end:
                t = time.time()
                s.sendall(req)
                body, buf = answer(s, buf)
                slowest = max(slowest, time.time() - t)
                count += 1
                if first is None:
                    first = body
                elif body != first:
                    with lock:
                        out["backend_changed"] += 1
                    first = body
                time.sleep(interval)
        except ConnectionResetError:
            result = "reset"
        except socket.timeout:
            result = "timeout"
        except EOFError:
            result = "closed"
        except Exception:
            result = "other"
        finally:
            s.close()
        with lock:
            out[result] += 1
            out["requests"] += count
            out["slowest_s"] = round(max(out["slowest_s"], slowest), 3)

    ts = [threading.Thread(target=conn) for _ in range(n)]
    for t in ts:
        t.start()
        time.sleep(0.01)
    for t in ts:
        t.join()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
