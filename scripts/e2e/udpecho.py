#!/usr/bin/env python3
"""UDP echo for the fragment tests. Bounded: the client waits at most 1 s per datagram.

  udpecho.py server PORT
      answers every datagram with the same bytes (IPv4 and IPv6)
  udpecho.py client HOST PORT COUNT SIZE[,SIZE...]
      sends COUNT datagrams (sizes in turn, random bytes, one at a time) and checks each
      answer; prints one JSON line: {"sent", "ok", "wrong", "lost", "sizes"}
"""
import json, os, socket, sys


def main():
    if sys.argv[1] == "server":
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", int(sys.argv[2])))
        while True:
            data, peer = s.recvfrom(65535)
            s.sendto(data, peer)
    host, port, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sizes = [int(x) for x in sys.argv[5].split(",")]
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    out = {"sent": 0, "ok": 0, "wrong": 0, "lost": 0, "sizes": sizes}
    for i in range(count):
        data = os.urandom(sizes[i % len(sizes)])
        s.sendto(data, (host, port))
        out["sent"] += 1
        try:
            got = s.recv(65535)
            out["ok" if got == data else "wrong"] += 1
        except socket.timeout:
            out["lost"] += 1
    print(json.dumps(out))


if __name__ == "__main__":
    main()
