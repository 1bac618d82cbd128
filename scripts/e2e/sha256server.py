#!/usr/bin/env python3
"""An HTTP server for the upload tests: a POST is answered with the SHA-256 of the body
it read and its length. Serves IPv6 and IPv4 on PORT. Usage: sha256server.py PORT"""
import hashlib, http.server, socket, sys

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
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
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)

class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

if __name__ == "__main__":
    Server(("::", int(sys.argv[1])), H).serve_forever()
