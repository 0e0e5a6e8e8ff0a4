"""Celery tasks: process one Stripe event, and the beat sweep of due and stuck events."""

from celery import shared_task

from webhooks import services


@shared_task(
    autoretry_for=services.TRANSIENT_ERRORS,
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=services.MAX_ATTEMPTS,
)
def event_process_task(event_id: str) -> str:
    """Process one stored Stripe event."""
    return services.event_process(event_id=event_id)


@shared_task
def events_sweep_task() -> int:
    """Queue failed events whose retry is due and rows a dead worker left behind."""
    return services.events_sweep()
