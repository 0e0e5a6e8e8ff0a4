"""Periodic billing chores, each a thin wrapper over one service."""

from celery import shared_task
from django.conf import settings

from billing.services.calls import holds_release_stale
from billing.services.collection import collections_sweep
from billing.services.ledger import credit_expire
from billing.services.metering import meters_reconcile_recent
from billing.services.outbox import outbox_dispatch as dispatch
from billing.services.outbox import outbox_lock


@shared_task(name="billing.tasks.release_stale_holds")
def release_stale_holds() -> int:
    """Release holds of calls that never settled (their worker died)."""
    return holds_release_stale()


@shared_task(name="billing.tasks.expire_credits")
def expire_credits() -> int:
    """Expire credits past their date."""
    return credit_expire()


@shared_task(name="billing.tasks.outbox_dispatch")
def outbox_dispatch() -> str:
    """Start due collections and top-ups, then send what the outbox holds for Stripe."""
    with outbox_lock(timeout_s=settings.CELERY_TASK_TIME_LIMIT) as mine:
        if not mine:
            return "another worker is dispatching"
        collections_sweep()
        return str(dispatch(budget_s=settings.OUTBOX_RUN_BUDGET_S))


@shared_task(name="billing.tasks.reconcile_meters")
def reconcile_meters() -> int:
    """Compare the last hours' meter totals with Stripe's summaries."""
    return len(meters_reconcile_recent())
