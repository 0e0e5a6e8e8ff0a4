"""Bring our customers in line with Stripe: what a webhook event tells us to re-read and apply.

Webhooks arrive late, twice or out of order, so these functions re-fetch
the object that matters from Stripe and apply its current state; applying the
same state again changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import BillingModel, CreditPack, Plan
from billing.services.collection import payment_intent_failed, payment_intent_succeeded
from billing.services.ledger import credit_grant, credit_reverse
from billing.services.stripe_catalog import plan_for_price
from customers.authentication import credentials_forget
from customers.models import Customer
from customers.services import customer_plan_change
from mcpbilling.stripe_api import stripe_client
from webhooks.models import CheckoutGrant

logger = logging.getLogger(__name__)

# Subscription statuses after which a subscription never comes back.
ENDED = ("canceled", "incomplete_expired")
# Statuses in which the customer owes a failed payment.
OWING = ("past_due", "unpaid")
# PaymentIntents our own collection and auto top-up create carry this metadata key.
PURPOSES = ("collection", "topup")
# PaymentIntent statuses after a failed attempt (with its ``last_payment_error``).
FAILED_PAYMENT = ("requires_payment_method", "canceled")


@dataclass(frozen=True)
class Outcome:
    """What handling an event did: ``done`` False means nothing applied (ignored)."""

    done: bool
    note: str = ""


def ignored(note: str) -> Outcome:
    return Outcome(done=False, note=note)


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if obj is None:
            return None
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return obj


def customer_for_stripe(*, stripe_customer_id: str | None, metadata: Any = None) -> Customer | None:
    """Our customer behind a Stripe customer id (or the ``mcpb_customer_id`` metadata)."""
    if stripe_customer_id:
        found = Customer.objects.filter(stripe_customer_id=stripe_customer_id).first()
        if found is not None:
            return found
    our_id = _get(metadata, "mcpb_customer_id")
    if our_id and str(our_id).isdigit():
        found = Customer.objects.filter(pk=int(our_id)).first()
        if found is not None and stripe_customer_id and not found.stripe_customer_id:
            Customer.objects.filter(pk=found.pk).update(stripe_customer_id=stripe_customer_id)
            found.stripe_customer_id = stripe_customer_id
        return found
    return None


def _forget(customer: Customer) -> None:
    transaction.on_commit(lambda: credentials_forget(customer_id=customer.pk))


def _from_unix(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


# --- Checkout --------------------------------------------------------------------------


def checkout_fulfil(*, session_id: str) -> Outcome:
    """A paid Checkout Session: grant its credit pack once, or apply the new subscription.

    The session is read from Stripe: an event's copy of it is never trusted to move money.
    """
    session = stripe_client().v1.checkout.sessions.retrieve(session_id).to_dict()
    if session.get("status") != "complete" or session.get("payment_status") not in (
        "paid",
        "no_payment_required",
    ):
        return ignored(f"session {session.get('status')}, {session.get('payment_status')}")
    customer = customer_for_stripe(
        stripe_customer_id=session.get("customer"), metadata=session.get("metadata")
    )
    if customer is None:
        return ignored("no customer of ours")
    if session.get("mode") == "subscription":
        return subscriptions_sync(customer=customer)
    pack = CreditPack.objects.filter(slug=_get(session, "metadata", "mcpb_pack")).first()
    if pack is None:
        return ignored("no credit pack in the metadata")
    return _credit_pack_grant(customer=customer, pack=pack, session=session)


def _credit_pack_grant(*, customer: Customer, pack: CreditPack, session: dict) -> Outcome:
    key = f"checkout:{session['id']}"
    now = timezone.now()
    expires_at = now + timedelta(days=pack.expires_after_days) if pack.expires_after_days else None
    credit_grant(
        customer_id=customer.pk,
        credits=pack.credits,
        idempotency_key=key,
        description=f"{pack.name} (Checkout {session['id']})",
        expires_at=expires_at,
    )
    CheckoutGrant.objects.get_or_create(
        session_id=session["id"],
        defaults={
            "payment_intent_id": session.get("payment_intent") or "",
            "customer": customer,
            "pack": pack,
            "credits": pack.credits,
            "grant_key": key,
        },
    )
    return Outcome(done=True, note=f"granted {pack.credits} credits")


def charge_refund_apply(*, charge_id: str) -> Outcome:
    """A refunded charge of a credit pack: take back the pack's credits not yet spent.

    The charge is read from Stripe, not taken from the event.
    """
    charge = stripe_client().v1.charges.retrieve(charge_id)
    grant = CheckoutGrant.objects.filter(payment_intent_id=charge.payment_intent or "-").first()
    if grant is None:
        return ignored("not a credit pack payment")
    if not charge.refunded:
        # A partial refund leaves the credits; the operator adjusts them if needed.
        return ignored("partially refunded: credits kept")
    entry = credit_reverse(
        grant_idempotency_key=grant.grant_key, reason=f"Refund of Checkout {grant.session_id}"
    )
    return Outcome(done=True, note=f"reversed {-entry.amount_credits if entry else 0} credits")


# --- subscriptions ------------------------------------------------------------------------


def subscription_sync(*, subscription_id: str) -> Outcome:
    """Apply the state, at Stripe, of the subscriptions of the customer behind this one."""
    sub = stripe_client().v1.subscriptions.retrieve(subscription_id)
    customer = customer_for_stripe(stripe_customer_id=sub.customer, metadata=sub.metadata)
    if customer is None:
        return ignored("no customer of ours")
    return subscriptions_sync(customer=customer)


def _fallback_plan() -> Plan | None:
    slug = settings.BILLING_FALLBACK_PLAN
    return Plan.objects.filter(slug=slug).first() if slug else None


def _current_subscription(customer: Customer) -> tuple[Any, Any, Plan | None]:
    """The newest not-ended Stripe subscription of the customer with a plan of ours."""
    subs = stripe_client().v1.subscriptions.list(
        {"customer": customer.stripe_customer_id, "status": "all", "limit": 100}
    )
    for sub in sorted(subs.data, key=lambda s: s.created, reverse=True):
        if sub.status in ENDED:
            continue
        for item in sub["items"].data:
            plan = _item_plan(item)
            if plan is not None:
                return sub, item, plan
    return None, None, None


def _item_plan(item: Any) -> Plan | None:
    return plan_for_price(price_id=item.price.id, lookup_key=item.price.lookup_key)


@transaction.atomic
def subscriptions_sync(*, customer: Customer) -> Outcome:
    """Put the customer on the plan of their current subscription at Stripe, or end it.

    Whatever event led here and in whatever order events came, the result is
    what Stripe holds now. Without a live subscription a customer on a
    subscription or usage plan returns to the fallback plan.
    """
    customer = (
        Customer.objects.select_for_update(of=("self",)).select_related("plan").get(pk=customer.pk)
    )
    if not customer.stripe_customer_id:
        return ignored("no Stripe customer")
    sub, item, plan = _current_subscription(customer)
    if sub is not None:
        fields: dict[str, Any] = {
            "plan": plan,
            "subscription_status": sub.status,
            "period_start": _from_unix(item.current_period_start),
            "period_end": _from_unix(item.current_period_end),
        }
        note = f"{plan.slug}: {sub.status}"
    elif customer.subscription_status and (
        customer.plan is None
        or customer.plan.billing_model in (BillingModel.SUBSCRIPTION, BillingModel.USAGE)
    ):
        fields = {"plan": _fallback_plan(), "subscription_status": "canceled"}
        note = "subscription ended"
    else:
        return ignored("no subscription")
    if customer.status in (Customer.Status.ACTIVE, Customer.Status.PAST_DUE):
        owing = sub is not None and sub.status in OWING
        fields["status"] = Customer.Status.PAST_DUE if owing else Customer.Status.ACTIVE
    changed = {k: v for k, v in fields.items() if getattr(customer, k) != v}
    if not changed:
        return Outcome(done=True, note=f"{note} (unchanged)")
    plan_changed = "plan" in changed
    if plan_changed and changed["plan"] is not None:
        customer_plan_change(customer=customer, plan=changed.pop("plan"))
    for name, value in changed.items():
        setattr(customer, name, value)
    customer.save(update_fields=[*changed, "updated_at"])
    _forget(customer)
    return Outcome(done=True, note=note)


# --- invoices and payment methods ----------------------------------------------------------


def invoice_apply(*, invoice: dict[str, Any]) -> Outcome:
    """A paid or failed invoice: dunning follows the invoice's state at Stripe now."""
    subscription_id = _get(invoice, "parent", "subscription_details", "subscription")
    if subscription_id:
        return subscription_sync(subscription_id=subscription_id)
    current = stripe_client().v1.invoices.retrieve(invoice["id"])
    customer = customer_for_stripe(stripe_customer_id=current.customer)
    if customer is None:
        return ignored("no customer of ours")
    if current.status == "paid":
        updated = Customer.objects.filter(pk=customer.pk, status=Customer.Status.PAST_DUE).update(
            status=Customer.Status.ACTIVE, updated_at=timezone.now()
        )
    elif current.status == "open" and current.attempted:
        updated = Customer.objects.filter(pk=customer.pk, status=Customer.Status.ACTIVE).update(
            status=Customer.Status.PAST_DUE, updated_at=timezone.now()
        )
    else:
        return ignored(f"invoice {current.status}")
    _forget(customer)
    return Outcome(done=True, note=f"invoice {current.status}, changed: {bool(updated)}")


def payment_method_sync(*, stripe_customer_id: str | None) -> Outcome:
    """Whether the customer has a card Stripe can charge off-session, as Stripe says now."""
    customer = customer_for_stripe(stripe_customer_id=stripe_customer_id)
    if customer is None:
        return ignored("no customer of ours")
    cards = stripe_client().v1.payment_methods.list(
        {"customer": stripe_customer_id, "type": "card", "limit": 1}
    )
    has_card = bool(cards.data)
    Customer.objects.filter(pk=customer.pk).update(
        has_payment_method=has_card, updated_at=timezone.now()
    )
    _forget(customer)
    return Outcome(done=True, note=f"payment method: {has_card}")


def payment_intent_apply(*, payment_intent_id: str) -> Outcome:
    """Collection and auto top-up payments go to the collection service; Checkout's are not ours.

    Whether the payment succeeded or failed is what Stripe says now, not what the event says.
    """
    payment_intent = stripe_client().v1.payment_intents.retrieve(payment_intent_id).to_dict()
    purpose = _get(payment_intent, "metadata", "mcpb_purpose")
    if purpose not in PURPOSES:
        return ignored("not a collection or top-up payment")
    status = payment_intent.get("status")
    if status == "succeeded":
        payment_intent_succeeded(payment_intent=payment_intent)
    elif status in FAILED_PAYMENT and payment_intent.get("last_payment_error"):
        payment_intent_failed(payment_intent=payment_intent)
    else:
        return ignored(f"{purpose} payment {status}")
    return Outcome(done=True, note=f"{purpose} {status}")
