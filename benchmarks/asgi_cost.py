"""CPU per ``/recommend`` request in process, no sockets: the BentoML service's ASGI app (with
and without ``bind_endpoints``) against the bare FastAPI reference app, on the same bodies,
in alternating rounds in one process.

    .venv/bin/python benchmarks/asgi_cost.py [--bundle TAG] [--rounds 60] [--batch 200]

Each round sends ``--batch`` requests straight to one app's ASGI callable and records CPU
time (``time.process_time``) per request; the figure per variant is its best round, which
is the least disturbed by other work on a shared machine. What separates the variants is
framework work per request, the part ``make bench-serve``'s peak-throughput ratio measures
over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_serve import recommend_bodies  # noqa: E402


async def post(app, body: bytes) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/recommend",
             "raw_path": b"/recommend", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)  # no disconnect while the response is written
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    messages: list[dict] = []

    async def send(message: dict) -> None:
        messages.append(message)

    await app(scope, receive, send)
    if messages[0]["status"] != 200:
        raise RuntimeError(f"/recommend answered {messages[0]['status']}: {messages[1:]}")


async def start(app) -> None:
    """Run the app's lifespan startup (loads the bundle)."""
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get,
            outbox.put))
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {message}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default=None, help="bundle tag [default: growthloop:latest]")
    ap.add_argument("--rounds", type=int, default=60, help="per variant")
    ap.add_argument("--batch", type=int, default=200, help="requests per round")
    args = ap.parse_args()
    if args.bundle:
        os.environ["GROWTH_BUNDLE"] = args.bundle

    from _bentoml_sdk.method import APIMethod
    from _bentoml_sdk.service import get_current_service

    from serving.reference_app import app as reference
    from serving.service import BUNDLE, GrowthService

    bento = GrowthService.to_asgi()
    await start(bento)
    await start(reference)
    service = get_current_service()
    endpoints = {name: attr for name, attr in vars(type(service)).items()
                 if isinstance(attr, APIMethod)}
    bound = {name: service.__dict__[name] for name in endpoints}

    from serving.bundle import TWO_TOWER, open_bundle

    folder = open_bundle(BUNDLE).path / TWO_TOWER
    bodies = [json.dumps(b).encode() for b in recommend_bodies(folder, args.batch, seed=0)]

    def bentoml_unbound() -> None:
        for name in endpoints:
            service.__dict__.pop(name, None)

    def bentoml_bound() -> None:
        service.__dict__.update(bound)

    variants = {"bare FastAPI (reference_app)": (reference, None),
                "BentoML, endpoints bound once (as served)": (bento, bentoml_bound),
                "BentoML, descriptor per request (no bind_endpoints)": (bento, bentoml_unbound)}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(3):  # warm-up
        for app, setup in variants.values():
            if setup:
                setup()
            for body in bodies:
                await post(app, body)
    for _ in range(args.rounds):
        for name, (app, setup) in variants.items():
            if setup:
                setup()
            t = time.process_time()
            for body in bodies:
                await post(app, body)
            best[name] = min(best[name], (time.process_time() - t) / len(bodies) * 1e6)
    bentoml_bound()
    ref = best["bare FastAPI (reference_app)"]
    print(f"bundle {BUNDLE}; best of {args.rounds} rounds x {args.batch} requests, "
          f"CPU us per request")
    for name, us in best.items():
        print(f"  {name:55s} {us:7.1f} us   bare/this {ref / us:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
