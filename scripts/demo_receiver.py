#!/usr/bin/env python3
"""A tiny webhook receiver for the demo: prints each delivery and checks its signature."""
import hashlib
import hmac
import http.server
import sys

PORT = int(sys.argv[1])
SECRET = sys.argv[2].encode() if len(sys.argv) > 2 else b""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as route-delivery reuses connections

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = self.headers.get("X-Signature-256", "")
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        verdict = "signature OK" if SECRET and hmac.compare_digest(sig, expected) else "signature MISMATCH"
        print(f"receiver: {self.command} {self.path} webhook-id={self.headers.get('webhook-id')} "
              f"{verdict} body={body.decode(errors='replace')}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
