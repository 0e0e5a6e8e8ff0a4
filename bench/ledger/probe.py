"""One client, one process: wall time, Python CPU and statements of one authorise + capture.

Uses the customers and tool ``bench/ledger/run.py`` prepares (run it once first).
Run by hand, never in the test suite:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mcpb_bench \\
        .venv/bin/python bench/ledger/probe.py --calls 1000 [--profile]
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
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    from billing.models import Tool
    from billing.rows import queries_sent
    from billing.services.calls import call_authorize, call_capture
    from customers.models import Customer

    tool = Tool.objects.get(name="bench_tool")
    customer = Customer.objects.select_related("plan").get(email="bench-1@example.com")

    def one() -> None:
        call_capture(hold=call_authorize(customer=customer, tool=tool))

    for _ in range(200):  # warm connections and caches
        one()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.calls):
        one()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{connection.vendor}, {args.calls} calls, one client")
    print(f"wall {1000 * wall / args.calls:.2f} ms/call, Python CPU {1000 * cpu / args.calls:.2f}")
    if connection.vendor == "postgresql":
        with queries_sent() as queries:
            one()
        print(f"{len(queries)} round trips:")
        for query in queries:
            print("  ", query[:110])
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.calls):
            one()
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(
            os.environ.get("PROFILE_SORT", "cumulative")
        ).print_stats(40)
        print(out.getvalue())


if __name__ == "__main__":
    main()
