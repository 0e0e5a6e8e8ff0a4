"""The outbox to Stripe: claim due rows, send each by its kind, record what Stripe answered.

A row is claimed in a short transaction (``SELECT ... FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite's immediate transaction serialises claimers), which
counts the attempt and leases the row for ``OUTBOX_LEASE_S``. The Stripe calls
run outside any transaction; the outcomes of a batch are written once it is
done. A crash between the two leaves the rows leased: they come due again when
the lease ends and are resent, and Stripe recognises the resend by the meter
event's identifier or the request's idempotency key. A row is ``sent`` only
after Stripe answered; sent rows are kept as the record of what Stripe was told.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing.models import OutboxMessage
from billing.services.collection import payment_charge
from billing.services.stripe_catalog import stripe_customer_ensure
from customers.models import Customer
from mcpbilling.errors import ApplicationError
from mcpbilling.stripe_api import stripe_client

logger = logging.getLogger(__name__)

Kind = OutboxMessage.Kind
Status = OutboxMessage.Status
DUPLICATE_CODE = "duplicate_meter_event"
DUPLICATE_MESSAGE = "An event already exists with identifier"
# Within a batch: the Stripe customer first, so its meter events and payments can follow.
KIND_ORDER = {Kind.CUSTOMER_SYNC: 0, Kind.METER_EVENT: 1, Kind.PAYMENT: 2}
LOCK_KEY = "billing:outbox-dispatch"


# --- rate limit --------------------------------------------------------------------------
class TokenBucket:
    """A per-process token bucket: ``rate_per_s`` tokens a second, at most ``burst`` saved.

    The default burst (a tenth of a second's tokens) keeps any one second
    under 1.1 times the rate, so 20/s stays under Stripe's 25/s and 90/s under 100/s.
    """

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst if burst is not None else max(1.0, rate_per_s / 10)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self, tokens: float = 1.0) -> float:
        """Wait until ``tokens`` are available and take them; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(
                    self.burst, self._tokens + (now - self._updated) * self.rate_per_s
                )
                self._updated = now
                # The tolerance stops float rounding from sleeping for ever in tiny steps.
                if self._tokens >= tokens - 1e-9:
                    self._tokens -= tokens
                    return waited
                pause = (tokens - self._tokens) / self.rate_per_s
            self._sleep(pause)
            waited += pause


_buckets: dict[float, TokenBucket] = {}
_buckets_lock = threading.Lock()


def stripe_rate_limiter() -> TokenBucket:
    """The process's bucket for ``STRIPE_RATE_LIMIT_PER_S`` (shared by every Stripe caller)."""
    rate = float(settings.STRIPE_RATE_LIMIT_PER_S)
    with _buckets_lock:
        if rate not in _buckets:
            _buckets[rate] = TokenBucket(rate_per_s=rate)
        return _buckets[rate]


# --- outcomes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What became of one send: ``sent``, ``retry``, ``dead`` or ``wait`` (no Stripe customer)."""

    result: str
    response: dict | None = None
    stripe_id: str = ""
    error: str = ""
    retry_after_s: float | None = None
    duplicate: bool = False
    # Stop sending the rest of the batch: Stripe asked us to slow down, or is unreachable.
    halt: bool = False


@dataclass
class DispatchReport:
    """Counts of one dispatch run."""

    sent: Counter = field(default_factory=Counter)
    duplicates: int = 0
    waiting: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0

    def __str__(self) -> str:
        others = "".join(
            f", sent {count} {kind.replace('_', ' ')} message(s)"
            for kind, count in sorted(self.sent.items())
            if kind != Kind.METER_EVENT
        )
        text = (
            f"sent {self.sent[Kind.METER_EVENT]} meter events "
            f"({self.duplicates} duplicates already at Stripe){others}, "
            f"{self.waiting} waiting for a Stripe customer, {self.failed} failed"
        )
        if self.dead:
            text += f", {self.dead} dead (see the admin)"
        if self.deferred:
            text += f", {self.deferred} deferred (Stripe asked us to slow down or is unreachable)"
        return text


def _retry_after(exc: stripe.StripeError) -> float | None:
    raw = (exc.headers or {}).get("retry-after") or (exc.headers or {}).get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def outcome_of_error(exc: Exception, *, kind: str) -> Outcome:
    """Classify a failed Stripe call: delivered (a duplicate), worth retrying, or permanent."""
    if isinstance(exc, stripe.RateLimitError):
        return Outcome("retry", error=str(exc), retry_after_s=_retry_after(exc), halt=True)
    if isinstance(exc, stripe.APIConnectionError):
        return Outcome("retry", error=f"connection: {exc}", halt=True)
    if isinstance(exc, stripe.StripeError):
        status = exc.http_status or 0
        if kind == Kind.METER_EVENT and (
            exc.code == DUPLICATE_CODE or DUPLICATE_MESSAGE in (exc.user_message or str(exc))
        ):
            return Outcome("sent", response={"duplicate": True}, duplicate=True)
        if status >= 500 or status in (0, 409) or isinstance(exc, stripe.IdempotencyError):
            return Outcome("retry", error=str(exc), retry_after_s=_retry_after(exc))
        if status in (401, 403):  # our key: an operator can fix it, so keep the rows
            return Outcome("retry", error=str(exc), halt=True)
        return Outcome("dead", error=f"{status} {exc.code or ''}: {exc}", response=exc.json_body)
    logger.exception("outbox: sending failed", exc_info=exc)
    return Outcome("retry", error=f"{type(exc).__name__}: {exc}")


# --- senders -----------------------------------------------------------------------------
def customer_stripe_id(customer: Customer) -> str:
    """The customer's Stripe id (``cus_...``), or "" while there is none."""
    return customer.stripe_customer_id or ""


@dataclass
class SendContext:
    """What the senders of one batch share: the client, the limiter, known Stripe customers."""

    client: stripe.StripeClient
    limiter: TokenBucket
    stripe_customers: dict[int, str] = field(default_factory=dict)

    def stripe_customer(self, customer: Customer | None) -> str:
        if customer is None:
            return ""
        if customer.pk not in self.stripe_customers:
            self.stripe_customers[customer.pk] = customer_stripe_id(customer)
        return self.stripe_customers[customer.pk]


def _send_meter_event(row: OutboxMessage, ctx: SendContext) -> Outcome:
    stripe_customer = ctx.stripe_customer(row.customer)
    if not stripe_customer:
        return Outcome("wait")
    payload = row.payload
    ctx.limiter.take()
    event = ctx.client.v1.billing.meter_events.create(
        {
            "event_name": payload["event_name"],
            "identifier": row.identifier,
            "timestamp": int(payload["timestamp"]),
            "payload": {
                "stripe_customer_id": stripe_customer,
                "value": str(payload["value_microcents"]),
            },
        }
    )
    # The payload holds the rest of what Stripe was told; Stripe's answer only echoes it.
    return Outcome("sent", response={"stripe_customer_id": event.payload["stripe_customer_id"]})


def _send_customer_sync(row: OutboxMessage, ctx: SendContext) -> Outcome:
    ctx.limiter.take()
    stripe_id = stripe_customer_ensure(customer=row.customer)
    ctx.stripe_customers[row.customer_id] = stripe_id
    return Outcome("sent", stripe_id=stripe_id, response={"id": stripe_id})


def _send_payment(row: OutboxMessage, ctx: SendContext) -> Outcome:
    stripe_customer = ctx.stripe_customer(row.customer)
    if not stripe_customer:
        return Outcome("wait")
    ctx.limiter.take(2)  # the customer's default card, then the PaymentIntent
    answer = payment_charge(
        payment_id=row.payload["payment_id"], stripe_customer_id=stripe_customer, client=ctx.client
    )
    return Outcome("sent", stripe_id=answer.get("id") or "", response=answer)


SENDERS: dict[str, Callable[[OutboxMessage, SendContext], Outcome]] = {
    Kind.METER_EVENT: _send_meter_event,
    Kind.CUSTOMER_SYNC: _send_customer_sync,
    Kind.PAYMENT: _send_payment,
}


def outbox_send(*, row: OutboxMessage, ctx: SendContext) -> Outcome:
    """Send one claimed row to Stripe and classify the answer."""
    try:
        return SENDERS[row.kind](row, ctx)
    except Exception as exc:  # every failure is recorded on the row, never raised
        return outcome_of_error(exc, kind=row.kind)


# --- claim, send, record -----------------------------------------------------------------
def _due(now: datetime):
    return OutboxMessage.objects.filter(
        Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True),
        status__in=[Status.PENDING, Status.FAILED],
    )


@transaction.atomic
def outbox_claim(
    *, batch_size: int, now: datetime, kinds: list[str] | None = None
) -> list[OutboxMessage]:
    """Claim up to ``batch_size`` due rows: count the attempt and lease them to this worker."""
    due = _due(now).order_by("next_attempt_at", "created_at")
    if kinds:
        due = due.filter(kind__in=kinds)
    if connection.features.has_select_for_update_skip_locked:
        due = due.select_for_update(skip_locked=True)
    ids = list(due.values_list("pk", flat=True)[:batch_size])
    if not ids:
        return []
    OutboxMessage.objects.filter(pk__in=ids).update(
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=settings.OUTBOX_LEASE_S),
    )
    rows = list(OutboxMessage.objects.filter(pk__in=ids).select_related("customer"))
    return sorted(rows, key=lambda row: (KIND_ORDER.get(row.kind, 9), row.created_at))


def backoff_s(*, attempts: int, retry_after_s: float | None = None) -> float:
    """Seconds before the next attempt: exponential with jitter, never before Retry-After."""
    delay = min(
        settings.OUTBOX_BACKOFF_BASE_S * 2 ** max(0, attempts - 1), settings.OUTBOX_BACKOFF_MAX_S
    )
    delay *= random.uniform(1.0, 1.25)
    return max(delay, retry_after_s or 0.0)


Changes = dict[str, object]


def _apply(row: OutboxMessage, outcome: Outcome, now: datetime, report: DispatchReport) -> Changes:
    """The row's new field values after its send; counts it."""
    if outcome.result == "sent":
        report.sent[row.kind] += 1
        report.duplicates += outcome.duplicate
        return {
            "status": Status.SENT,
            "sent_at": now,
            "next_attempt_at": None,
            "stripe_id": outcome.stripe_id,
            "response": outcome.response,
            "last_error": "",
        }
    if outcome.result == "wait":
        report.waiting += 1
        return {
            "attempts": F("attempts") - 1,  # waiting for our Stripe customer is no failed attempt
            "next_attempt_at": now + timedelta(seconds=settings.OUTBOX_WAIT_S),
            "last_error": outcome.error or "waiting for the Stripe customer",
        }
    if outcome.result == "dead" or row.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        report.dead += 1
        logger.error("outbox: %s is dead: %s", row.identifier, outcome.error)
        return {
            "status": Status.DEAD,
            "next_attempt_at": None,
            "last_error": outcome.error,
            "response": outcome.response,
        }
    report.failed += 1
    delay = backoff_s(attempts=row.attempts, retry_after_s=outcome.retry_after_s)
    return {
        "status": Status.FAILED,
        "next_attempt_at": now + timedelta(seconds=delay),
        "last_error": outcome.error,
    }


def _deferred(halted: Outcome, now: datetime, report: DispatchReport) -> Changes:
    """A claimed row not tried because the batch halted: given back, its attempt uncounted."""
    report.deferred += 1
    delay = max(halted.retry_after_s or 0.0, settings.OUTBOX_BACKOFF_BASE_S)
    return {"attempts": F("attempts") - 1, "next_attempt_at": now + timedelta(seconds=delay)}


def outbox_record(*, changes: list[tuple[OutboxMessage, Changes]]) -> None:
    """Write the outcomes of a batch: one UPDATE per set of identical changes."""
    groups: dict[str, tuple[Changes, list]] = {}
    for row, fields in changes:
        key = json.dumps(fields, sort_keys=True, default=str)
        groups.setdefault(key, (fields, []))[1].append(row.pk)
    with transaction.atomic():
        for fields, ids in groups.values():
            OutboxMessage.objects.filter(pk__in=ids).update(**fields)


def outbox_batch_send(
    *, rows: list[OutboxMessage], ctx: SendContext, now: datetime, report: DispatchReport
) -> bool:
    """Send claimed rows in order, then record them; returns whether the batch halted."""
    halted: Outcome | None = None
    changes = []
    for row in rows:
        if halted is not None:
            changes.append((row, _deferred(halted, now, report)))
            continue
        outcome = outbox_send(row=row, ctx=ctx)
        changes.append((row, _apply(row, outcome, now, report)))
        if outcome.halt:
            halted = outcome
    outbox_record(changes=changes)
    return halted is not None


def outbox_dispatch(
    *,
    batch_size: int | None = None,
    kinds: list[str] | None = None,
    max_batches: int | None = None,
    budget_s: float | None = None,
    now: datetime | None = None,
    client: stripe.StripeClient | None = None,
) -> DispatchReport:
    """Send due outbox rows to Stripe batch by batch until none is due; returns the counts.

    Stops early when Stripe asks us to slow down or cannot be reached, after
    ``max_batches`` batches, or once ``budget_s`` seconds have passed.
    """
    batch_size = batch_size or settings.OUTBOX_BATCH_SIZE
    ctx = SendContext(client=client or stripe_client(), limiter=stripe_rate_limiter())
    report = DispatchReport()
    started = time.monotonic()
    batches = 0
    while max_batches is None or batches < max_batches:
        if budget_s is not None and time.monotonic() - started > budget_s:
            break
        at = now or timezone.now()
        rows = outbox_claim(batch_size=batch_size, now=at, kinds=kinds)
        if not rows:
            break
        batches += 1
        if outbox_batch_send(rows=rows, ctx=ctx, now=at, report=report):
            break
    return report


@contextmanager
def outbox_lock(*, timeout_s: int) -> Iterator[bool]:
    """Whether this worker may run the dispatcher now (one at a time, through the cache)."""
    acquired = cache.add(LOCK_KEY, "1", timeout=timeout_s)
    try:
        yield acquired
    finally:
        if acquired:
            cache.delete(LOCK_KEY)


def outbox_requeue(*, ids: list) -> int:
    """Put dead (or failed) rows back in the queue now, with a fresh attempt count."""
    return OutboxMessage.objects.filter(pk__in=ids, status__in=[Status.DEAD, Status.FAILED]).update(
        status=Status.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
    )


def outbox_message_requeue(*, message: OutboxMessage) -> OutboxMessage:
    """Send one dead or failed row again now (an operator's retry); refused for other rows."""
    if not outbox_requeue(ids=[message.pk]):
        raise ApplicationError(
            "not_requeueable",
            f"Only dead or failed rows are sent again; this one is {message.status}.",
        )
    message.refresh_from_db()
    return message
