"""Periodic billing chores, each a thin wrapper over one service."""

from celery import shared_task

from billing.services.calls import holds_release_stale
from billing.services.ledger import credit_expire


@shared_task(name="billing.tasks.release_stale_holds")
def release_stale_holds() -> int:
    """Release holds of calls that never settled (their worker died)."""
    return holds_release_stale()


@shared_task(name="billing.tasks.expire_credits")
def expire_credits() -> int:
    """Expire credits past their date."""
    return credit_expire()
