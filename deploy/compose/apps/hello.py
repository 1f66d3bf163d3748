"""hello: a sample mesh app (stdlib only).

Answers every GET with one JSON object: its name and version, the path, and
who called it as the mesh tells it: from the x-forwarded-client-cert header
the waypoint sets (By=<waypoint id>;URI=<caller id>, Envoy's format) the
"caller" and "via" identities, the raw header, and the x-forwarded-for chain.
GET /healthz answers "ok" (for the healthcheck).

Environment: APP_NAME (default hello), APP_VERSION (default v1),
LISTEN (host:port, default 127.0.0.1:8080).
"""

import json
import os
import sys
import signal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ.get("APP_NAME", "hello")
VERSION = os.environ.get("APP_VERSION", "v1")
HOST, _, PORT = os.environ.get("LISTEN", "127.0.0.1:8080").rpartition(":")


def xfcc_field(xfcc, name):
    """One field of an x-forwarded-client-cert value: URI (the caller) or By (the proxy)."""
    for part in (xfcc or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name.lower():
            return value.strip().strip('"')
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, "text/plain", b"ok\n")
            return
        xfcc = self.headers.get("x-forwarded-client-cert")
        body = {
            "app": NAME,
            "version": VERSION,
            "path": self.path,
            "caller": xfcc_field(xfcc, "URI"),
            "via": xfcc_field(xfcc, "By"),
            "xfcc": xfcc,
            "forwarded_for": self.headers.get("x-forwarded-for"),
        }
        self.reply(200, "application/json", (json.dumps(body) + "\n").encode())

    def reply(self, status, content_type, data):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write(f"{NAME} {VERSION}: {self.address_string()} {fmt % args}\n")


def main():
    # PID 1 in a container: without a handler SIGTERM would be ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer((HOST, int(PORT)), Handler)
    print(f"{NAME} {VERSION} listening on {HOST}:{PORT}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
