#!/usr/bin/env python3
"""An HTTP server that answers every GET with the address and port the connection came
from (as the server sees them). Serves IPv6 and IPv4 on PORT. Usage: echoaddr.py PORT"""
import http.server, socket, sys

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        a = self.client_address
        host = a[0][7:] if a[0].startswith("::ffff:") else a[0]
        body = f"{host} {a[1]}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)

class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    request_queue_size = 512
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

if __name__ == "__main__":
    Server(("::", int(sys.argv[1])), H).serve_forever()
