# SPDX-License-Identifier: GPL-3.0-or-later
"""Serve the lab's virtiofsd artifacts on loopback, logging every request to a file.

Integration tests read the access log to prove that a second run downloaded nothing.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--directory", required=True)
    ap.add_argument("--access-log", required=True)
    args = ap.parse_args()
    if not args.bind.startswith("127.") and args.bind != "::1":
        print("artifact server binds to loopback only", file=sys.stderr)
        return 2
    log = open(args.access_log, "a", buffering=1, encoding="utf-8")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *a):  # noqa: A002 (signature of the base class)
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {self.address_string()} {format % a}\n")

    handler = functools.partial(Handler, directory=args.directory)
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    with http.server.ThreadingHTTPServer((args.bind, args.port), handler) as srv:
        srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
