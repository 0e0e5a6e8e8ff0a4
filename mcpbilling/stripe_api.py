"""The one way the product builds a Stripe client: the operator's Stripe or the emulator."""

from __future__ import annotations

import stripe
from django.conf import settings


def stripe_client(
    *, timeout_s: float | None = None, max_network_retries: int = 0
) -> stripe.StripeClient:
    """A StripeClient for the configured account (the emulator unless a secret key is set)."""
    base = getattr(settings, "STRIPE_API_HOST", None)
    addresses = {"api": base, "meter_events": base} if base else None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=addresses,
        max_network_retries=max_network_retries,
        http_client=stripe.RequestsClient(timeout=timeout_s or settings.STRIPE_TIMEOUT_S),
    )
