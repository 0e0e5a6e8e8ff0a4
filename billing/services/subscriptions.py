"""Stripe subscriptions as an operator changes them (customers change theirs in the portal)."""

from __future__ import annotations

import stripe
from django.conf import settings
from djstripe import models as dj

from mcpbilling.errors import ApplicationError
from mcpbilling.stripe_api import stripe_client

# Statuses of a subscription that bills no more.
ENDED = ("canceled", "incomplete_expired")


def subscription_cancel(
    *, subscription: dj.Subscription, at_period_end: bool = False
) -> dj.Subscription:
    """Cancel at Stripe, now (usage so far invoiced first) or at the end of the period.

    The mirror is updated from Stripe's answer; the customer's plan follows when
    Stripe's webhook arrives (webhooks.reconcile), as for a cancellation in the portal.
    """
    if subscription.stripe_data.get("status") in ENDED:
        raise ApplicationError("subscription_ended", "This subscription is canceled already.")
    client = stripe_client()
    try:
        if at_period_end:
            remote = client.v1.subscriptions.update(subscription.id, {"cancel_at_period_end": True})
        else:
            remote = client.v1.subscriptions.cancel(subscription.id, {"invoice_now": True})
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise ApplicationError(
            "stripe_unavailable", "Stripe did not answer; nothing changed. Try again shortly."
        ) from exc
    except stripe.StripeError as exc:
        raise ApplicationError(
            "stripe_refused", f"Stripe refused: {exc.user_message or exc.code or 'an error'}."
        ) from exc
    # As a stripe object, not a dict: dj-stripe pages through its items.
    dj.Subscription.sync_from_stripe_data(remote, api_key=settings.STRIPE_SECRET_KEY)
    return dj.Subscription.objects.get(id=subscription.id)
