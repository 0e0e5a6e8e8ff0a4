"""Meter reconciliation: what we sent to Stripe's meters against Stripe's event summaries.

The local side is the sent ``meter_event`` outbox rows (the permanent record),
by the event's own timestamp; Stripe's side is its meter event summaries over
the same minute-aligned windows. Stripe's summaries are eventually consistent,
so a recent window may differ for a while; a later run overwrites the row.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import stripe
from django.conf import settings
from django.utils import timezone

from billing.models import MeterReconciliation, OutboxMessage
from billing.services.outbox import customer_stripe_id, stripe_rate_limiter
from customers.models import Customer
from mcpbilling.errors import ApplicationError
from mcpbilling.stripe_api import stripe_client

WINDOWS = {"hour": 3600, "day": 86400}


def window_floor(*, at: datetime, window: str = "hour") -> datetime:
    """The start of the hour or UTC day containing ``at``."""
    size = WINDOWS[window]
    seconds = int(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % size, UTC)


def local_meter_totals(
    *, start: datetime, end: datetime, window: str = "hour"
) -> dict[tuple[int, str], dict[int, int]]:
    """Sent meter-event values per (customer, event name) and window start (unix seconds)."""
    size = WINDOWS[window]
    low, high = int(start.timestamp()), int(end.timestamp())
    rows = OutboxMessage.objects.filter(
        kind=OutboxMessage.Kind.METER_EVENT,
        status=OutboxMessage.Status.SENT,
        payload__timestamp__gte=low,
        payload__timestamp__lt=high,
    ).values_list(
        "customer_id", "payload__event_name", "payload__timestamp", "payload__value_microcents"
    )
    totals: dict[tuple[int, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for customer_id, event_name, timestamp, value in rows.iterator(chunk_size=5000):
        totals[(customer_id, event_name)][int(timestamp) - int(timestamp) % size] += int(value)
    return totals


def _meter_ids(client: stripe.StripeClient) -> dict[str, str]:
    meters = client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()
    return {m.event_name: m.id for m in meters if m.status == "active"}


def stripe_meter_totals(
    *,
    client: stripe.StripeClient,
    meter_id: str,
    stripe_customer: str,
    start: datetime,
    end: datetime,
    window: str = "hour",
) -> dict[int, int]:
    """Stripe's summary values per window start (unix seconds) for one customer and meter."""
    limiter = stripe_rate_limiter()
    limiter.take()
    summaries = client.v1.billing.meters.event_summaries.list(
        meter_id,
        {
            "customer": stripe_customer,
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
            "value_grouping_window": window,
            "limit": 100,
        },
    )
    totals: dict[int, int] = {}
    for summary in summaries.auto_paging_iter():
        value = Decimal(str(summary.aggregated_value)).to_integral_value()
        totals[int(summary.start_time)] = int(value)
    return totals


def meters_reconcile(
    *,
    start: datetime,
    end: datetime,
    window: str = "hour",
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
) -> list[MeterReconciliation]:
    """Compare local and Stripe totals per customer, meter and window in [start, end); store them.

    ``start`` and ``end`` must lie on ``window`` boundaries (so on minutes, as
    Stripe requires). Customers and meters with sent events in the range are
    compared.
    """
    if window not in WINDOWS:
        raise ApplicationError("window_invalid", f"window must be one of {sorted(WINDOWS)}.")
    size = WINDOWS[window]
    low, high = int(start.timestamp()), int(end.timestamp())
    if low % size or high % size or high <= low:
        raise ApplicationError("window_invalid", f"start and end must be {window} boundaries.")
    now = now or timezone.now()
    client = client or stripe_client()
    local = local_meter_totals(start=start, end=end, window=window)
    meter_ids = _meter_ids(client) if local else {}
    customers = Customer.objects.in_bulk({customer_id for customer_id, _ in local})
    checked = []
    for (customer_id, event_name), windows in sorted(local.items()):
        stripe_customer = customer_stripe_id(customers[customer_id])
        meter_id = meter_ids.get(event_name, "")
        remote = (
            stripe_meter_totals(
                client=client,
                meter_id=meter_id,
                stripe_customer=stripe_customer,
                start=start,
                end=end,
                window=window,
            )
            if meter_id and stripe_customer
            else {}
        )
        for window_start in range(low, high, size):
            local_total = windows.get(window_start, 0)
            stripe_total = remote.get(window_start, 0)
            if not local_total and not stripe_total:
                continue
            row, _ = MeterReconciliation.objects.update_or_create(
                customer_id=customer_id,
                event_name=event_name,
                window_start=datetime.fromtimestamp(window_start, UTC),
                window_end=datetime.fromtimestamp(window_start + size, UTC),
                defaults={
                    "stripe_meter_id": meter_id,
                    "local_total": local_total,
                    "stripe_total": stripe_total,
                    "difference": stripe_total - local_total,
                    "checked_at": now,
                },
            )
            checked.append(row)
    return checked


def meters_reconcile_recent(*, now: datetime | None = None) -> list[MeterReconciliation]:
    """Reconcile the last ``METERING_RECONCILE_HOURS`` whole hours before the current one."""
    now = now or timezone.now()
    end = window_floor(at=now)
    start = end - timedelta(hours=settings.METERING_RECONCILE_HOURS)
    return meters_reconcile(start=start, end=end, window="hour", now=now)
