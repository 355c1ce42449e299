"""A latency like AWS's in front of the emulator: a loopback HTTP proxy that holds each
request for a configurable delay (with jitter) before passing it on, so that the
benchmark measures round trips as they cost on AWS rather than the emulator's CPU.

`python -m bench.latency --target URL --port P --delay-ms 8 --jitter-ms 2` serves until
SIGTERM; `latency_proxy(...)` runs one for the length of a `with` block.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import aiohttp
from aiohttp import web

from order_processor.emulator import free_port

# Headers of one hop, not to be passed on (RFC 9110 7.6.1), and those the proxy recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
    }
)


def build_app(target: str, delay_ms: float, jitter_ms: float) -> web.Application:
    session: aiohttp.ClientSession | None = None

    async def start(_: web.Application) -> None:
        nonlocal session
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def stop(_: web.Application) -> None:
        if session is not None:
            await session.close()

    async def forward(request: web.Request) -> web.Response:
        assert session is not None
        body = await request.read()
        delay = delay_ms + random.uniform(-jitter_ms, jitter_ms)
        await asyncio.sleep(max(0.0, delay) / 1000)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with session.request(
            request.method, target + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, body=payload, headers=kept)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency")
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=8.0)
    parser.add_argument("--jitter-ms", type=float, default=2.0)
    args = parser.parse_args()
    app = build_app(args.target.rstrip("/"), args.delay_ms, args.jitter_ms)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, handle_signals=True)
    return 0


@contextlib.contextmanager
def latency_proxy(target: str, delay_ms: float, jitter_ms: float) -> Iterator[str]:
    """A proxy process in front of `target`; yields its endpoint."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.latency",
            "--target",
            target,
            "--port",
            str(port),
            "--delay-ms",
            str(delay_ms),
            "--jitter-ms",
            str(jitter_ms),
        ]
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(endpoint + "/_ministack/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the latency proxy did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
