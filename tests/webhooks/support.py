"""Helpers for Stripe tests: balances, signatures, event bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from billing.models import CreditAccount
from customers.models import Customer


def balance(owner: Customer) -> int:
    return CreditAccount.objects.get(customer=owner).balance_credits


def signed(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``body``, as Stripe computes it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    payload = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event_type: str, obj: dict[str, Any], event_id: str = "evt_test_1") -> bytes:
    """A Stripe event's JSON as a webhook delivers it."""
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2026-08-26.dahlia",
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
    ).encode()
