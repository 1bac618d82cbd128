#!/usr/bin/env python3
"""Userspace IP-in-IP decapsulator for a backend namespace whose kernel has no ipip module.

Receives protocol-4 packets on a raw socket, strips the outer IPv4 header and writes the
inner packet to a TUN device that holds the VIP, so local sockets get it; replies route
straight back to the client (rp_filter must be 0). Usage: tundecap.py TUN_NAME
"""
import fcntl, os, socket, struct, sys

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000

def main():
    name = sys.argv[1]
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    sys.stdout.write("ready\n"); sys.stdout.flush()
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    while True:
        pkt = raw.recv(65535)
        ihl = (pkt[0] & 0x0F) * 4
        if len(pkt) > ihl + 20:
            os.write(tun, pkt[ihl:])

if __name__ == "__main__":
    main()
