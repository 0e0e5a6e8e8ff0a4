"""The API's periodic chores, each a thin wrapper over one function."""

from celery import shared_task

from mcpbilling.api.idempotency import idempotency_purge


@shared_task(name="api.tasks.idempotency_purge")
def idempotency_purge_task() -> int:
    """Forget Idempotency-Keys past their time."""
    return idempotency_purge()
