"""Helpers for Stripe tests: the emulator for dj-stripe and our code, a shopper, signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import stripe
from django.contrib.auth import get_user_model

from billing.models import BillingModel, CreditAccount
from customers.models import Customer
from tests.factories import PlanFactory, customer


def stripe_point_at(emulator, settings, monkeypatch) -> None:
    """Point our Stripe client and dj-stripe's global one at the emulator of this run."""
    settings.STRIPE_API_HOST = emulator.url
    monkeypatch.setattr(stripe, "api_base", emulator.url)
    monkeypatch.setattr(stripe, "api_key", settings.STRIPE_SECRET_KEY)


def shopper_create(client) -> Customer:
    """A user signed in on ``client`` whose billing customer is on a credits plan."""
    user = get_user_model().objects.create_user("shopper", "shopper@example.com", "pw-12345-x")
    owner = customer(
        "shopper@example.com", plan=PlanFactory(slug="credits", billing_model=BillingModel.CREDITS)
    )
    owner.user = user
    owner.save(update_fields=["user"])
    client.force_login(user)
    return owner


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
