"""The outbox to Stripe: meter events reach the meter once, through faults, crashes and outages."""

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
import requests
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.ids import uuid7
from billing.models import BillingModel, OutboxMessage
from billing.services import outbox
from billing.services.calls import call_authorize, call_capture
from billing.services.metering import meters_reconcile, window_floor
from billing.services.outbox import outbox_dispatch
from customers.models import Customer
from mcpbilling.stripe_api import stripe_client
from tests.factories import PlanFactory, customer, priced_tool

pytestmark = pytest.mark.django_db

EVENT = "mcpb_calls"
Status = OutboxMessage.Status


@pytest.fixture
def stripe_env(stripe_emulated, settings):
    """The emulator as Stripe (no rate limit to wait on), with short backoffs."""
    settings.OUTBOX_BACKOFF_BASE_S = 1.0
    return stripe_emulated


def meter_create(event_name: str = EVENT):
    """A sum meter over ``value`` keyed by ``stripe_customer_id``, as the catalogue makes them."""
    return stripe_client().v1.billing.meters.create(
        {
            "display_name": event_name,
            "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )


def metered_customer(plan=None, **fields) -> Customer:
    plan = plan or PlanFactory(
        billing_model=BillingModel.USAGE, stripe_meter_event_name=EVENT, slug="usage"
    )
    return customer(plan=plan, subscription_status="active", **fields)


def stripe_customer_link(owner: Customer) -> str:
    """Give the customer a Stripe customer at the emulator, as ``customer_sync`` would."""
    remote = stripe_client().v1.customers.create({"email": owner.email})
    Customer.objects.filter(pk=owner.pk).update(stripe_customer_id=remote.id)
    OutboxMessage.objects.filter(
        kind=OutboxMessage.Kind.CUSTOMER_SYNC, customer=owner, status=Status.PENDING
    ).update(status=Status.SENT, stripe_id=remote.id, sent_at=timezone.now())
    return remote.id


def synced(*owners: Customer) -> list[Customer]:
    """The customers, each with its Stripe customer."""
    for owner in owners:
        stripe_customer_link(owner)
    fresh = [Customer.objects.get(pk=o.pk) for o in owners]
    assert all(outbox.customer_stripe_id(o).startswith("cus_") for o in fresh)
    return fresh


def meter_rows(owner: Customer, count: int, *, now=None) -> dict[str, int]:
    """Outbox rows as capture writes them; returns their values by identifier."""
    now = now or timezone.now()
    rows = [
        OutboxMessage(
            kind=OutboxMessage.Kind.METER_EVENT,
            identifier=f"mcpb_usage_{uuid7()}",
            customer=owner,
            payload={
                "event_name": EVENT,
                "timestamp": int((now - timedelta(seconds=random.randint(0, 3000))).timestamp()),
                "value_microcents": random.randint(1, 5000),
                "tool": "echo",
            },
            next_attempt_at=now,
        )
        for _ in range(count)
    ]
    OutboxMessage.objects.bulk_create(rows, batch_size=1000)
    return {row.identifier: row.payload["value_microcents"] for row in rows}


def fault(emulator, **spec) -> None:
    spec.setdefault("path", "/v1/billing/meter_events")
    spec.setdefault("method", "POST")
    requests.post(f"{emulator.url}/_emulator/faults", json=spec, timeout=5).raise_for_status()


def stripe_identifiers(emulator) -> list[str]:
    with emulator.store.lock:
        return [event["identifier"] for event in emulator.store.meter_events]


def pending_meter_events() -> int:
    return (
        OutboxMessage.objects.filter(kind=OutboxMessage.Kind.METER_EVENT)
        .exclude(status=Status.SENT)
        .count()
    )


class Killed(Exception):
    """The dispatcher's process dying between Stripe's answers and recording them."""


def test_ten_thousand_events_reach_the_meter_once_through_faults_and_crashes(
    stripe_env, settings, monkeypatch
):
    settings.STRIPE_TIMEOUT_S = 0.3
    meter_create()
    owners = synced(*(metered_customer() for _ in range(4)))
    start = timezone.now()
    sent_values = {}
    for owner in owners:
        sent_values.update(meter_rows(owner, 2500, now=start))

    record = outbox.outbox_record
    records = Counter()

    def dying_record(*, changes):
        records["calls"] += 1
        if records["calls"] in (2, 5):
            raise Killed  # Stripe has the batch; our record of it is lost
        record(changes=changes)

    monkeypatch.setattr(outbox, "outbox_record", dying_record)
    faults_by_round = {
        0: [{"status": 429, "retry_after": 1, "times": 2}],
        1: [{"status": 500, "times": 3}, {"status": 500, "after": True, "times": 5}],
        3: [{"delay_s": 0.6, "times": 2}, {"delay_s": 0.6, "after": True, "times": 2}],
        4: [{"status": 503, "after": True, "times": 3}],
    }
    now, duplicates = start, 0
    for round_ in range(40):
        for spec in faults_by_round.get(round_, []):
            fault(stripe_env, **spec)
        with contextlib.suppress(Killed):
            duplicates += outbox_dispatch(batch_size=500, max_batches=3, now=now).duplicates
        if not pending_meter_events():
            break
        now += timedelta(minutes=10)  # past every lease and backoff
    assert pending_meter_events() == 0

    identifiers = stripe_identifiers(stripe_env)
    assert len(identifiers) == len(set(identifiers)) == 10_000
    assert set(identifiers) == set(sent_values)
    assert duplicates >= 5  # the lost answers and the crashed batches were resent, not doubled

    end = window_floor(at=start) + timedelta(hours=1)
    checked = meters_reconcile(start=end - timedelta(hours=2), end=end)
    assert sum(r.local_total for r in checked) == sum(sent_values.values())
    assert [r.difference for r in checked] == [0] * len(checked)
    assert {r.customer_id for r in checked} == {o.pk for o in owners}


def _database_url() -> str:
    """The test database as a URL, for a child process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_report_usage_killed_mid_batch_loses_and_doubles_nothing(stripe_env):
    meter_create()
    owners = synced(*(metered_customer() for _ in range(2)))
    start = timezone.now()
    values = {}
    for owner in owners:
        values.update(meter_rows(owner, 1500, now=start))
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "STRIPE_API_HOST": stripe_env.url,
        "STRIPE_SECRET_KEY": "",
        "STRIPE_RATE_LIMIT_PER_S": "1000000",
        "OUTBOX_BATCH_SIZE": "500",
    }
    reporter = subprocess.Popen(
        [sys.executable, "manage.py", "report_usage"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(stripe_identifiers(stripe_env)) < 1234 and reporter.poll() is None:
        assert time.monotonic() < deadline, "the reporter sent too little"
        time.sleep(0.005)
    reporter.send_signal(signal.SIGKILL)  # mid-batch: Stripe has events we never recorded
    reporter.wait(timeout=10)
    time.sleep(0.2)  # a request the emulator had already read is stored all the same
    at_kill = len(stripe_identifiers(stripe_env))
    recorded = OutboxMessage.objects.filter(status=Status.SENT, kind="meter_event").count()
    assert recorded < at_kill < len(values)

    # The killed batch stays leased; once the lease ends it is resent.
    later = timezone.now() + timedelta(seconds=django_settings.OUTBOX_LEASE_S + 1)
    report = outbox_dispatch(now=later)

    assert pending_meter_events() == 0
    assert report.duplicates == at_kill - recorded  # Stripe already had them: not doubled
    identifiers = stripe_identifiers(stripe_env)
    assert len(identifiers) == len(set(identifiers)) == len(values)
    end = window_floor(at=start) + timedelta(hours=1)
    checked = meters_reconcile(start=end - timedelta(hours=2), end=end)
    assert sum(r.stripe_total for r in checked) == sum(values.values())
    assert [r.difference for r in checked] == [0] * len(checked)


def test_rate_limited_batch_waits_for_retry_after(stripe_env):
    meter_create()
    (owner,) = synced(metered_customer())
    meter_rows(owner, 5)
    fault(stripe_env, status=429, retry_after=30)
    now = timezone.now()

    report = outbox_dispatch(now=now)

    assert report.failed == 1 and report.deferred == 4 and not report.sent
    rows = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.METER_EVENT)
    assert all(row.next_attempt_at >= now + timedelta(seconds=30) for row in rows)
    assert sorted(row.attempts for row in rows) == [0, 0, 0, 0, 1]
    assert outbox_dispatch(now=now).sent[OutboxMessage.Kind.METER_EVENT] == 0  # not due yet
    later = outbox_dispatch(now=now + timedelta(seconds=31))
    assert later.sent[OutboxMessage.Kind.METER_EVENT] == 5


def test_server_errors_back_off_then_die_after_max_attempts(stripe_env, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    meter_create()
    (owner,) = synced(metered_customer())
    meter_rows(owner, 1)
    fault(stripe_env, status=500, times=3)
    now = timezone.now()
    for _ in range(3):
        outbox_dispatch(now=now)
        row = OutboxMessage.objects.get(kind=OutboxMessage.Kind.METER_EVENT)
        now = max(now, row.next_attempt_at or now) + timedelta(seconds=1)
    assert row.status == Status.DEAD and row.attempts == 3
    assert stripe_identifiers(stripe_env) == []


def test_a_permanent_refusal_is_dead_at_once(stripe_env):
    (owner,) = synced(metered_customer())  # no meter for the event name at Stripe
    meter_rows(owner, 1)
    report = outbox_dispatch()
    row = OutboxMessage.objects.get(kind=OutboxMessage.Kind.METER_EVENT)
    assert report.dead == 1 and row.status == Status.DEAD and row.attempts == 1
    assert "no_meter" in row.last_error


def test_meter_events_wait_for_the_stripe_customer(stripe_env):
    meter_create()
    owner = metered_customer()
    meter_rows(owner, 3)
    now = timezone.now()

    report = outbox_dispatch(kinds=[OutboxMessage.Kind.METER_EVENT], now=now)

    assert report.waiting == 3 and not report.failed
    rows = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.METER_EVENT)
    assert {(r.status, r.attempts) for r in rows} == {(Status.PENDING, 0)}
    stripe_customer_link(owner)
    report = outbox_dispatch(kinds=[OutboxMessage.Kind.METER_EVENT], now=now)
    assert not report.sent[OutboxMessage.Kind.METER_EVENT]  # not before the wait is over
    report = outbox_dispatch(now=now + timedelta(minutes=5))
    assert report.sent[OutboxMessage.Kind.METER_EVENT] == 3
    assert len(stripe_identifiers(stripe_env)) == 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_calls_go_on_while_stripe_is_down_and_arrive_once_when_it_is_back(stripe_env, settings):
    meter_create()
    (owner,) = synced(metered_customer())
    tool = priced_tool(cents=0.25)
    settings.STRIPE_API_HOST = f"http://127.0.0.1:{_closed_port()}"

    usages = []
    for _ in range(7):
        hold = call_authorize(customer=owner, tool=tool)
        usages.append(call_capture(hold_id=hold.pk).usage)
    report = outbox_dispatch()

    assert report.failed == 1 and report.deferred == 6  # one try, then the batch stops
    rows = OutboxMessage.objects.filter(kind=OutboxMessage.Kind.METER_EVENT)
    assert rows.count() == 7 and not rows.filter(status=Status.SENT).exists()
    assert "connection" in rows.get(attempts=1).last_error

    settings.STRIPE_API_HOST = stripe_env.url
    report = outbox_dispatch(now=timezone.now() + timedelta(minutes=5))

    assert report.sent[OutboxMessage.Kind.METER_EVENT] == 7
    assert sorted(stripe_identifiers(stripe_env)) == sorted(f"mcpb_usage_{u.pk}" for u in usages)
    assert {e["payload"]["value"] for e in stripe_env.store.meter_events} == {"250000"}
    assert set(rows.values_list("status", flat=True)) == {Status.SENT}


def test_report_usage_says_what_it_sent(stripe_env):
    meter_create()
    (owner,) = synced(metered_customer())
    identifiers = meter_rows(owner, 4)
    meter_rows(metered_customer(), 2)  # its Stripe customer cannot be made below
    fault(stripe_env, path="/v1/customers", status=400)
    already = next(iter(identifiers))
    row = OutboxMessage.objects.get(identifier=already)
    stripe_client().v1.billing.meter_events.create(
        {
            "event_name": EVENT,
            "identifier": already,
            "timestamp": row.payload["timestamp"],
            "payload": {
                "stripe_customer_id": outbox.customer_stripe_id(owner),
                "value": str(row.payload["value_microcents"]),
            },
        }
    )
    out = StringIO()

    call_command("report_usage", stdout=out)

    assert out.getvalue().strip() == (
        "sent 4 meter events (1 duplicates already at Stripe), "
        "2 waiting for a Stripe customer, 0 failed, 1 dead (see the admin)"
    )
    assert len(stripe_identifiers(stripe_env)) == 4


def test_the_token_bucket_holds_requests_to_the_rate():
    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds

    bucket = outbox.TokenBucket(rate_per_s=20, clock=lambda: clock[0], sleep=sleep)
    for _ in range(42):
        bucket.take()
    assert clock[0] == pytest.approx(2.0)  # 2 saved tokens, then 40 more at 20 a second
    clock[0] += 10  # idle: no more than the burst is saved
    for _ in range(3):
        bucket.take()
    assert clock[0] == pytest.approx(12.05)
