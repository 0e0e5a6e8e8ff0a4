"""The bare and the billed ASGI apps driven in this process, without uvicorn or HTTP.

What each app costs in Python per call, apart from the HTTP server, the
client and the kernel: concurrent callers hand the same ``tools/call`` to
the app's ASGI interface directly, on uvloop as uvicorn runs it, and the
process's CPU per call is reported for each app (PostgreSQL's apart). With
``--profile`` the billed app runs under cProfile and the functions with the
most cumulative time are printed. Run by hand, never in the test suite:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mcpb_bench \\
        .venv/bin/python bench/gateway/inprocess.py --calls 4000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mcpb_bench")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("MCP_SYNC_TOOLS_ON_STARTUP", "0")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.cpu import cpu_by_process, cpu_since, database_pids  # noqa: E402
from bench.database import tidy_database  # noqa: E402
from bench.gateway.run import prepare_database, request  # noqa: E402


async def lifespan(app) -> tuple[asyncio.Queue, asyncio.Queue, asyncio.Task]:
    """Start ``app``'s lifespan; returns its queues and task, to shut it down later."""
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                     inbox.get, outbox.put))  # fmt: skip
    await inbox.put({"type": "lifespan.startup"})
    reply = await outbox.get()
    assert reply["type"] == "lifespan.startup.complete", reply
    return inbox, outbox, task


async def shutdown(inbox: asyncio.Queue, outbox: asyncio.Queue, task: asyncio.Task) -> None:
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await task


async def call(app, token: str | None, call_id: int) -> bool:
    """One ``tools/call`` through ``app``'s ASGI interface; True when it succeeded."""
    body, headers = request(call_id)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    raw = json.dumps(body).encode()
    headers = {**headers, "Host": "127.0.0.1:8000", "Content-Length": str(len(raw))}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    parts: list[bytes] = []
    status = 0

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # as a server does until the client goes
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    if status != 200:
        return False
    result = json.loads(b"".join(parts)).get("result") or {}
    return not result.get("isError", True)


async def drive(app, token: str | None, *, calls: int, concurrency: int) -> int:
    """``calls`` calls from ``concurrency`` callers; returns how many failed."""
    failures = 0
    remaining = calls

    async def caller(number: int) -> None:
        nonlocal failures, remaining
        call_id = number * 10_000_000
        while remaining > 0:
            remaining -= 1
            call_id += 1
            if not await call(app, token, call_id):
                failures += 1

    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    return failures


class GcClock:
    """CPU time spent in the garbage collector, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="per app and block")
    parser.add_argument("--blocks", type=int, default=3, help="alternating blocks per app")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="cProfile the billed app")
    parser.add_argument("--only", choices=["bare", "billed"], help="drive one of the apps")
    options = parser.parse_args()

    token = prepare_database()
    tidy_database()
    import uvloop

    from bench.gateway import bare, billed

    apps = {"bare": (bare.app, None), "billed": (billed.app, token)}
    if options.only:
        apps = {options.only: apps[options.only]}
    profile = cProfile.Profile() if options.profile else None
    collector = GcClock()

    async def measure() -> dict[str, dict[str, float]]:
        running = {name: await lifespan(app) for name, (app, _) in apps.items()}
        cpu = {
            name: {"calls": 0, "failures": 0, "python": 0.0, "database": 0.0, "gc": 0.0, "gcs": 0}
            for name in apps
        }
        for app, key in apps.values():  # warm up
            await drive(app, key, calls=200, concurrency=options.concurrency)
        for _ in range(options.blocks):
            for name, (app, key) in apps.items():
                database_before = cpu_by_process(await asyncio.to_thread(database_pids))
                python_before = time.process_time()
                gc_before = (collector.seconds, collector.collections)
                if profile is not None and name == "billed":
                    profile.enable()
                failures = await drive(
                    app, key, calls=options.calls, concurrency=options.concurrency
                )
                if profile is not None:
                    profile.disable()
                cpu[name]["python"] += time.process_time() - python_before
                cpu[name]["gc"] += collector.seconds - gc_before[0]
                cpu[name]["gcs"] += collector.collections - gc_before[1]
                pids = await asyncio.to_thread(database_pids)
                cpu[name]["database"] += cpu_since(database_before, pids)
                cpu[name]["calls"] += options.calls
                cpu[name]["failures"] += failures
        for name in apps:
            await shutdown(*running[name])
        return cpu

    cpu = uvloop.run(measure())
    print(
        f"{'':8} {'calls':>7} {'fail':>5} {'Python CPU ms/call':>19} {'DB CPU ms/call':>15} "
        f"{'of it GC ms/call':>17} {'GCs/1000 calls':>15}"
    )
    for name, row in cpu.items():
        print(
            f"{name:8} {row['calls']:>7} {row['failures']:>5} "
            f"{1000 * row['python'] / row['calls']:>19.3f} "
            f"{1000 * row['database'] / row['calls']:>15.3f} "
            f"{1000 * row['gc'] / row['calls']:>17.3f} {1000 * row['gcs'] / row['calls']:>15.1f}"
        )
    if profile is not None:
        pstats.Stats(profile).sort_stats(os.environ.get("SORT", "cumulative")).print_stats(
            int(os.environ.get("ROWS", "60"))
        )


if __name__ == "__main__":
    main()
