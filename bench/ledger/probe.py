"""One client, one process: wall time, Python CPU and statements of one authorise + capture.

With ``--loop`` the two phases run as the gateway runs them on PostgreSQL: on an
event loop, through ``run_phase`` and the loop's own session (ADR 0009).

Uses the customers and tool ``bench/ledger/run.py`` prepares (run it once first).
Run by hand, never in the test suite:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mcpb_bench \\
        .venv/bin/python bench/ledger/probe.py --calls 1000 [--loop [--gap-ms 4]] [--profile]

``--gap-ms`` waits that long on the loop after each phase, as the tool's run
and the client's turn do in the server: the CPU a call costs grows when the
processes sleep between phases (caches go cold), which a tight loop hides.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mcpb_bench")
os.environ.setdefault("DEBUG", "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile top list")
    parser.add_argument("--loop", action="store_true", help="the phases on an event loop")
    parser.add_argument(
        "--gap-ms", type=float, default=0, help="with --loop: idle time after each phase"
    )
    args = parser.parse_args()
    if args.gap_ms and not args.loop:
        parser.error("--gap-ms needs --loop")

    import django

    django.setup()
    from django.db import connection

    from bench.cpu import cpu_by_process, cpu_since, database_pids
    from bench.database import tidy_database
    from billing.models import Tool
    from billing.rows import queries_sent
    from billing.services.calls import call_authorize, call_capture
    from customers.models import Customer

    tool = Tool.objects.get(name="bench_tool")
    customer = Customer.objects.select_related("plan").get(email="bench-1@example.com")

    def calls(count: int) -> None:
        for _ in range(count):
            call_capture(hold=call_authorize(customer=customer, tool=tool))

    if args.loop:
        calls = _on_loop(customer, tool, gap_s=args.gap_ms / 1000)

    tidy_database()
    calls(200)  # warm connections and caches

    def postgres() -> list[int]:  # read at both ends: a session may close meanwhile
        return database_pids() if connection.vendor == "postgresql" else []

    database = cpu_by_process(postgres())
    wall, cpu = time.perf_counter(), time.process_time()
    calls(args.calls)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    database = cpu_since(database, postgres())
    path = "phases on an event loop" if args.loop else "phases on this thread"
    if args.gap_ms:
        path += f", {args.gap_ms:g} ms idle after each phase"
    print(f"{connection.vendor}, {args.calls} calls, one client, {path}")
    print(
        f"wall {1000 * wall / args.calls:.2f} ms/call, Python CPU {1000 * cpu / args.calls:.2f}"
        + (f", PostgreSQL CPU {1000 * database / args.calls:.2f}" if database else "")
    )
    if connection.vendor == "postgresql" and not args.loop:
        with queries_sent() as queries:
            calls(1)
        print(f"{len(queries)} round trips:")
        for query in queries:
            print("  ", query[:110])
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        calls(args.calls)
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(
            os.environ.get("PROFILE_SORT", "cumulative")
        ).print_stats(40)
        print(out.getvalue())


def _on_loop(customer, tool, *, gap_s: float = 0):
    """``calls(count)`` running each phase with ``run_phase`` on one event loop,
    idle for ``gap_s`` after each."""
    import asyncio

    from billing.services.calls import call_authorize, call_capture
    from mcpbilling.gateway.db import LoopDatabase, run_phase

    loop = asyncio.new_event_loop()
    database = LoopDatabase(size=1)

    async def many(count: int) -> None:
        for _ in range(count):
            hold = await run_phase(database, call_authorize, customer=customer, tool=tool)
            if gap_s:
                await asyncio.sleep(gap_s)
            await run_phase(database, call_capture, hold=hold)
            if gap_s:
                await asyncio.sleep(gap_s)

    def calls(count: int) -> None:
        went = database.phases_on_thread
        loop.run_until_complete(many(count))
        if count > 1 and database.phases_on_thread - went > 1:  # the first reads the price
            raise RuntimeError(f"{database.phases_on_thread - went} phases went to a thread")

    return calls


if __name__ == "__main__":
    main()
