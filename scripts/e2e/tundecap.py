#!/usr/bin/env python3
"""Userspace tunnel decapsulator for a backend namespace whose kernel has no ipip (or
ip6_tunnel) module.

IPv4 (default): receives protocol-4 packets on a raw socket, strips the outer IPv4 header
and writes the inner packet to a TUN device that holds the VIP, so local sockets get it.
IPv6 (`6`): receives next-header-41 packets on an IPv6 raw socket (which delivers the
payload: the inner IPv6 packet) and writes them to the TUN device. Replies route straight
back to the client (rp_filter must be 0 for IPv4). Usage: tundecap.py TUN_NAME [6]
"""
import fcntl, os, socket, struct, sys

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000

def main():
    name = sys.argv[1]
    v6 = len(sys.argv) > 2 and sys.argv[2] == "6"
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    if v6:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41)
    else:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    sys.stdout.write("ready\n"); sys.stdout.flush()
    while True:
        pkt = raw.recv(65535)
        if v6:
            if len(pkt) >= 40 and pkt[0] >> 4 == 6:
                os.write(tun, pkt)
            continue
        ihl = (pkt[0] & 0x0F) * 4
        if len(pkt) > ihl + 20:
            os.write(tun, pkt[ihl:])

if __name__ == "__main__":
    main()
