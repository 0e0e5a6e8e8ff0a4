"""webhook-events/ (retry), outbox/ (requeue) and meter-reconciliations/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import MeterReconciliation, OutboxMessage
from tests.api.conftest import API, error_of
from tests.factories import customer
from webhooks.models import EventProcessing

pytestmark = pytest.mark.django_db


def test_webhook_events_are_listed_by_status_and_a_failed_one_retried(
    api, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr(
        "webhooks.tasks.event_process_task.delay", lambda event_id: queued.append(event_id)
    )
    failed = EventProcessing.objects.create(
        event_id="evt_failed", type="invoice.paid", status="failed", attempts=8, last_error="boom"
    )
    EventProcessing.objects.create(event_id="evt_done", type="invoice.paid", status="succeeded")
    listed = api.get(f"{API}webhook-events/", {"status": "failed"}).json()["results"]
    assert [(row["id"], row["last_error"]) for row in listed] == [("evt_failed", "boom")]
    assert api.get(f"{API}webhook-events/evt_done/").json()["status"] == "succeeded"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{API}webhook-events/{failed.event_id}/retry/")
    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert queued == ["evt_failed"]
    done = api.post(f"{API}webhook-events/evt_done/retry/")
    assert done.status_code == 409 and error_of(done)["code"] == "event_finished"
    assert api.post(f"{API}webhook-events/evt_missing/retry/").status_code == 404


def _row(status: str, **fields) -> OutboxMessage:
    return OutboxMessage.objects.create(
        kind="meter_event",
        identifier=f"mcpb_usage_{status}_{OutboxMessage.objects.count()}",
        status=status,
        **fields,
    )


def test_the_outbox_by_state_and_a_dead_row_requeued(api):
    dead = _row("dead", attempts=20, last_error="400: no such meter")
    sent = _row("sent")
    listed = api.get(f"{API}outbox/", {"state": "dead"}).json()["results"]
    assert [(row["id"], row["state"]) for row in listed] == [(str(dead.pk), "dead")]
    response = api.post(f"{API}outbox/{dead.pk}/requeue/")
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["attempts"]) == ("pending", 0)
    refused = api.post(f"{API}outbox/{sent.pk}/requeue/")
    assert refused.status_code == 409 and error_of(refused)["code"] == "not_requeueable"
    assert OutboxMessage.objects.get(pk=sent.pk).status == "sent"
    assert api.get(f"{API}outbox/", {"state": "lost"}).status_code == 400


def test_meter_reconciliations_show_the_mismatches(api):
    owner = customer()
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    for hours, stripe_total in ((0, 5_000_000), (1, 4_500_000)):
        MeterReconciliation.objects.create(
            customer=owner,
            event_name="mcp_calls",
            window_start=start + timedelta(hours=hours),
            window_end=start + timedelta(hours=hours + 1),
            local_total=5_000_000,
            stripe_total=stripe_total,
            difference=stripe_total - 5_000_000,
            checked_at=timezone.now(),
        )
    rows = api.get(f"{API}meter-reconciliations/", {"mismatch": "true"}).json()["results"]
    assert len(rows) == 1
    assert (rows[0]["local_total_decimal"], rows[0]["difference_decimal"]) == ("5", "-0.5")
    assert len(api.get(f"{API}meter-reconciliations/").json()["results"]) == 2


def test_a_view_only_operator_cannot_retry_or_requeue(viewer):
    EventProcessing.objects.create(event_id="evt_f", type="x", status="failed")
    dead = _row("dead")
    assert viewer.get(f"{API}outbox/").status_code == 200
    assert viewer.post(f"{API}webhook-events/evt_f/retry/").status_code == 403
    assert viewer.post(f"{API}outbox/{dead.pk}/requeue/").status_code == 403
