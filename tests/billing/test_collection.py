"""Pay-as-you-go collection and auto top-up: off-session PaymentIntents at the emulator."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import BillingModel, CreditAccount, OutboxMessage, Payment
from billing.services.calls import call_authorize, call_capture
from billing.services.collection import (
    collection_check,
    collections_sweep,
    payment_intent_failed,
    payment_intent_succeeded,
)
from billing.services.ledger import credit_grant
from billing.services.outbox import customer_stripe_id, outbox_dispatch
from billing.tasks import outbox_dispatch as outbox_dispatch_task
from customers.models import Customer
from mcpbilling.errors import ApplicationError
from mcpbilling.stripe_api import stripe_client
from tests.billing.test_outbox import stripe_customer_link
from tests.factories import CreditPackFactory, PlanFactory, customer, priced_tool

pytestmark = pytest.mark.django_db

CENT = 1_000_000


def with_card(owner: Customer, card: str = "pm_card_visa") -> Customer:
    """The customer with a Stripe customer whose default card is ``card``."""
    stripe_id = stripe_customer_link(owner)
    client = stripe_client()
    method = client.v1.payment_methods.attach(card, {"customer": stripe_id})
    client.v1.customers.update(
        stripe_id, {"invoice_settings": {"default_payment_method": method.id}}
    )
    Customer.objects.filter(pk=owner.pk).update(has_payment_method=True)
    return Customer.objects.get(pk=owner.pk)


def payg_customer(*, threshold_cents=100, card="pm_card_visa") -> Customer:
    plan = PlanFactory(
        slug="payg",
        billing_model=BillingModel.PER_CALL,
        collection_threshold_microcents=threshold_cents * CENT,
    )
    return with_card(customer(plan=plan), card)


def calls(owner: Customer, count: int, *, cents: float) -> None:
    tool = priced_tool(f"tool_{int(cents * 10_000)}", cents=cents)
    for _ in range(count):
        call_capture(hold_id=call_authorize(customer=owner, tool=tool).pk)


def unbilled(owner: Customer) -> int:
    return CreditAccount.objects.get(customer=owner).unbilled_microcents


def intents(emulator, owner: Customer) -> list[dict]:
    stripe_id = customer_stripe_id(owner)
    return emulator.store.all("payment_intent", lambda pi: pi["customer"] == stripe_id)


def test_unbilled_past_the_threshold_is_collected_once_in_whole_cents(stripe_emulated):
    owner = payg_customer(threshold_cents=100)
    calls(owner, 3, cents=30.1234)
    assert collections_sweep() == 0  # 90.37 cents: under the threshold
    calls(owner, 1, cents=30.1234)

    assert collections_sweep() == 1
    assert collections_sweep() == 0  # one collection at a time
    payment = Payment.objects.get(customer=owner)
    assert (payment.amount_cents, payment.covered_microcents) == (120, 120 * CENT)
    assert unbilled(owner) == 4 * 30_123_400 - 120 * CENT  # the sub-cent remainder stays

    outbox_dispatch()

    (intent,) = intents(stripe_emulated, owner)  # four calls, one PaymentIntent
    assert (intent["amount"], intent["currency"], intent["status"]) == (120, "usd", "succeeded")
    assert intent["metadata"] == {
        "mcpb_purpose": "collection",
        "mcpb_customer_id": str(owner.pk),
        "mcpb_payment_id": str(payment.pk),
    }
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_payment_intent_id == intent["id"]
    row = OutboxMessage.objects.get(kind=OutboxMessage.Kind.PAYMENT)
    assert (row.status, row.stripe_id) == (OutboxMessage.Status.SENT, intent["id"])
    assert unbilled(owner) == 4 * 30_123_400 - 120 * CENT


def test_a_declined_card_makes_the_customer_past_due_and_gives_the_amount_back(stripe_emulated):
    owner = payg_customer(threshold_cents=60, card="pm_card_chargeCustomerFail")
    calls(owner, 2, cents=33)
    assert collections_sweep() == 1
    assert unbilled(owner) == 0

    outbox_dispatch()

    payment = Payment.objects.get(customer=owner)
    assert payment.status == Payment.Status.FAILED and payment.failure_code
    assert unbilled(owner) == 66 * CENT
    owner.refresh_from_db()
    assert owner.status == Customer.Status.PAST_DUE and owner.has_payment_method
    with pytest.raises(ApplicationError) as refused:
        call_authorize(customer=owner, tool=priced_tool("tool_330000"))
    assert refused.value.code == "payment_failed"
    assert collections_sweep() == 0  # no retry storm while past due


def test_never_less_than_stripes_minimum_charge(stripe_emulated):
    owner = payg_customer(threshold_cents=10)
    calls(owner, 49, cents=1)
    assert collection_check(customer_id=owner.pk) is None
    assert collection_check(customer_id=owner.pk, at_period_end=True) is None
    calls(owner, 1, cents=1)
    assert collection_check(customer_id=owner.pk).amount_cents == 50


def test_the_period_end_collects_what_is_under_the_threshold(stripe_emulated):
    owner = payg_customer(threshold_cents=10_000)
    calls(owner, 3, cents=25.5)
    assert collections_sweep() == 0
    assert collections_sweep(now=owner.period_end + timedelta(seconds=1)) == 1
    assert Payment.objects.get(customer=owner).amount_cents == 76


def _intent(payment: Payment, **fields) -> dict:
    return {
        "id": "pi_callback",
        "metadata": {"mcpb_payment_id": str(payment.pk)},
        **fields,
    }


@pytest.mark.parametrize(
    "order",
    [
        ("succeeded", "succeeded", "failed"),
        ("failed", "succeeded", "failed", "succeeded"),
        ("failed", "failed", "succeeded"),
    ],
)
def test_callbacks_are_idempotent_and_success_wins_in_any_order(stripe_emulated, order):
    owner = payg_customer(threshold_cents=100)
    calls(owner, 2, cents=60.5)
    payment = collection_check(customer_id=owner.pk)
    left = unbilled(owner)
    declined = {"last_payment_error": {"code": "card_declined", "decline_code": "generic"}}

    for event in order:
        if event == "succeeded":
            payment_intent_succeeded(payment_intent=_intent(payment, status="succeeded"))
        else:
            payment_intent_failed(payment_intent=_intent(payment, **declined))

    payment.refresh_from_db()
    owner.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.failure_code
    assert unbilled(owner) == left  # taken once, whatever came in between
    assert owner.status == Customer.Status.ACTIVE


def test_a_failure_alone_settles_once(stripe_emulated):
    owner = payg_customer(threshold_cents=100)
    calls(owner, 2, cents=60.5)
    payment = collection_check(customer_id=owner.pk)
    declined = _intent(payment, last_payment_error={"code": "card_declined"})
    for _ in range(3):
        payment_intent_failed(payment_intent=declined)
    assert unbilled(owner) == 121 * CENT
    assert Payment.objects.get(pk=payment.pk).failure_code == "card_declined"


def test_auto_topup_charges_the_pack_and_grants_it_once(stripe_emulated):
    pack = CreditPackFactory(credits=100, price_cents=900)
    plan = PlanFactory(
        billing_model=BillingModel.CREDITS, auto_topup_threshold_credits=10, auto_topup_pack=pack
    )
    owner = with_card(customer(plan=plan))
    credit_grant(customer_id=owner.pk, credits=12, idempotency_key="seed")
    calls(owner, 1, cents=1)  # 11 left: above the threshold
    assert collections_sweep() == 0
    calls(owner, 2, cents=1)  # 9 left

    assert collections_sweep() == 1
    assert collections_sweep() == 0  # one top-up at a time
    outbox_dispatch_task.delay().get()  # the beat task: sweep, then send

    payment = Payment.objects.get(customer=owner)
    assert (payment.purpose, payment.status, payment.amount_cents) == ("topup", "succeeded", 900)
    (intent,) = intents(stripe_emulated, owner)
    assert intent["amount"] == 900 and intent["metadata"]["mcpb_purpose"] == "topup"
    payment_intent_succeeded(payment_intent=intent)  # the webhook, after the sender
    assert CreditAccount.objects.get(customer=owner).balance_credits == 109
    assert collections_sweep() == 0


def test_a_customer_without_a_default_card_fails_without_a_charge(stripe_emulated):
    plan = PlanFactory(billing_model=BillingModel.PER_CALL, collection_threshold_microcents=CENT)
    owner = customer(plan=plan, has_payment_method=True)
    stripe_customer_link(owner)
    calls(owner, 1, cents=75)
    collections_sweep()

    outbox_dispatch(now=timezone.now())

    payment = Payment.objects.get(customer=owner)
    assert (payment.status, payment.failure_code) == ("failed", "payment_method_missing")
    assert intents(stripe_emulated, owner) == [] and unbilled(owner) == 75 * CENT
