"""Credit packs and subscriptions bought through the emulator's Checkout, end to end.

The emulator delivers signed webhooks over HTTP to the site in a live server;
dj-stripe verifies and stores them, our handlers apply them.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from billing.models import BillingModel, LedgerEntry, PaymentPath, Plan
from billing.services.calls import call_authorize, call_capture
from customers.models import Customer
from tests.factories import CreditPackFactory, PlanFactory, priced_tool
from tests.webhooks.support import balance
from webhooks.models import CheckoutGrant, EventProcessing

pytestmark = pytest.mark.django_db(transaction=True)


def _checkout(client, path: str, **form) -> str:
    """POST one of our billing pages; returns the Checkout Session id it redirected to."""
    response = client.post(path, form)
    assert response.status_code == 303
    return response["Location"].rsplit("/", 1)[1]


def _flush_reversed(emulator_http) -> None:
    """Deliver the held webhooks newest first, then deliver as usual again."""
    emulator_http.post(
        "/_emulator/deliveries/flush", params={"order": "reverse"}
    ).raise_for_status()
    emulator_http.post("/_emulator/webhooks/resume").raise_for_status()


def settle(emulator) -> None:
    """Wait until the emulator has delivered everything queued (held deliveries aside)."""
    emulator.wait_idle(timeout=30)


def _processed(event_type: str) -> list[EventProcessing]:
    return list(EventProcessing.objects.filter(type=event_type))


def test_credit_pack_granted_once_despite_three_out_of_order_deliveries(
    site, shopper, client, emulator, emulator_http
):
    pack = CreditPackFactory(credits=100, price_cents=1000, expires_after_days=30)
    session_id = _checkout(client, "/billing/credits/", pack=pack.slug)

    emulator_http.post("/_emulator/webhooks/pause").raise_for_status()
    page = emulator_http.post(
        f"/c/pay/{session_id}",
        data={
            "email": shopper.email,
            "card_number": "4242424242424242",
            "exp": "12/40",
            "cvc": "123",
            "name": "Shopper",
        },
    )
    assert (
        page.status_code == 303 and "/billing/credits/?return=success" in page.headers["location"]
    )
    completed = emulator.events("checkout.session.completed")[0]
    for _ in range(2):
        emulator_http.post(f"/_emulator/events/{completed['id']}/resend").raise_for_status()
    _flush_reversed(emulator_http)
    settle(emulator)

    assert len(emulator.deliveries("checkout.session.completed")) == 3
    assert balance(shopper) == 100
    grant = LedgerEntry.objects.get(idempotency_key=f"checkout:{session_id}")
    assert grant.lot.expires_at is not None
    assert [p.status for p in _processed("checkout.session.completed")] == ["succeeded"]
    assert CheckoutGrant.objects.get(session_id=session_id).payment_intent_id.startswith("pi_")
    # The card was saved for off-session payments.
    shopper.refresh_from_db()
    assert shopper.has_payment_method


def test_declined_card_grants_nothing(site, shopper, client, emulator, emulator_http):
    pack = CreditPackFactory(credits=100, price_cents=1000)
    session_id = _checkout(client, "/billing/credits/", pack=pack.slug)

    declined = emulator_http.post(f"/_emulator/checkout/{session_id}/decline", json={})
    settle(emulator)

    assert declined.status_code == 402
    assert balance(shopper) == 0
    assert not CheckoutGrant.objects.exists()
    assert not _processed("checkout.session.completed")


def test_refund_reverses_the_unspent_credits(site, shopper, client, emulator, emulator_http):
    pack = CreditPackFactory(credits=100, price_cents=1000)
    session_id = _checkout(client, "/billing/credits/", pack=pack.slug)
    emulator_http.post(f"/_emulator/checkout/{session_id}/pay", json={}).raise_for_status()
    settle(emulator)
    tool = priced_tool("thirty", credits=30)
    call_capture(hold=call_authorize(customer=shopper, tool=tool))
    assert balance(shopper) == 70

    payment_intent = CheckoutGrant.objects.get(session_id=session_id).payment_intent_id
    emulator.client().v1.refunds.create({"payment_intent": payment_intent})
    settle(emulator)

    assert balance(shopper) == 0
    reversal = LedgerEntry.objects.get(kind=LedgerEntry.Kind.REVERSAL)
    assert reversal.amount_credits == -70
    assert [p.status for p in _processed("charge.refunded")] == ["succeeded"]


@pytest.fixture
def pro_plan(stripe_emulated) -> Plan:
    """A $20/month subscription plan with 2 included calls, synced to Stripe, and a free plan."""
    PlanFactory(slug="free", billing_model=BillingModel.FREEMIUM, free_calls=5)
    plan = PlanFactory(
        slug="pro", billing_model=BillingModel.SUBSCRIPTION, price_cents=2000, included_calls=2
    )
    call_command("stripe_sync_catalog", stdout=open("/dev/null", "w"))  # noqa: SIM115
    plan.refresh_from_db()
    assert plan.stripe_price_id.startswith("price_")
    return plan


def _subscribe(client, emulator, emulator_http, plan: Plan) -> str:
    session_id = _checkout(client, "/billing/plans/", plan=plan.slug)
    paid = emulator_http.post(f"/_emulator/checkout/{session_id}/pay", json={})
    paid.raise_for_status()
    settle(emulator)
    return paid.json()["subscription"]


def test_subscription_through_checkout_then_cancel_in_the_portal(
    site, shopper, client, emulator, emulator_http, pro_plan
):
    subscription_id = _subscribe(client, emulator, emulator_http, pro_plan)

    shopper.refresh_from_db()
    assert (shopper.plan, shopper.subscription_status, shopper.status) == (
        pro_plan,
        "active",
        "active",
    )
    item = emulator.client().v1.subscriptions.retrieve(subscription_id)["items"].data[0]
    assert int(shopper.period_start.timestamp()) == item.current_period_start
    assert int(shopper.period_end.timestamp()) == item.current_period_end
    hold = call_authorize(customer=shopper, tool=priced_tool("echo", credits=None))
    assert hold.path == PaymentPath.INCLUDED
    call_capture(hold=hold)

    portal = client.post("/billing/portal/")
    assert portal.status_code == 303
    page = emulator_http.post(
        portal["Location"].removeprefix(emulator.url),
        data={"action": "cancel", "subscription": subscription_id},
    )
    assert page.status_code == 303
    settle(emulator)
    shopper.refresh_from_db()
    assert shopper.plan == pro_plan  # cancelled at period end: still subscribed until then

    emulator_http.post(f"/_emulator/subscriptions/{subscription_id}/advance").raise_for_status()
    settle(emulator)
    shopper.refresh_from_db()
    assert shopper.plan.slug == "free"
    assert shopper.subscription_status == "canceled"


def test_failed_renewal_makes_the_customer_past_due_until_paid(
    site, shopper, client, emulator, emulator_http, pro_plan
):
    subscription_id = _subscribe(client, emulator, emulator_http, pro_plan)
    shopper.refresh_from_db()
    stripe = emulator.client()
    failing = stripe.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", {"customer": shopper.stripe_customer_id}
    )
    stripe.v1.subscriptions.update(subscription_id, {"default_payment_method": failing.id})

    advanced = emulator_http.post(f"/_emulator/subscriptions/{subscription_id}/advance").json()
    settle(emulator)
    shopper.refresh_from_db()
    assert (shopper.status, shopper.subscription_status) == ("past_due", "past_due")

    stripe.v1.invoices.pay(advanced["invoice"]["id"], {"payment_method": "pm_card_visa"})
    settle(emulator)
    shopper.refresh_from_db()
    assert (shopper.status, shopper.subscription_status) == ("active", "active")


def test_subscription_ended_before_its_events_arrive_never_starts(
    site, shopper, client, emulator, emulator_http, pro_plan
):
    emulator_http.post("/_emulator/webhooks/pause").raise_for_status()
    session_id = _checkout(client, "/billing/plans/", plan=pro_plan.slug)
    paid = emulator_http.post(f"/_emulator/checkout/{session_id}/pay", json={})
    emulator.client().v1.subscriptions.cancel(paid.json()["subscription"])
    _flush_reversed(emulator_http)
    settle(emulator)

    # "created" and "checkout.session.completed" came last, but Stripe says it is over.
    shopper.refresh_from_db()
    assert shopper.plan.slug == "credits"
    assert shopper.subscription_status == ""
    assert {p.status for p in _processed("customer.subscription.created")} == {"ignored"}


def test_plan_changes_delivered_newest_first_converge_to_stripe(
    site, shopper, client, emulator, emulator_http, pro_plan
):
    team, scale = (
        PlanFactory(slug=slug, billing_model=BillingModel.SUBSCRIPTION, price_cents=cents)
        for slug, cents in (("team", 5000), ("scale", 9000))
    )
    call_command("stripe_sync_catalog", stdout=open("/dev/null", "w"))  # noqa: SIM115
    team.refresh_from_db()
    scale.refresh_from_db()
    subscription_id = _subscribe(client, emulator, emulator_http, pro_plan)
    stripe = emulator.client()
    item_id = stripe.v1.subscriptions.retrieve(subscription_id)["items"].data[0].id

    emulator_http.post("/_emulator/webhooks/pause").raise_for_status()
    for price in (team.stripe_price_id, scale.stripe_price_id):
        stripe.v1.subscriptions.update(
            subscription_id, {"items": [{"id": item_id, "price": price}]}
        )
    _flush_reversed(emulator_http)
    settle(emulator)

    # The change to team arrived last; the subscription at Stripe (scale) wins.
    shopper.refresh_from_db()
    assert shopper.plan == scale
    assert {p.status for p in _processed("customer.subscription.updated")} == {"succeeded"}
    assert len(_processed("customer.subscription.updated")) == 2


def test_reprocessing_every_event_changes_nothing(
    site, shopper, client, emulator, emulator_http, pro_plan
):
    pack = CreditPackFactory(credits=50, price_cents=500)
    session_id = _checkout(client, "/billing/credits/", pack=pack.slug)
    emulator_http.post(f"/_emulator/checkout/{session_id}/pay", json={}).raise_for_status()
    _subscribe(client, emulator, emulator_http, pro_plan)
    before = Customer.objects.values().get(pk=shopper.pk)
    entries = LedgerEntry.objects.count()

    from webhooks.services import event_process

    for processing in EventProcessing.objects.all():
        EventProcessing.objects.filter(pk=processing.pk).update(status="pending")
        event_process(event_id=processing.event_id)

    after = Customer.objects.values().get(pk=shopper.pk)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }
    assert LedgerEntry.objects.count() == entries
    assert not EventProcessing.objects.filter(status="failed").exists()


def test_the_subscription_invoice_and_a_pack_payment_reach_the_invoices_page(
    site, shopper, client, emulator, emulator_http, pro_plan
):
    """dj-stripe mirrors what the webhooks carry; the invoices page reads the mirror."""
    pack = CreditPackFactory(name="Starter", credits=100, price_cents=1000)
    session_id = _checkout(client, "/billing/credits/", pack=pack.slug)
    emulator_http.post(f"/_emulator/checkout/{session_id}/pay", json={}).raise_for_status()
    _subscribe(client, emulator, emulator_http, pro_plan)

    page = client.get("/billing/invoices/").content.decode()

    assert page.count('<tr id="invoice-in_') == 1 and "$20.00" in page
    assert page.count('<tr id="payment-ch_') == 1 and "Starter credit pack" in page
    assert "$10.00" in page
