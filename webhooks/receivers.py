"""The hook into dj-stripe: record each verified event and queue its processing."""

from __future__ import annotations

from typing import Any

from djstripe.models import WebhookEventTrigger

from webhooks.services import event_record


def event_received(sender: Any, instance: WebhookEventTrigger, **kwargs: Any) -> None:
    """dj-stripe's ``webhook_post_process``: the event is stored and its signature checked."""
    if instance.event is not None:
        event_record(event_id=instance.event.id, event_type=instance.event.type)
