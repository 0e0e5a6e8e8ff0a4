"""Which function handles which Stripe event type; each takes the event's ``data.object``.

Handlers are thin: they pick the ids out of the event and call ``webhooks.reconcile``,
which re-reads the object from Stripe: an event's body alone never moves money. Types
without a handler are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from webhooks import reconcile
from webhooks.reconcile import Outcome

Handler = Callable[[dict[str, Any]], Outcome]

HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": lambda obj: reconcile.checkout_fulfil(session_id=obj["id"]),
    "customer.subscription.created": lambda obj: reconcile.subscription_sync(
        subscription_id=obj["id"]
    ),
    "customer.subscription.updated": lambda obj: reconcile.subscription_sync(
        subscription_id=obj["id"]
    ),
    "customer.subscription.deleted": lambda obj: reconcile.subscription_sync(
        subscription_id=obj["id"]
    ),
    "invoice.paid": lambda obj: reconcile.invoice_apply(invoice=obj),
    "invoice.payment_failed": lambda obj: reconcile.invoice_apply(invoice=obj),
    "payment_intent.succeeded": lambda obj: reconcile.payment_intent_apply(
        payment_intent_id=obj["id"]
    ),
    "payment_intent.payment_failed": lambda obj: reconcile.payment_intent_apply(
        payment_intent_id=obj["id"]
    ),
    "charge.refunded": lambda obj: reconcile.charge_refund_apply(charge_id=obj["id"]),
    "payment_method.attached": lambda obj: reconcile.payment_method_sync(
        stripe_customer_id=obj.get("customer")
    ),
    "customer.updated": lambda obj: reconcile.payment_method_sync(stripe_customer_id=obj["id"]),
}


def handler_for(event_type: str) -> Handler | None:
    """The handler of an event type, or None when we do not act on it."""
    return HANDLERS.get(event_type)
