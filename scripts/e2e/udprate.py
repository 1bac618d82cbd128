#!/usr/bin/env python3
"""Packets per second of UDP between two namespaces, for the exception-path measurement.

  udprate.py send HOST PORT SECONDS   sends 64-byte datagrams as fast as one socket can
  udprate.py recv ADDR PORT SECONDS   counts what arrives; prints "N packets, R pps"
Bounded: both stop after SECONDS (the receiver also after 0.5 s of silence).
"""
import socket, sys, time

def main():
    mode, host, port, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    end = time.time() + secs
    if mode == "send":
        payload, n = b"x" * 64, 0
        while time.time() < end:
            for _ in range(64):
                try:
                    s.sendto(payload, (host, port))
                    n += 1
                except OSError:
                    pass
        print(f"{n} sent, {n / secs:.0f} pps")
        return
    s.bind((host, port))
    s.settimeout(0.5)
    n, first, last = 0, None, None
    while time.time() < end:
        try:
            s.recv(2048)
        except socket.timeout:
            if n:
                break
            continue
        last = time.time()
        first = first or last
        n += 1
    rate = n / (last - first) if n > 1 else 0
    print(f"{n} packets, {rate:.0f} pps")

if __name__ == "__main__":
    main()
