"""Bare SDK server vs the billed /mcp: calls/s, p50 and p99 of the same tool, in one run.

Both servers are uvicorn processes started with the same settings; the billed
one authenticates an API key, rate limits, authorises, runs ``calculate`` and
captures the charge on PostgreSQL. Concurrent clients send the same
``tools/call`` (the 2026-07-28 single-exchange wire the SDK client speaks) to
each server in alternating rounds. The clients run in this process on the same
machine: their CPU per call is reported beside the servers' and the database's,
because where they share the cores they bound both servers' calls/s and so the
ratio. Run by hand, never in the test suite:

    createdb -h 127.0.0.1 -U postgres mcpb_bench   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mcpb_bench \\
        .venv/bin/python bench/gateway/run.py --seconds 10 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.cpu import cpu_by_process, cpu_since, database_pids  # noqa: E402
from bench.database import tidy_database  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mcpb_bench")

MODERN = "2026-07-28"
BENCH_EMAIL = "bench-gateway@example.com"
ARGUMENTS = {"expression": "(2 + 3) * sqrt(16) / 2^3"}


def quiet_logs() -> None:
    """The bench's own logging would cost the clients time on every call."""
    import logging

    for name in ("httpx", "httpcore", "mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)


def prepare_database() -> str:
    """Migrate, sync the tools, and give the bench customer credits; returns its API key."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True
    )
    import django

    django.setup()
    from billing.models import BillingModel, Plan
    from billing.selectors import credit_balance
    from billing.services.ledger import credit_grant
    from customers.models import Customer
    from customers.services import api_key_create, customer_create
    from mcpbilling.gateway.registry import tools_sync_python

    tools_sync_python()
    plan, _ = Plan.objects.update_or_create(
        slug="bench-gateway",
        defaults={
            "name": "Bench",
            "billing_model": BillingModel.CREDITS,
            "rate_limit_per_minute": 10_000_000,
        },
    )
    owner = Customer.objects.filter(email=BENCH_EMAIL).first() or customer_create(
        email=BENCH_EMAIL, plan=plan
    )
    # Topped up only when low: a grant per run would leave the account with one open
    # lot per run, and each debit walks the open lots.
    if (credit_balance(customer_id=owner.pk, plan=plan) or 0) < 1_000_000:
        credit_grant(
            customer_id=owner.pk,
            credits=10_000_000,
            idempotency_key=f"bench-gateway:{time.time_ns()}",
        )
    return api_key_create(customer=owner, name="bench").secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(app: str, port: int, workers: int) -> subprocess.Popen:
    """``app`` under uvicorn; the same settings for both servers."""
    command = [
        sys.executable, "-m", "uvicorn", app,
        "--app-dir", str(ROOT),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers),
        "--lifespan", "on", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    # DEBUG off as in production: with it on, Django keeps every query it runs.
    environment = {
        **os.environ,
        "DEBUG": "0",
        "MCP_SYNC_TOOLS_ON_STARTUP": "0",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(command, cwd=ROOT, env=environment)


def wait_ready(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def request(call_id: int) -> tuple[dict, dict]:
    body = {
        "jsonrpc": "2.0",
        "id": call_id,
        "method": "tools/call",
        "params": {
            "name": "calculate",
            "arguments": ARGUMENTS,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "calculate",
    }
    return body, headers


async def load(url: str, token: str | None, *, concurrency: int, seconds: float) -> dict:
    """``concurrency`` clients calling back to back for ``seconds``; latencies in ms."""
    latencies: list[float] = []
    failures = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=auth) as client:

        async def worker(worker_id: int) -> None:
            nonlocal failures
            call_id = worker_id * 10_000_000
            while time.perf_counter() < stop_at:
                call_id += 1
                body, headers = request(call_id)
                started = time.perf_counter()
                response = await client.post(url, json=body, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                result = response.json().get("result") if response.status_code == 200 else None
                if result is None or result.get("isError"):
                    failures += 1
                else:
                    latencies.append(elapsed)

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "failures": failures, "seconds": wall}


def summary(runs: list[dict]) -> dict:
    latencies = sorted(latency for run in runs for latency in run["latencies"])
    seconds = sum(run["seconds"] for run in runs)
    return {
        "calls": len(latencies),
        "failures": sum(run["failures"] for run in runs),
        "calls_per_s": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


def server_pids(server: subprocess.Popen) -> list[int]:
    """uvicorn's process and its workers (with --workers > 1 they are its children)."""
    children = subprocess.run(
        ["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [server.pid, *map(int, children)]


def transactions() -> int:
    """Committed transactions of the bench database so far (for transactions per call)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return cursor.fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="per round and server")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, both servers")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()

    token = prepare_database()
    tidy_database()
    quiet_logs()
    ports = {"bare": free_port(), "billed": free_port()}
    servers = [
        start("bench.gateway.bare:app", ports["bare"], options.workers),
        start("bench.gateway.billed:app", ports["billed"], options.workers),
    ]
    try:
        for port in ports.values():
            wait_ready(port)
        tokens = {"bare": None, "billed": token}
        runs: dict[str, list[dict]] = {"bare": [], "billed": []}
        processes = dict(zip(runs, servers, strict=True))
        cpu = {name: {"server": 0.0, "database": 0.0, "client": 0.0} for name in runs}
        billed_transactions = 0
        for name in runs:  # warm up: connections, caches, the tool catalog
            asyncio.run(load(f"http://127.0.0.1:{ports[name]}/mcp", tokens[name],
                             concurrency=options.concurrency, seconds=2))  # fmt: skip
        for _ in range(options.rounds):
            for name in runs:
                before = transactions()
                server = server_pids(processes[name])
                server_before = cpu_by_process(server)
                database_before = cpu_by_process(database_pids())
                client_before = time.process_time()  # this process is the clients
                runs[name].append(
                    asyncio.run(
                        load(
                            f"http://127.0.0.1:{ports[name]}/mcp",
                            tokens[name],
                            concurrency=options.concurrency,
                            seconds=options.seconds,
                        )
                    )
                )
                cpu[name]["server"] += cpu_since(server_before, server)
                cpu[name]["database"] += cpu_since(database_before, database_pids())
                cpu[name]["client"] += time.process_time() - client_before
                if name == "billed":
                    billed_transactions += transactions() - before
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)

    bare, billed = summary(runs["bare"]), summary(runs["billed"])
    for row, name in ((bare, "bare"), (billed, "billed")):
        calls = max(row["calls"] + row["failures"], 1)
        row["server_cpu_ms"] = 1000 * cpu[name]["server"] / calls
        row["database_cpu_ms"] = 1000 * cpu[name]["database"] / calls
        row["client_cpu_ms"] = 1000 * cpu[name]["client"] / calls
    figures = {
        "machine": (
            f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        ),
        "settings": vars(options),
        "bare": bare,
        "billed": billed,
        "throughput_ratio": billed["calls_per_s"] / bare["calls_per_s"],
        "p50_added_ms": billed["p50_ms"] - bare["p50_ms"],
        "db_transactions_per_billed_call": billed_transactions / max(billed["calls"], 1),
    }
    if options.json:
        print(json.dumps(figures, indent=2))
        return
    print(figures["machine"])
    print(f"settings: {figures['settings']}")
    print(
        f"{'':8} {'calls':>8} {'fail':>5} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server CPU ms/call':>19} {'DB CPU ms/call':>15} {'client CPU ms/call':>19}"
    )
    for name, row in (("bare", bare), ("billed", billed)):
        print(
            f"{name:8} {row['calls']:>8} {row['failures']:>5} {row['calls_per_s']:>9.1f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['server_cpu_ms']:>19.2f} {row['database_cpu_ms']:>15.2f} "
            f"{row['client_cpu_ms']:>19.2f}"
        )
    print(
        f"billed/bare throughput {figures['throughput_ratio']:.2f}; "
        f"p50 added {figures['p50_added_ms']:.2f} ms; "
        f"{figures['db_transactions_per_billed_call']:.1f} DB transactions per billed call"
    )


if __name__ == "__main__":
    main()
