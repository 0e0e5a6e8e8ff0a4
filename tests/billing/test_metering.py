"""Meter reconciliation: local totals of what was sent against Stripe's meter event summaries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.ids import uuid7
from billing.models import MeterReconciliation, OutboxMessage
from billing.services.metering import meters_reconcile, window_floor
from billing.services.outbox import customer_stripe_id, outbox_dispatch
from billing.tasks import reconcile_meters
from mcpbilling.errors import ApplicationError
from mcpbilling.stripe_api import stripe_client
from tests.billing.test_outbox import EVENT, meter_create, metered_customer, synced

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


@pytest.fixture
def stripe_env(stripe_emulated):
    meter_create()
    return stripe_emulated


def usage(owner, *, at, value, status=OutboxMessage.Status.PENDING) -> OutboxMessage:
    """A meter-event outbox row for ``value`` microcents at ``at``."""
    return OutboxMessage.objects.create(
        kind=OutboxMessage.Kind.METER_EVENT,
        identifier=f"mcpb_usage_{uuid7()}",
        customer=owner,
        payload={"event_name": EVENT, "timestamp": int(at.timestamp()), "value_microcents": value},
        status=status,
        next_attempt_at=timezone.now(),
    )


def test_each_hour_agrees_when_everything_arrived(stripe_env):
    a, b = synced(metered_customer(), metered_customer())
    this_hour = window_floor(at=timezone.now())
    for owner, values in ((a, [100, 250]), (b, [7])):
        for value in values:
            usage(owner, at=this_hour - HOUR + timedelta(minutes=5), value=value)
        usage(owner, at=this_hour - 2 * HOUR + timedelta(minutes=59), value=1000)
    outbox_dispatch()

    checked = meters_reconcile(start=this_hour - 2 * HOUR, end=this_hour)

    totals = {(r.customer_id, r.window_start): (r.local_total, r.stripe_total) for r in checked}
    assert totals == {
        (a.pk, this_hour - HOUR): (350, 350),
        (a.pk, this_hour - 2 * HOUR): (1000, 1000),
        (b.pk, this_hour - HOUR): (7, 7),
        (b.pk, this_hour - 2 * HOUR): (1000, 1000),
    }
    assert all(r.difference == 0 and r.window_end - r.window_start == HOUR for r in checked)


def test_differences_are_stored_and_rechecks_overwrite_them(stripe_env):
    a, b = synced(metered_customer(), metered_customer())
    hour = window_floor(at=timezone.now()) - HOUR
    usage(a, at=hour + timedelta(minutes=1), value=500)
    usage(b, at=hour + timedelta(minutes=1), value=500)
    outbox_dispatch()
    # Stripe got an event we have no record of, and we recorded one Stripe never got.
    stripe_client().v1.billing.meter_events.create(
        {
            "event_name": EVENT,
            "identifier": "stray",
            "timestamp": int((hour + timedelta(minutes=2)).timestamp()),
            "payload": {"stripe_customer_id": customer_stripe_id(a), "value": "777"},
        }
    )
    usage(b, at=hour + timedelta(minutes=3), value=1234, status=OutboxMessage.Status.SENT)

    meters_reconcile(start=hour, end=hour + HOUR)
    meters_reconcile(start=hour, end=hour + HOUR)

    found = {r.customer_id: r for r in MeterReconciliation.objects.all()}
    assert len(found) == 2  # one row per customer, meter and window, however often checked
    assert (found[a.pk].local_total, found[a.pk].stripe_total, found[a.pk].difference) == (
        500,
        1277,
        777,
    )
    assert (found[b.pk].local_total, found[b.pk].stripe_total, found[b.pk].difference) == (
        1734,
        500,
        -1234,
    )
    assert found[a.pk].stripe_meter_id.startswith("mtr_")


def test_unsent_rows_are_not_counted_as_sent(stripe_env):
    (a,) = synced(metered_customer())
    hour = window_floor(at=timezone.now()) - HOUR
    usage(a, at=hour + timedelta(minutes=1), value=40)
    usage(a, at=hour + timedelta(minutes=2), value=60, status=OutboxMessage.Status.DEAD)
    outbox_dispatch()

    (row,) = meters_reconcile(start=hour, end=hour + HOUR)

    assert (row.local_total, row.stripe_total, row.difference) == (40, 40, 0)


def test_windows_must_lie_on_boundaries(stripe_env):
    hour = window_floor(at=timezone.now())
    with pytest.raises(ApplicationError):
        meters_reconcile(start=hour + timedelta(minutes=30), end=hour + HOUR)
    with pytest.raises(ApplicationError):
        meters_reconcile(start=hour - HOUR, end=hour, window="week")
    day = window_floor(at=timezone.now(), window="day")
    assert meters_reconcile(start=day - timedelta(days=1), end=day, window="day") == []


def test_the_hourly_task_checks_the_last_whole_hours(stripe_env):
    (a,) = synced(metered_customer())
    this_hour = window_floor(at=timezone.now())
    usage(a, at=this_hour - HOUR + timedelta(minutes=10), value=9)
    usage(a, at=this_hour + timedelta(seconds=1), value=1)  # the current hour: not yet
    outbox_dispatch()

    assert reconcile_meters.delay().get() == 1

    (row,) = MeterReconciliation.objects.all()
    assert row.window_start == this_hour - HOUR and row.local_total == row.stripe_total == 9
