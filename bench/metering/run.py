"""Usage rows reported to a Stripe meter per second, and Stripe requests per 1,000 rows.

The emulator runs in its own process (``manage.py stripe_emulator``) so it does
not share the dispatcher's GIL. Rows are written as the charge engine writes
them, then ``outbox_dispatch`` sends them. Run by hand, never in the test suite:

    createdb -h 127.0.0.1 -U postgres mcpb_bench   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mcpb_bench \\
        .venv/bin/python bench/metering/run.py --rows 10000 --customers 10
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mcpb_bench")
EVENT = "mcpb_bench_calls"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator(port: int) -> subprocess.Popen:
    """The emulator in a child process; returns once it answers."""
    import requests

    child = subprocess.Popen(
        [sys.executable, "manage.py", "stripe_emulator", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            requests.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1)
            return child
        except requests.ConnectionError:
            time.sleep(0.05)
    child.kill()
    raise SystemExit("the emulator did not start")


def link(owner, stripe_id: str) -> None:
    """Record the customer's Stripe id (``Customer.stripe_customer`` holds ``cus_...``)."""
    from customers.models import Customer

    Customer.objects.filter(pk=owner.pk).update(stripe_customer_id=stripe_id)


def prepare(*, rows: int, customers: int) -> None:
    """Migrate; make a meter, customers with Stripe customers, and ``rows`` meter-event rows."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from billing.ids import uuid7
    from billing.models import BillingModel, OutboxMessage, Plan
    from customers.services import customer_create
    from mcpbilling.stripe_api import stripe_client

    call_command("migrate", verbosity=0)
    client = stripe_client()
    client.v1.billing.meters.create(
        {
            "display_name": "bench",
            "event_name": EVENT,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )
    plan, _ = Plan.objects.get_or_create(
        slug="bench-usage",
        defaults={
            "name": "Bench usage",
            "billing_model": BillingModel.USAGE,
            "stripe_meter_event_name": EVENT,
        },
    )
    # Nothing else of earlier runs is due: only this run's rows are measured.
    OutboxMessage.objects.filter(status__in=["pending", "failed"]).update(status="dead")
    run = uuid.uuid4().hex[:8]
    now = timezone.now()
    owners = []
    for i in range(customers):
        owner = customer_create(email=f"bench-{run}-{i}@example.com", plan=plan)
        link(owner, client.v1.customers.create({"email": owner.email}).id)
        owners.append(owner)
    OutboxMessage.objects.filter(customer__in=owners).update(status="sent")  # customer_sync
    OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(
                kind=OutboxMessage.Kind.METER_EVENT,
                identifier=f"mcpb_usage_{uuid7()}",
                customer=owners[n % customers],
                payload={
                    "event_name": EVENT,
                    "timestamp": int(now.timestamp()) - random.randint(0, 3000),
                    "value_microcents": random.randint(1, 5000),
                    "tool": "bench",
                },
                next_attempt_at=now,
            )
            for n in range(rows)
        ],
        batch_size=2000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--rate", type=float, default=1e6, help="STRIPE_RATE_LIMIT_PER_S (default: no limit)"
    )
    args = parser.parse_args()
    port = free_port()
    os.environ["STRIPE_API_HOST"] = f"http://127.0.0.1:{port}"
    os.environ["STRIPE_RATE_LIMIT_PER_S"] = str(args.rate)
    emulator = start_emulator(port)
    try:
        prepare(rows=args.rows, customers=args.customers)
        from django.db import connection

        from billing.services.outbox import outbox_dispatch

        started = time.perf_counter()
        report = outbox_dispatch(batch_size=args.batch_size, kinds=["meter_event"])
        elapsed = time.perf_counter() - started
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    sent = report.sent["meter_event"]
    requests_made = sent + report.failed + report.dead  # one request per meter-event attempt
    print(f"python {platform.python_version()}, {connection.vendor}, {os.cpu_count()} CPUs")
    print(f"rows={args.rows} customers={args.customers} batch={args.batch_size} rate={args.rate}")
    print(report)
    print(f"reported {sent / elapsed:,.0f} usage rows/s ({sent} in {elapsed:.1f} s)")
    print(f"Stripe requests per 1,000 usage rows: {1000 * requests_made / max(sent, 1):,.0f}")


if __name__ == "__main__":
    main()
