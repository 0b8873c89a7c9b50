#!/usr/bin/env python3
"""HTTP/1.1 keep-alive sinks that answer 200 after a fixed delay without burning CPU.

  delay_sink.py --endpoints N --delay-ms D --urls-file FILE [--verify-secret S]

Listens on N free ports of 127.0.0.1 (N different webhook destinations: the plugin keys
destinations by scheme://host:port), one asyncio event loop for all of them: a request's answer is
a timer (loop.call_later), not a sleeping thread, so 200 endpoints x 8 connections cost no threads.
Writes one URL per line to FILE once every port listens. With --verify-secret, checks each
request's X-Signature-256 (sha256=<hex HMAC-SHA256(secret, body)>) and counts mismatches.
On SIGTERM/SIGINT prints one JSON line: requests, bad_signatures, connections (accepted),
max_open (connections open at once), then exits. A bench sink, not a server: it reads a request
line, headers and a Content-Length body, nothing else (no chunked bodies).
"""
import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import sys

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
stats = {"requests": 0, "bad_signatures": 0, "connections": 0, "max_open": 0}
open_now = 0


class Sink(asyncio.Protocol):
    def __init__(self, delay_s, secret):
        self.delay_s = delay_s
        self.secret = secret
        self.buf = b""
        self.waiting = 0  # requests read, answer not yet written (answered in order)
        self.transport = None

    def connection_made(self, transport):
        global open_now
        self.transport = transport
        stats["connections"] += 1
        open_now += 1
        stats["max_open"] = max(stats["max_open"], open_now)

    def connection_lost(self, exc):
        global open_now
        open_now -= 1
        self.transport = None

    def data_received(self, data):
        self.buf += data
        loop = asyncio.get_running_loop()
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length, sig = 0, None
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "x-signature-256":
                    sig = value.strip()
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            stats["requests"] += 1
            if self.secret is not None:
                want = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
                if sig != want:
                    stats["bad_signatures"] += 1
            self.waiting += 1
            # Same delay for every request of a connection: the timers fire in order.
            loop.call_later(self.delay_s, self.answer)

    def answer(self):
        self.waiting -= 1
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(OK)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--delay-ms", type=float, default=20)
    ap.add_argument("--urls-file", required=True)
    ap.add_argument("--verify-secret")
    a = ap.parse_args()
    loop = asyncio.get_running_loop()
    secret = a.verify_secret.encode() if a.verify_secret is not None else None
    servers = []
    for _ in range(a.endpoints):
        servers.append(await loop.create_server(lambda: Sink(a.delay_ms / 1000, secret),
                                                "127.0.0.1", 0, backlog=1024))
    with open(a.urls_file + ".tmp", "w") as f:
        for s in servers:
            f.write(f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/hook\n")
    os.replace(a.urls_file + ".tmp", a.urls_file)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
