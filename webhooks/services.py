"""Processing state of Stripe events: record, process once, retry, sweep.

dj-stripe verifies the signature and stores the event (``djstripe.models.Event``)
before ``event_record`` runs; processing happens after the commit, in Celery.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone
from djstripe.models import Event, WebhookEndpoint

from mcpbilling.errors import ApplicationError
from mcpbilling.stripe_api import stripe_client
from webhooks.handlers import Outcome, handler_for
from webhooks.models import EventProcessing

logger = logging.getLogger(__name__)

Status = EventProcessing.Status
# Attempts made by Celery and beat before a failed event waits for an operator.
MAX_ATTEMPTS = 8
# A row left "processing" this long belongs to a worker that died.
STALE_AFTER = timedelta(minutes=10)
# Errors worth retrying soon: Stripe or the database unavailable for a while.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    DatabaseError,
)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after ``attempts`` failures: 30 s, 1 min, 2 min ... at most 1 h."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def _enqueue(event_id: str) -> None:
    from webhooks.tasks import event_process_task

    transaction.on_commit(lambda: event_process_task.delay(event_id), robust=True)


def event_record(*, event_id: str, event_type: str) -> EventProcessing:
    """Record a delivered event once and queue it; a redelivery re-queues it only if unfinished."""
    processing, created = EventProcessing.objects.get_or_create(
        event_id=event_id, defaults={"type": event_type}
    )
    if created or processing.status in (Status.PENDING, Status.FAILED):
        _enqueue(event_id)
    return processing


def _claim(event_id: str, now: datetime) -> bool:
    """Move a pending or failed row to processing; False when taken by another worker, or done."""
    return bool(
        EventProcessing.objects.filter(
            event_id=event_id, status__in=[Status.PENDING, Status.FAILED]
        ).update(status=Status.PROCESSING, attempts=F("attempts") + 1, updated_at=now)
    )


def _finish(event_id: str, status: str, **fields) -> None:
    EventProcessing.objects.filter(event_id=event_id).update(
        status=status, updated_at=timezone.now(), **fields
    )


def event_process(*, event_id: str) -> str:
    """Run the event's handler once; returns the row's status.

    A handler error leaves the row ``failed`` with the error and the next
    attempt's time; transient errors are raised again so the caller (Celery)
    retries them with backoff.
    """
    now = timezone.now()
    if not _claim(event_id, now):
        return EventProcessing.objects.values_list("status", flat=True).get(event_id=event_id)
    event = Event.objects.get(id=event_id)
    handler = handler_for(event.type)
    if handler is None:
        _finish(event_id, Status.IGNORED, result="no handler", processed_at=now)
        return Status.IGNORED
    try:
        with transaction.atomic():
            outcome: Outcome = handler(event.data["object"])
    except Exception as exc:
        attempts = EventProcessing.objects.values_list("attempts", flat=True).get(event_id=event_id)
        logger.exception("Stripe event %s (%s) failed", event_id, event.type)
        _finish(
            event_id,
            Status.FAILED,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            next_attempt_at=now + retry_delay(attempts) if attempts < MAX_ATTEMPTS else None,
        )
        if isinstance(exc, TRANSIENT_ERRORS):
            raise
        return Status.FAILED
    status = Status.SUCCEEDED if outcome.done else Status.IGNORED
    _finish(
        event_id,
        status,
        result=outcome.note[:255],
        last_error="",
        next_attempt_at=None,
        processed_at=timezone.now(),
    )
    return status


def event_retry(*, processing: EventProcessing) -> bool:
    """Queue a failed (or stuck) event again now; False when it already finished."""
    updated = EventProcessing.objects.filter(
        pk=processing.pk, status__in=[Status.FAILED, Status.PENDING, Status.PROCESSING]
    ).update(status=Status.PENDING, next_attempt_at=None, updated_at=timezone.now())
    if updated:
        _enqueue(processing.event_id)
    return bool(updated)


def events_sweep(*, now: datetime | None = None) -> int:
    """Queue failed events whose retry is due, and pending or processing rows left behind."""
    now = now or timezone.now()
    stale = now - STALE_AFTER
    due = EventProcessing.objects.filter(
        Q(status=Status.FAILED, next_attempt_at__lte=now, attempts__lt=MAX_ATTEMPTS)
        | Q(status__in=[Status.PENDING, Status.PROCESSING], updated_at__lte=stale)
    )
    count = 0
    for processing in due.iterator():
        count += event_retry(processing=processing)
    return count


def webhook_endpoint_ensure(*, site_url: str) -> WebhookEndpoint:
    """The Stripe webhook endpoint pointing at this site, created at Stripe and mirrored once.

    A mirrored endpoint Stripe no longer knows (an emulator restarted without
    state) is replaced.
    """
    client = stripe_client()
    prefix = f"{site_url.rstrip('/')}/stripe/webhook/"
    for existing in WebhookEndpoint.objects.filter(url__startswith=prefix):
        try:
            remote = client.v1.webhook_endpoints.retrieve(existing.id)
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_missing":
                raise
            existing.delete()
            continue
        if remote.status == "enabled" and remote.url == existing.url:
            return existing
    endpoint_uuid = uuid.uuid4()
    remote = client.v1.webhook_endpoints.create(
        {
            "url": f"{prefix}{endpoint_uuid}/",
            "enabled_events": ["*"],
            "description": "MCP Billing (dj-stripe)",
            "metadata": {"djstripe_uuid": str(endpoint_uuid)},
        }
    )
    data = json.loads(str(remote))
    endpoint = WebhookEndpoint.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    # The signing secret is only in the create answer.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        secret=remote.secret, djstripe_uuid=endpoint_uuid
    )
    endpoint.refresh_from_db()
    return endpoint


def event_retry_now(*, processing: EventProcessing) -> EventProcessing:
    """An operator's retry of one event: queued again now, unless it finished (succeeded or
    ignored)."""
    if not event_retry(processing=processing):
        raise ApplicationError(
            "event_finished", f"This event is {processing.status}: there is nothing to retry."
        )
    processing.refresh_from_db()
    return processing
