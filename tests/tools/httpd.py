#!/usr/bin/env python3
"""A small HTTP/1.1 file server for mpfarm's download tests (stdlib only).

Listens on 127.0.0.1 only, on a free port chosen by the kernel, serves one
directory and exits by itself after --max-seconds. Misbehaviour is chosen by
the path's prefix, so one server serves every case of a test run.

Usage:
  httpd.py --root DIR --port-file FILE [--log FILE] [--max-seconds S]
           [--fail-first N] [--truncate-first N] [--slow-delay S] [--slow-chunk B]

Options:
  --root DIR          the directory served (required)
  --port-file FILE    the port number is written here (atomically: FILE.tmp,
                      then renamed) once the server accepts connections (required)
  --log FILE          request log, appended: one line per request, written when
                      the answer is finished (or the client went away):
                          METHOD PATH RANGE STATUS BYTES_SENT
                      PATH without the query string; RANGE is the Range header
                      without spaces, or "-"; BYTES_SENT counts body bytes only
  --max-seconds S     exit after S seconds whatever happens (default 120)
  --fail-first N      /status/CODE/FILE: the first N requests answer CODE (default 2)
  --truncate-first N  /truncate/FILE: the first N requests are cut short (default 1)
  --slow-delay S      /slow/FILE: pause before each piece of the body (default 0.5)
  --slow-chunk B      /slow/FILE: size of each piece (default 64)

Paths (FILE is a path below --root; counters are kept per whole request path):
  /FILE               the file, with single-range support (Range: bytes=A-,
                      bytes=A-B, bytes=-N -> 206 + Content-Range; a start past
                      the end -> 416 with Content-Range: bytes */SIZE)
  /norange/FILE       the file, Range ignored: always 200 with the whole body
  /slow/FILE          headers at once, then the body in --slow-chunk pieces, each
                      after a --slow-delay pause (Range honoured)
  /truncate/FILE      the first --truncate-first requests announce the full
                      Content-Length (of the range asked for) but send only half
                      of it and close; later requests are served as /FILE
  /status/CODE[/FILE] the first --fail-first requests answer CODE (a short text
                      body); later ones serve FILE as /FILE (no FILE: 404 forever)
  /redirect/REST      302 to /REST (repeat the prefix for a chain of redirects)
  anything missing    404

HEAD is answered like GET without a body. A /slow/ answer stops as soon as
the client closes its end (its log line then shows the bytes sent so far).
The server stops on SIGTERM too.
"""

import argparse
import http.server
import os
import select
import signal
import socket
import sys
import threading
import time


class State:
    def __init__(self, args):
        self.args = args
        self.root = os.path.realpath(args.root)
        self.lock = threading.Lock()
        self.counts = {}
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None

    def count(self, path):
        """Number of requests for this path so far, this one included."""
        with self.lock:
            n = self.counts.get(path, 0) + 1
            self.counts[path] = n
            return n

    def write_log(self, line):
        if not self.log:
            return
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()


def parse_range(value, size):
    """(start, end) inclusive for one 'bytes=' range, 'bad' for an unsatisfiable
    one, None for no usable range (the whole file is sent)."""
    if not value or not value.startswith("bytes=") or "," in value:
        return None
    spec = value[6:].strip()
    if "-" not in spec:
        return None
    a, b = spec.split("-", 1)
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                return "bad"
            return (max(0, size - n), size - 1)
        start = int(a)
        end = int(b) if b != "" else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "bad"
    return (start, min(end, size - 1))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mpfarm-test-httpd"

    def log_message(self, fmt, *args):  # quiet: the request log is ours
        pass

    def do_GET(self):
        self.handle_request(body=True)

    def do_HEAD(self):
        self.handle_request(body=False)

    # ---- helpers

    def finish_log(self, status, sent):
        rng = (self.headers.get("Range") or "-").replace(" ", "")
        self.state.write_log("%s %s %s %d %d" % (self.command, self.req_path, rng, status, sent))

    def simple(self, status, text, extra=None):
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        sent = 0
        if self.with_body:
            try:
                self.wfile.write(data)
                sent = len(data)
            except OSError:
                self.close_connection = True
        self.finish_log(status, sent)

    def client_gone(self, wait):
        """Wait up to wait seconds; True as soon as the client closed its end."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.connection], [], [], left)
            if r:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return True
                except OSError:
                    return True
                time.sleep(min(left, 0.05))  # unread bytes: keep waiting

    def local(self, rel):
        full = os.path.realpath(os.path.join(self.state.root, rel.lstrip("/")))
        if not full.startswith(self.state.root + os.sep) or not os.path.isfile(full):
            return None
        return full

    def serve_file(self, rel, honour_range=True, mode="plain"):
        full = self.local(rel)
        if full is None:
            self.simple(404, "not found")
            return
        with open(full, "rb") as f:
            data = f.read()
        size = len(data)
        rng = parse_range(self.headers.get("Range"), size) if honour_range else None
        if rng == "bad":
            self.simple(416, "range not satisfiable", {"Content-Range": "bytes */%d" % size})
            return
        if rng is None:
            status, start, end = 200, 0, size - 1
        else:
            status, (start, end) = 206, rng
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if honour_range else "none")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        if mode == "truncate":
            self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        if not self.with_body:
            self.finish_log(status, 0)
            return
        try:
            if mode == "truncate":
                half = body[:len(body) // 2]
                self.wfile.write(half)
                self.wfile.flush()
                sent = len(half)
                self.close_connection = True
            elif mode == "slow":
                step = max(1, self.state.args.slow_chunk)
                for i in range(0, len(body), step):
                    if self.client_gone(self.state.args.slow_delay):
                        self.close_connection = True
                        break
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    sent += len(body[i:i + step])
            else:
                self.wfile.write(body)
                sent = len(body)
        except OSError:
            self.close_connection = True
        self.finish_log(status, sent)

    def handle_request(self, body):
        self.state = self.server.state
        self.with_body = body
        self.req_path = self.path.split("?", 1)[0].split("#", 1)[0]
        p = self.req_path
        args = self.state.args
        if p.startswith("/redirect/"):
            self.simple(302, "moved", {"Location": "/" + p[len("/redirect/"):]})
        elif p.startswith("/norange/"):
            self.serve_file(p[len("/norange/"):], honour_range=False)
        elif p.startswith("/slow/"):
            self.serve_file(p[len("/slow/"):], mode="slow")
        elif p.startswith("/truncate/"):
            n = self.state.count(p)
            self.serve_file(p[len("/truncate/"):],
                            mode="truncate" if n <= args.truncate_first else "plain")
        elif p.startswith("/status/"):
            rest = p[len("/status/"):]
            code_s, _, rel = rest.partition("/")
            try:
                code = int(code_s)
            except ValueError:
                code = 400
            if code < 200 or code > 599:
                code = 400
            n = self.state.count(p)
            if rel and n > args.fail_first:
                self.serve_file(rel)
            else:
                self.simple(code, "status %d" % code)
        else:
            self.serve_file(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--fail-first", type=int, default=2)
    ap.add_argument("--truncate-first", type=int, default=1)
    ap.add_argument("--slow-delay", type=float, default=0.5)
    ap.add_argument("--slow-chunk", type=int, default=64)
    args = ap.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(args)

    def stop(*_):
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(args.max_seconds, stop)
    timer.daemon = True
    timer.start()

    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
