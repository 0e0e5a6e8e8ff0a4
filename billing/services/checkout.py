"""Start Stripe Checkout and Customer Portal sessions for a signed-in customer."""

from __future__ import annotations

import stripe
from django.db import transaction

from billing.models import CreditPack, Plan
from billing.services.stripe_catalog import (
    credit_pack_stripe_sync,
    plan_has_meter,
    plan_metered_lookup_key,
    stripe_customer_ensure,
)
from customers.authentication import credentials_forget
from customers.models import Customer
from customers.services import customer_plan_change
from mcpbilling.errors import ApplicationError
from mcpbilling.stripe_api import stripe_client


def _stripe_customer_id(customer: Customer, client: stripe.StripeClient) -> str:
    return customer.stripe_customer_id or stripe_customer_ensure(customer=customer, client=client)


def checkout_credit_pack_start(
    *, customer: Customer, pack: CreditPack, success_url: str, cancel_url: str
) -> str:
    """A Checkout Session (payment mode) for one credit pack; returns its URL.

    The card is saved for later off-session payments (auto top-up).
    """
    if not pack.active:
        raise ApplicationError("pack_inactive", "This credit pack is no longer sold.")
    client = stripe_client()
    if not pack.stripe_price_id:
        credit_pack_stripe_sync(pack=pack, client=client)
    metadata = {"mcpb_customer_id": str(customer.pk), "mcpb_pack": pack.slug}
    session = client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "customer": _stripe_customer_id(customer, client),
            "client_reference_id": str(customer.pk),
            "line_items": [{"price": pack.stripe_price_id, "quantity": 1}],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata, "setup_future_usage": "off_session"},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
    )
    return session.url


def checkout_plan_start(
    *, customer: Customer, plan: Plan, success_url: str, cancel_url: str
) -> str:
    """A Checkout Session (subscription mode) for a plan's Stripe price; returns its URL."""
    if not (plan.active and plan.public and plan.stripe_price_id):
        raise ApplicationError("plan_not_purchasable", "This plan cannot be subscribed to here.")
    client = stripe_client()
    metadata = {"mcpb_customer_id": str(customer.pk), "mcpb_plan": plan.slug}
    line_items: list[dict] = [{"price": plan.stripe_price_id, "quantity": 1}]
    if plan_has_meter(plan):
        # Metered prices take no quantity: usage comes from the meter.
        found = client.v1.prices.list({"lookup_keys": [plan_metered_lookup_key(plan)]}).data
        line_items = [{"price": p.id} for p in found]
        if plan.stripe_price_id not in {p.id for p in found}:
            line_items.insert(0, {"price": plan.stripe_price_id, "quantity": 1})
    session = client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer": _stripe_customer_id(customer, client),
            "client_reference_id": str(customer.pk),
            "line_items": line_items,
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
    )
    return session.url


def portal_start(*, customer: Customer, return_url: str) -> str:
    """A Customer Portal session (subscriptions, card, invoices); returns its URL."""
    client = stripe_client()
    session = client.v1.billing_portal.sessions.create(
        {"customer": _stripe_customer_id(customer, client), "return_url": return_url}
    )
    return session.url


SUBSCRIBED = ("active", "trialing", "past_due", "unpaid")


def plan_choose(
    *, customer: Customer, plan: Plan, success_url: str, cancel_url: str, return_url: str
) -> str | None:
    """Move the customer towards ``plan``; returns the Stripe page to go to, or None when done.

    A subscriber changes or cancels in the Customer Portal; a plan with a Stripe
    price is bought through Checkout; any other public plan is switched to at once.
    """
    if not (plan.active and plan.public):
        raise ApplicationError("plan_not_available", "This plan is not offered.")
    if customer.subscription_status in SUBSCRIBED and customer.stripe_customer_id:
        return portal_start(customer=customer, return_url=return_url)
    if plan.stripe_price_id:
        return checkout_plan_start(
            customer=customer, plan=plan, success_url=success_url, cancel_url=cancel_url
        )
    customer_plan_change(customer=customer, plan=plan)
    transaction.on_commit(lambda: credentials_forget(customer_id=customer.pk))
    return None
