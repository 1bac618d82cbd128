#!/usr/bin/env python3
"""Forged frames for the attack tests, sent on IFACE (the client side) through an
AF_PACKET socket to LB_MAC (ferrovs's port). Bounded: a fixed number of frames each.

  spoof.py IFACE LB_MAC arp CLAIM_IP[,CLAIM_IP...]
      gratuitous ARP replies and requests claiming each address at a forged MAC, 20
      rounds 50 ms apart (to LB_MAC and to broadcast)
  spoof.py IFACE LB_MAC rst VIP VPORT CLIENT_IP CLIENT_PORT[,...] BACKEND_IP:PORT[,...]
      for each client port: a reset from each backend address to it (the backend's side,
      forged on the client's), and 20 resets from it to VIP:VPORT with random sequence
      numbers
  spoof.py IFACE LB_MAC arpflood TARGET_IP NET_A.NET_B COUNT
      COUNT ARP requests for TARGET_IP from random senders NET_A.NET_B.x.y (x > 0) with
      random MACs
Prints one JSON line: what was sent.
"""
import json, random, socket, struct, sys, time

FORGED_MAC = bytes([2, 0x66, 0, 0, 0, 0x99])


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def arp(dst, src_mac, op, sender_ip, target_ip, target_mac=b"\0" * 6):
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, src_mac, sender_ip, target_mac, target_ip)
    return dst + src_mac + b"\x08\x06" + body


def rst(dst_mac, src, dst, sport, dport, seq):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x04, 0, 0, 0)
    ph = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + FORGED_MAC + b"\x08\x00" + ip + tcp


def main():
    iface, lb, what = sys.argv[1], mac(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    sent = 0

    def send(f):
        nonlocal sent
        try:
            s.send(f)
            sent += 1
        except OSError:
            time.sleep(0.001)

    if what == "arp":
        claims = [socket.inet_aton(a) for a in sys.argv[4].split(",")]
        for _ in range(20):
            for ip in claims:
                for dst in (lb, b"\xff" * 6):
                    send(arp(dst, FORGED_MAC, 2, ip, ip))  # gratuitous reply
                    send(arp(dst, FORGED_MAC, 1, ip, ip))  # gratuitous request
            time.sleep(0.05)
    elif what == "rst":
        vip, vport = socket.inet_aton(sys.argv[4]), int(sys.argv[5])
        client = socket.inet_aton(sys.argv[6])
        ports = [int(p) for p in sys.argv[7].split(",") if p]
        backends = [(socket.inet_aton(b.split(":")[0]), int(b.split(":")[1])) for b in sys.argv[8].split(",")]
        for p in ports:
            for b, bp in backends:
                send(rst(lb, b, client, bp, p, random.getrandbits(32)))
            for _ in range(20):
                send(rst(lb, client, vip, p, vport, random.getrandbits(32)))
    elif what == "arpflood":
        target = socket.inet_aton(sys.argv[4])
        a, b = (int(x) for x in sys.argv[5].split("."))
        count = int(sys.argv[6])
        for _ in range(count):
            # Not x.y.0.z: the real hosts of the test live there (a sender on the same
            # segment claiming a real host's address is an ARP spoof, tested apart).
            sender = bytes([a, b, random.randrange(1, 256), random.randrange(1, 255)])
            m = bytes([2]) + random.getrandbits(40).to_bytes(5, "big")
            send(arp(b"\xff" * 6, m, 1, sender, target))
    print(json.dumps({"what": what, "sent": sent}))


if __name__ == "__main__":
    main()
