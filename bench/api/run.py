"""Latency of the REST API's usage list over HTTP, on PostgreSQL with 1,000,000 usage rows.

GET /api/v1/usage/ unfiltered and with ?customer=, on the first page and on a
page deep in the cursor (90 % of the way down), one request at a time against
uvicorn: p50 and p99 per case. The cursor holds the last row's position, so a
deep page should cost what the first does (docs/decisions/0020). Run by hand,
never in the test suite:

    createdb -h 127.0.0.1 -U postgres mcpb_bench_api   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mcpb_bench_api \\
        .venv/bin/python bench/api/run.py --rows 1000000 --requests 300

The rows are written once (INSERT ... SELECT generate_series, about a minute)
and kept for later runs; --reload writes them again.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mcpb_bench_api")

CUSTOMERS = 100
PERIOD = timedelta(days=30)  # the rows' creation times spread over this span


def prepare(rows: int, reload: bool) -> tuple[int, str]:
    """The bench rows (written when missing) and an operator token; returns (customer, token)."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from billing.models import BillingModel, Hold, Plan, Tool, UsageRecord
    from billing.services.pricing import tool_price_set
    from customers.models import Customer
    from customers.services import customer_create
    from mcpbilling.api.operators import operator_enrol

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    operator_enrol(user=user)
    token = Token.objects.get_or_create(user=user)[0].key
    plan, _ = Plan.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "billing_model": BillingModel.CREDITS}
    )
    tool, _ = Tool.objects.get_or_create(name="bench_tool")
    if not tool.prices.exists():
        tool_price_set(tool=tool, unit_amount_microcents=1_000_000, credits=1)
    price = tool.prices.get()
    owners = list(Customer.objects.filter(email__endswith="@bench.example").order_by("pk"))
    for n in range(len(owners), CUSTOMERS):
        owners.append(customer_create(email=f"c{n}@bench.example", plan=plan))
    if reload or UsageRecord.objects.count() != rows:
        print(f"writing {rows:,} usage rows and their holds...", flush=True)
        started = time.monotonic()
        now = timezone.now()
        ids = [owner.pk for owner in owners]
        hold, usage = Hold._meta.db_table, UsageRecord._meta.db_table
        step_us = int(PERIOD.total_seconds() * 1_000_000 / rows)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {usage}, {hold} CASCADE")
            # Row g: customer ids[g % 100], created g steps before now (newest is g = 1).
            common = (
                "FROM generate_series(1, %(rows)s) AS g, "
                "LATERAL (SELECT (%(ids)s::bigint[])[1 + g %% %(n)s] AS customer_id, "
                "%(now)s::timestamptz - make_interval(secs => g::bigint * %(step)s / 1e6) "
                "AS at) AS r"
            )
            params = {
                "rows": rows,
                "ids": ids,
                "n": len(ids),
                "now": now,
                "step": step_us,
                "tool": tool.pk,
                "price": price.pk,
                "plan": plan.pk,
            }
            cursor.execute(
                f"INSERT INTO {hold} (id, customer_id, tool_id, price_id, plan_id, status, "
                "path, credits, amount_microcents, currency, exposure_microcents, "
                "period_start, counted_tool_period, counted_customer_budget, "
                "counted_key_budget, spare, created_at, expires_at, settled_at) "
                "SELECT g, customer_id, %(tool)s, %(price)s, %(plan)s, 'captured', 'credits', 1, "
                "1000000, 'usd', 0, at, false, false, false, false, at, at, at " + common,
                params,
            )
            cursor.execute(
                f"INSERT INTO {usage} (id, hold_id, customer_id, tool_id, price_id, plan_id, "
                "path, outcome, charged, amount_microcents, credits, currency, duration_ms, "
                "period_start, created_at) "
                "SELECT gen_random_uuid(), g, customer_id, %(tool)s, %(price)s, %(plan)s, "
                "'credits', CASE WHEN g %% 50 = 0 THEN 'error' ELSE 'success' END, "
                "g %% 50 <> 0, 1000000, 1, 'usd', g %% 200, at, at " + common,
                params,
            )
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{hold}', 'id'), %s)",
                [rows],
            )
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {usage}, {hold}")
        print(f"written in {time.monotonic() - started:.0f} s", flush=True)
    return owners[0].pk, token


def deep_cursor(*, customer: int | None, fraction: float) -> str:
    """A cursor as the list gives out, at ``fraction`` of the way down (by creation time)."""
    from billing.models import UsageRecord

    rows = UsageRecord.objects.order_by("-created_at", "-id")
    if customer is not None:
        rows = rows.filter(customer_id=customer)
    depth = int(rows.count() * fraction)
    position = rows.values_list("created_at", flat=True)[depth]
    return base64.b64encode(urlencode({"p": str(position)}).encode()).decode()


def measure(http, path: str, params: dict, requests: int) -> dict:
    import httpx  # noqa: F401  (the client is passed in)

    for _ in range(20):
        http.get(path, params=params).raise_for_status()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = http.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        assert len(response.json()["results"]) == 50
    times.sort()
    return {
        "p50": statistics.median(times),
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8101")))
    parser.add_argument("--reload", action="store_true", help="write the rows again")
    args = parser.parse_args()

    customer, token = prepare(args.rows, args.reload)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per request
    cases = {
        "unfiltered, first page": {},
        "unfiltered, 90 % deep": {"cursor": deep_cursor(customer=None, fraction=0.9)},
        f"?customer= ({args.rows // CUSTOMERS:,} rows), first page": {"customer": customer},
        "?customer=, 90 % deep": {
            "customer": customer,
            "cursor": deep_cursor(customer=customer, fraction=0.9),
        },
    }
    env = {**os.environ, "MCP_SYNC_TOOLS_ON_STARTUP": "0", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "mcpbilling.asgi:application",
            "--port",
            str(args.port),
            "--lifespan",
            "on",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    import httpx

    try:
        base = f"http://127.0.0.1:{args.port}"
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Token {token}"}, timeout=30
        ) as http:
            for _ in range(100):
                try:
                    http.get("/api/v1/usage/", params={"limit": 1})
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            results = {
                name: measure(http, "/api/v1/usage/", params, args.requests)
                for name, params in cases.items()
            }
    finally:
        server.terminate()
        server.wait(timeout=30)
    load = os.getloadavg()
    print(
        f"\n{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{args.rows:,} usage rows, {args.requests} requests per case, one at a time, "
        f"50 rows a page; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print("| case | p50 ms | p99 ms |\n| --- | --- | --- |")
    for name, result in results.items():
        print(f"| {name} | {result['p50']:.1f} | {result['p99']:.1f} |")


if __name__ == "__main__":
    main()
