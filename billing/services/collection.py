"""Off-session payments: pay-as-you-go collection and automatic credit top-ups.

A collection moves the unbilled amount (whole cents, rounded down) onto a
``Payment`` in one conditional update, with an outbox row that charges the
saved card; a failed payment gives the amount back and marks the customer
past due. A top-up charges a credit pack and grants its credits once paid.
``payment_intent_succeeded`` and ``payment_intent_failed`` settle a payment
from Stripe's answer, whether it arrives from the sender or a webhook, in any
order and any number of times: success is final, a failure only settles a
payment still pending.
"""

from __future__ import annotations

import logging
from datetime import datetime

import stripe
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from billing.models import (
    MICROCENTS_PER_CENT,
    BillingModel,
    CreditAccount,
    OutboxMessage,
    Payment,
)
from billing.services.ledger import credit_grant
from customers.models import Customer

logger = logging.getLogger(__name__)

# Stripe's smallest card charge in USD, cents.
MIN_CHARGE_CENTS = 50
Purpose = Payment.Purpose
PaymentStatus = Payment.Status


def _payment_start(*, customer: Customer, now: datetime, **fields) -> Payment | None:
    """Create a pending payment and its outbox row; None when one of its purpose is pending."""
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                customer=customer, currency=customer.plan.currency, **fields
            )
            OutboxMessage.objects.create(
                kind=OutboxMessage.Kind.PAYMENT,
                identifier=f"payment:{payment.pk}",
                customer=customer,
                payload={"payment_id": payment.pk, "purpose": payment.purpose},
                next_attempt_at=now,
            )
    except IntegrityError:
        return None
    return payment


@transaction.atomic
def collection_check(
    *, customer_id: int, at_period_end: bool = False, now: datetime | None = None
) -> Payment | None:
    """Start collecting the unbilled usage once it passes the plan's threshold (or the period ends).

    Collects whole cents, never under Stripe's minimum charge; the sub-cent
    remainder stays unbilled. Nothing for a past-due customer or while a
    collection is pending.
    """
    now = now or timezone.now()
    customer = Customer.objects.select_related("plan").get(pk=customer_id)
    plan = customer.plan
    if plan is None or customer.status != Customer.Status.ACTIVE:
        return None
    unbilled = CreditAccount.objects.get(customer_id=customer_id).unbilled_microcents
    threshold = plan.collection_threshold_microcents
    if not at_period_end and (threshold is None or unbilled < threshold):
        return None
    amount_cents = unbilled // MICROCENTS_PER_CENT
    if amount_cents < MIN_CHARGE_CENTS:
        return None
    covered = amount_cents * MICROCENTS_PER_CENT
    if Payment.objects.filter(
        customer_id=customer_id, purpose=Purpose.COLLECTION, status=PaymentStatus.PENDING
    ).exists():
        return None
    if not CreditAccount.objects.filter(
        customer_id=customer_id, unbilled_microcents__gte=covered
    ).update(unbilled_microcents=F("unbilled_microcents") - covered):
        return None
    payment = _payment_start(
        customer=customer,
        now=now,
        purpose=Purpose.COLLECTION,
        amount_cents=amount_cents,
        covered_microcents=covered,
    )
    if payment is None:  # a concurrent check won: undo this reservation
        CreditAccount.objects.filter(customer_id=customer_id).update(
            unbilled_microcents=F("unbilled_microcents") + covered
        )
    return payment


@transaction.atomic
def topup_check(*, customer_id: int, now: datetime | None = None) -> Payment | None:
    """Start an automatic top-up when the available credits fall below the plan's threshold."""
    now = now or timezone.now()
    customer = Customer.objects.select_related("plan__auto_topup_pack").get(pk=customer_id)
    plan = customer.plan
    if (
        plan is None
        or plan.auto_topup_threshold_credits is None
        or plan.auto_topup_pack is None
        or customer.status != Customer.Status.ACTIVE
    ):
        return None
    account = CreditAccount.objects.get(customer_id=customer_id)
    if account.available_credits >= plan.auto_topup_threshold_credits:
        return None
    pack = plan.auto_topup_pack
    return _payment_start(
        customer=customer, now=now, purpose=Purpose.TOPUP, amount_cents=pack.price_cents, pack=pack
    )


def collections_sweep(*, now: datetime | None = None) -> int:
    """Start every collection and top-up that is due; returns how many payments started."""
    now = now or timezone.now()
    accounts = CreditAccount.objects.filter(customer__status=Customer.Status.ACTIVE)
    over_threshold = Q(customer__plan__collection_threshold_microcents__isnull=False) & Q(
        unbilled_microcents__gte=F("customer__plan__collection_threshold_microcents")
    )
    period_over = Q(customer__period_end__lte=now) & Q(
        unbilled_microcents__gte=MIN_CHARGE_CENTS * MICROCENTS_PER_CENT
    )
    started = 0
    for customer_id, period_end in accounts.filter(over_threshold | period_over).values_list(
        "customer_id", "customer__period_end"
    ):
        started += bool(
            collection_check(customer_id=customer_id, at_period_end=period_end <= now, now=now)
        )
    low = accounts.filter(
        customer__plan__billing_model=BillingModel.CREDITS,
        customer__plan__auto_topup_pack__isnull=False,
        customer__plan__auto_topup_threshold_credits__gt=F("balance_credits") - F("held_credits"),
    ).exclude(
        Exists(
            Payment.objects.filter(
                customer_id=OuterRef("customer_id"),
                purpose=Purpose.TOPUP,
                status=PaymentStatus.PENDING,
            )
        )
    )
    for customer_id in low.values_list("customer_id", flat=True):
        started += bool(topup_check(customer_id=customer_id, now=now))
    return started


# --- charging the card -------------------------------------------------------------------
def _default_card(customer: stripe.Customer) -> str:
    settings_ = customer.get("invoice_settings") or {}
    card = settings_.get("default_payment_method")
    return card if isinstance(card, str) else (card or {}).get("id", "")


def payment_charge(
    *, payment_id: int, stripe_customer_id: str, client: stripe.StripeClient
) -> dict:
    """Charge a pending payment off-session on the customer's default card; returns Stripe's answer.

    A decline is an answer (the payment fails); transport errors and Stripe's
    own failures are raised for the outbox to retry. The idempotency key
    ``payment:<id>`` makes a resend return the same PaymentIntent.
    """
    payment = Payment.objects.get(pk=payment_id)
    if payment.status != PaymentStatus.PENDING:
        return {"id": payment.stripe_payment_intent_id, "skipped": payment.status}
    card = _default_card(client.v1.customers.retrieve(stripe_customer_id))
    if not card:
        answer = {
            "metadata": {"mcpb_payment_id": str(payment.pk)},
            "last_payment_error": {
                "code": "payment_method_missing",
                "message": "The customer has no default card.",
            },
        }
        payment_intent_failed(payment_intent=answer)
        return answer
    params = {
        "amount": payment.amount_cents,
        "currency": payment.currency,
        "customer": stripe_customer_id,
        "payment_method": card,
        "confirm": True,
        "off_session": True,
        "metadata": {
            "mcpb_purpose": payment.purpose,
            "mcpb_customer_id": str(payment.customer_id),
            "mcpb_payment_id": str(payment.pk),
        },
    }
    try:
        intent = client.v1.payment_intents.create(
            params, {"idempotency_key": f"payment:{payment.pk}"}
        ).to_dict()
    except stripe.CardError as exc:
        error = (exc.json_body or {}).get("error") or {}
        intent = error.get("payment_intent") or {
            "metadata": params["metadata"],
            "last_payment_error": error,
        }
        payment_intent_failed(payment_intent=intent)
        return intent
    if intent.get("status") == "succeeded":
        payment_intent_succeeded(payment_intent=intent)
    elif intent.get("status") in ("requires_payment_method", "requires_action", "canceled"):
        payment_intent_failed(payment_intent=intent)
    else:  # processing: the webhook settles it
        Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id=intent["id"])
    return intent


# --- settling from Stripe's answer -------------------------------------------------------
def _payment_locked(payment_intent: dict) -> Payment | None:
    metadata = payment_intent.get("metadata") or {}
    payments = Payment.objects.select_for_update()
    if str(metadata.get("mcpb_payment_id", "")).isdigit():
        return payments.filter(pk=int(metadata["mcpb_payment_id"])).first()
    if payment_intent.get("id"):
        return payments.filter(stripe_payment_intent_id=payment_intent["id"]).first()
    return None


@transaction.atomic
def payment_intent_succeeded(*, payment_intent: dict) -> Payment | None:
    """Settle the payment behind a succeeded PaymentIntent (idempotent; success is final)."""
    payment = _payment_locked(payment_intent)
    if payment is None or payment.status == PaymentStatus.SUCCEEDED:
        return payment
    now = timezone.now()
    if payment.status == PaymentStatus.FAILED:
        # A failure gave the amount back and marked the customer past due: undo both.
        if payment.covered_microcents:
            taken = CreditAccount.objects.filter(
                customer_id=payment.customer_id,
                unbilled_microcents__gte=payment.covered_microcents,
            ).update(unbilled_microcents=F("unbilled_microcents") - payment.covered_microcents)
            if not taken:
                logger.error("payment %s succeeded after failing; unbilled too low", payment.pk)
        Customer.objects.filter(pk=payment.customer_id, status=Customer.Status.PAST_DUE).update(
            status=Customer.Status.ACTIVE, updated_at=now
        )
    payment.status = PaymentStatus.SUCCEEDED
    payment.stripe_payment_intent_id = payment_intent.get("id") or payment.stripe_payment_intent_id
    payment.failure_code = payment.failure_message = ""
    payment.settled_at = now
    payment.save()
    if payment.purpose == Purpose.TOPUP and payment.pack is not None:
        credit_grant(
            customer_id=payment.customer_id,
            credits=payment.pack.credits,
            idempotency_key=f"topup:{payment.pk}",
        )
    return payment


@transaction.atomic
def payment_intent_failed(*, payment_intent: dict) -> Payment | None:
    """Fail a pending payment: give a collection's amount back, mark the customer past due."""
    payment = _payment_locked(payment_intent)
    if payment is None or payment.status != PaymentStatus.PENDING:
        return payment
    now = timezone.now()
    error = payment_intent.get("last_payment_error") or {}
    if payment.covered_microcents:
        CreditAccount.objects.filter(customer_id=payment.customer_id).update(
            unbilled_microcents=F("unbilled_microcents") + payment.covered_microcents
        )
    Customer.objects.filter(pk=payment.customer_id, status=Customer.Status.ACTIVE).update(
        status=Customer.Status.PAST_DUE, updated_at=now
    )
    payment.status = PaymentStatus.FAILED
    payment.stripe_payment_intent_id = payment_intent.get("id") or payment.stripe_payment_intent_id
    payment.failure_code = (error.get("decline_code") or error.get("code") or "failed")[:64]
    payment.failure_message = error.get("message") or ""
    payment.settled_at = now
    payment.save()
    return payment
