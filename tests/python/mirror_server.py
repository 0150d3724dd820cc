#!/usr/bin/env python3
"""A download mirror for petseg's tests, on 127.0.0.1 only: serves a folder over HTTP with Range requests (206), and
can cut the first transfer of a file short (--cut NAME:BYTES) to test resumed downloads. Prints the port it bound,
then serves until killed; every request goes to --log (path, Range header, status)."""
import argparse
import http.server
import os
import sys
import threading


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--cut", action="append", default=[], help="NAME:BYTES: the first GET of NAME stops after BYTES")
    args = p.parse_args()
    cuts = {}
    for c in args.cut:
        name, n = c.rsplit(":", 1)
        cuts[name] = int(n)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def record(self, status):
            with lock, open(args.log, "a") as f:
                f.write(f"{self.path} range={self.headers.get('Range', '-')} status={status}\n")

        def do_GET(self):
            name = self.path.lstrip("/")
            path = os.path.join(args.root, name)
            if ".." in name.split("/") or name.startswith("/") or not os.path.isfile(path):
                self.record(404)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = os.path.getsize(path)
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= size:
                    self.record(416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            status = 206 if start else 200
            self.record(status)
            self.send_response(status)
            self.send_header("Content-Length", str(size - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                limit = None
                with lock:
                    if name in cuts:
                        limit = cuts.pop(name)
                sent = 0
                while True:
                    chunk = f.read(65536)
                    if not chunk:
                        break
                    if limit is not None and sent + len(chunk) > limit:
                        self.wfile.write(chunk[: limit - sent])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)  # the transfer breaks off mid-body
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
