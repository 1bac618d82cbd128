#!/usr/bin/env python3
"""An HTTP server for the upload tests: a POST is answered with the SHA-256 of the body
it read and its length. Serves IPv6 and IPv4 on PORT. With `proxy`, every connection
must start with a PROXY protocol v2 header, which is read (and its client address
answered in the X-Proxy-Client header) before HTTP. Usage: sha256server.py PORT [proxy]"""
import hashlib, http.server, socket, sys

PROXY = len(sys.argv) > 2 and sys.argv[2] == "proxy"
SIG = b"\r\n\r\n\0\r\nQUIT\n"

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    client = "-"
    def setup(self):
        super().setup()
        if PROXY:
            head = self.rfile.read(16)
            if head[:12] != SIG:
                raise ConnectionError("no PROXY v2 header")
            rest = self.rfile.read(int.from_bytes(head[14:16], "big"))
            if head[13] == 0x11:
                self.client = "%s:%d" % (socket.inet_ntop(socket.AF_INET, rest[0:4]), int.from_bytes(rest[8:10], "big"))
            elif head[13] == 0x21:
                self.client = "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, rest[0:16]), int.from_bytes(rest[32:34], "big"))
    def log_message(self, *a):
        pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        h, left = hashlib.sha256(), n
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            h.update(chunk); left -= len(chunk)
        body = f"{h.hexdigest()} {n - left}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Proxy-Client", self.client); self.end_headers()
        self.wfile.write(body)

class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

if __name__ == "__main__":
    Server(("::", int(sys.argv[1])), H).serve_forever()
