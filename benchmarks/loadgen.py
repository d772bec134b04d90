"""HTTP/1.1 load generator (asyncio streams, keep-alive, loopback): the separate process that
drives the service in ``bench_serve.py``.

    python benchmarks/loadgen.py --url http://127.0.0.1:3000/recommend --bodies B.jsonl \\
        --mode open --rate 150 --duration 60          # fixed arrival rate (open loop)
    python benchmarks/loadgen.py ... --mode closed --concurrency 16 --duration 20   # peak

Open loop: request i is due at ``start + i / rate`` whatever happened before; its latency
counts from that due time, so a stalled server is charged for the requests queued behind it
(no coordinated omission). Closed loop: ``concurrency`` connections send back to back.
Bodies are JSON lines, used in order and cycled. Prints one JSON line: count, errors
(non-2xx or broken connection), throughput, latency percentiles in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import numpy as np

from serving.guard import LOOPBACK_NAMES

MAX_CONNECTIONS = 64  # open loop: connections opened as needed, at most this many
# A connection idle longer than this is closed, not reused: servers drop idle keep-alive
# connections (uvicorn after 5 s) and a request sent on one would fail through no fault of
# the server (what HTTP client pools do too).
MAX_IDLE_S = 2.0


class Connection:
    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = time.perf_counter()

    async def post(self, body: bytes) -> int:
        """Send one request, read the whole response; returns the status code."""
        if self.writer is not None and time.perf_counter() - self.last_used > MAX_IDLE_S:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (self.path.encode(),
                                                             self.host.encode(), len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(length)
        self.last_used = time.perf_counter()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _send(conn: Connection, body: bytes, due: float, latencies: list[float],
                errors: list[str]) -> None:
    try:
        status = await conn.post(body)
        if not 200 <= status < 300:
            errors.append(f"HTTP {status}")
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        errors.append(type(exc).__name__)
        conn.close()
    latencies.append(time.perf_counter() - due)


async def open_loop(url: str, bodies: list[bytes], rate: float, duration: float) -> dict:
    parts = urlsplit(url)
    idle: list[Connection] = []
    latencies: list[float] = []
    errors: list[str] = []
    tasks: set[asyncio.Task] = set()
    n = int(rate * duration)
    start = time.perf_counter() + 0.05
    opened = 0

    async def one(i: int, due: float) -> None:
        nonlocal opened
        while not idle and opened >= MAX_CONNECTIONS:
            await asyncio.sleep(0.0005)
        if idle:
            conn = idle.pop()
        else:
            opened += 1
            conn = Connection(parts.hostname, parts.port, parts.path)
        await _send(conn, bodies[i % len(bodies)], due, latencies, errors)
        idle.append(conn)

    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for conn in idle:
        conn.close()
    return summary(latencies, errors, elapsed, extra={"rate": rate, "connections_opened": opened})


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, duration: float,
                      max_requests: int | None) -> dict:
    parts = urlsplit(url)
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(max_requests or 10**12))
    start = time.perf_counter()
    stop = start + duration

    async def worker() -> None:
        conn = Connection(parts.hostname, parts.port, parts.path)
        for i in counter:
            if time.perf_counter() >= stop:
                break
            await _send(conn, bodies[i % len(bodies)], time.perf_counter(), latencies, errors)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(latencies, errors, time.perf_counter() - start,
                   extra={"concurrency": concurrency})


def summary(latencies: list[float], errors: list[str], elapsed: float, extra: dict) -> dict:
    ms = np.asarray(latencies) * 1000
    kinds: dict[str, int] = {}
    for e in errors:
        kinds[e] = kinds.get(e, 0) + 1
    return {**extra, "count": len(ms), "errors": len(errors), "error_kinds": kinds,
            "seconds": round(elapsed, 2), "throughput": round(len(ms) / elapsed, 1),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 2) if len(ms) else None
               for q in (50, 90, 99)},
            "max_ms": round(float(ms.max()), 2) if len(ms) else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--bodies", required=True, help="JSON lines, one request body each")
    ap.add_argument("--mode", choices=("open", "closed"), required=True)
    ap.add_argument("--rate", type=float, default=150.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-requests", type=int, default=None)
    args = ap.parse_args()
    if urlsplit(args.url).hostname not in LOOPBACK_NAMES:
        raise SystemExit("loadgen drives loopback addresses only")
    with open(args.bodies, "rb") as f:
        bodies = [line.strip() for line in f if line.strip()]
    if args.mode == "open":
        result = asyncio.run(open_loop(args.url, bodies, args.rate, args.duration))
    else:
        result = asyncio.run(closed_loop(args.url, bodies, args.concurrency, args.duration,
                                         args.max_requests))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
