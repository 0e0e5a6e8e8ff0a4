"""Captures per second of the charge engine on PostgreSQL (authorise + capture per call).

Two scenarios: calls spread over many customers, and one customer hammered by
many concurrent clients. Clients are threads in several processes (the GIL
would cap one process). Run by hand, never in the test suite:

    createdb -h 127.0.0.1 -U postgres mcpb_bench   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mcpb_bench \\
        .venv/bin/python bench/ledger/run.py --seconds 20
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mcpb_bench")

BENCH_PLAN = "bench-credits"
BENCH_TOOL = "bench_tool"
SINGLE_EMAIL = "bench-single@example.com"


def setup_django():
    import django

    django.setup()


def prepare(customers: int) -> None:
    """Migrate and create the plan, the tool and the customers, each with ample credits."""
    setup_django()
    from django.core.management import call_command

    from billing.models import BillingModel, Plan, Tool
    from billing.services.ledger import credit_grant
    from billing.services.pricing import tool_price_active, tool_price_set
    from customers.models import Customer
    from customers.services import customer_create

    call_command("migrate", verbosity=0)
    plan, _ = Plan.objects.get_or_create(
        slug=BENCH_PLAN, defaults={"name": "Bench", "billing_model": BillingModel.CREDITS}
    )
    tool, _ = Tool.objects.get_or_create(name=BENCH_TOOL)
    if tool_price_active(tool=tool) is None:
        tool_price_set(tool=tool, unit_amount_microcents=1_000_000, credits=1)
    emails = [f"bench-{i}@example.com" for i in range(customers)] + [SINGLE_EMAIL]
    existing = set(Customer.objects.filter(email__in=emails).values_list("email", flat=True))
    for email in emails:
        if email not in existing:
            customer_create(email=email, plan=plan)
    for customer in Customer.objects.filter(email__in=emails):
        credit_grant(
            customer_id=customer.pk,
            credits=10**12,
            idempotency_key=f"bench:{customer.pk}",
            description="bench credits",
        )


def client_process(scenario, customers, threads, seconds, start_at, results):
    """One process of ``threads`` clients, each calling authorise + capture until the deadline."""
    setup_django()
    from django.db import connections

    from billing.models import Tool
    from billing.services.calls import call_authorize, call_capture
    from customers.models import Customer

    tool = Tool.objects.get(name=BENCH_TOOL)
    if scenario == "single":
        pool = list(Customer.objects.filter(email=SINGLE_EMAIL).select_related("plan"))
    else:
        emails = [f"bench-{i}@example.com" for i in range(customers)]
        pool = list(Customer.objects.filter(email__in=emails).select_related("plan"))
    connections.close_all()
    latencies: list[float] = []
    lock = threading.Lock()

    def client():
        mine = []
        rng = random.Random()
        while time.time() < start_at:
            time.sleep(0.001)
        deadline = start_at + seconds
        while time.time() < deadline:
            began = time.perf_counter()
            hold = call_authorize(customer=rng.choice(pool), tool=tool)
            call_capture(hold=hold)
            mine.append(time.perf_counter() - began)
        connections.close_all()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(latencies)


def run(scenario: str, customers: int, processes: int, threads: int, seconds: float) -> dict:
    results = mp.Queue()
    start_at = time.time() + 3  # every process set up before the clock starts
    procs = [
        mp.Process(
            target=client_process,
            args=(scenario, customers, threads, seconds, start_at, results),
        )
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    latencies = []
    for _ in procs:
        latencies.extend(results.get())
    for proc in procs:
        proc.join()
    latencies.sort()
    return {
        "scenario": scenario,
        "clients": processes * threads,
        "captures": len(latencies),
        "per_s": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--spread-threads", type=int, default=4, help="threads per process")
    parser.add_argument("--single-clients", type=int, default=50)
    args = parser.parse_args()

    prepare(args.customers)
    from django.db import connection

    from bench.database import tidy_database

    tidy_database()

    connection.close()
    rows = [
        run("spread", args.customers, args.processes, args.spread_threads, args.seconds),
        run(
            "single",
            1,
            args.processes,
            max(1, args.single_clients // args.processes),
            args.seconds,
        ),
    ]
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| scenario | clients | captures | captures/s | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['scenario']} | {row['clients']} | {row['captures']} | {row['per_s']:.0f} "
            f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
