"""subscriptions/ (cancel through Stripe), invoices/ and payments/ from dj-stripe's mirror.

Stripe is the emulator over real HTTP; what it answers is mirrored by dj-stripe.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from djstripe import models as dj

from mcpbilling.stripe_api import stripe_client
from tests.api.conftest import API, error_of
from tests.factories import customer

pytestmark = pytest.mark.django_db


def _mirror(model, remote) -> None:
    """Into dj-stripe's mirror as its webhook handlers do it: from the stripe object."""
    model.sync_from_stripe_data(remote, api_key=settings.STRIPE_SECRET_KEY)


@pytest.fixture
def subscribed(stripe_emulated):
    """Our customer with a paid $20/month Stripe subscription, mirrored."""
    client = stripe_client()
    cus = client.v1.customers.create({"email": "sub@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": pm.id}})
    product = client.v1.products.create({"name": "Pro"})
    price = client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    owner = customer("sub@example.com", subscription_status="active")
    owner.stripe_customer_id = cus.id
    owner.save(update_fields=["stripe_customer"])
    _mirror(dj.Customer, client.v1.customers.retrieve(cus.id))
    _mirror(dj.Subscription, sub)
    _mirror(dj.Invoice, client.v1.invoices.retrieve(sub.latest_invoice))
    payment = client.v1.payment_intents.create(
        {
            "amount": 1234,
            "currency": "usd",
            "customer": cus.id,
            "payment_method": pm.id,
            "confirm": True,
            "off_session": True,
        }
    )
    _mirror(dj.PaymentIntent, payment)
    return owner, sub, price, payment


def test_subscriptions_invoices_and_payments_are_listed_for_our_customer(api, subscribed):
    owner, sub, price, payment = subscribed
    subs = api.get(f"{API}subscriptions/", {"customer": owner.pk}).json()["results"]
    assert [row["id"] for row in subs] == [sub.id]
    assert subs[0]["customer"] == str(owner.pk) and subs[0]["status"] == "active"
    assert subs[0]["price"] == price.id and subs[0]["current_period_end"].endswith("Z")
    assert api.get(f"{API}subscriptions/{sub.id}/").json()["cancel_at_period_end"] is False
    invoices = api.get(f"{API}invoices/", {"customer": owner.pk}).json()["results"]
    assert len(invoices) == 1
    assert (invoices[0]["status"], invoices[0]["amount_paid_decimal"]) == ("paid", "2000")
    assert invoices[0]["subscription"] == sub.id
    payments = api.get(f"{API}payments/", {"customer": owner.pk}).json()["results"]
    assert [(row["id"], row["amount_decimal"], row["status"]) for row in payments] == [
        (payment.id, "1234", "succeeded")
    ]
    assert api.get(f"{API}invoices/", {"status": "open"}).json()["results"] == []
    assert api.get(f"{API}subscriptions/", {"customer": customer().pk}).json()["results"] == []


def test_cancelling_at_period_end_goes_through_stripe(api, subscribed, stripe_emulated):
    _, sub, _, _ = subscribed
    response = api.post(
        f"{API}subscriptions/{sub.id}/cancel/", {"at_period_end": True}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["cancel_at_period_end"] is True
    assert stripe_client().v1.subscriptions.retrieve(sub.id).cancel_at_period_end is True


def test_cancelling_now_ends_it_at_stripe_and_a_second_time_is_refused(api, subscribed):
    _, sub, _, _ = subscribed
    response = api.post(f"{API}subscriptions/{sub.id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert stripe_client().v1.subscriptions.retrieve(sub.id).status == "canceled"
    again = api.post(f"{API}subscriptions/{sub.id}/cancel/")
    assert again.status_code == 409 and error_of(again)["code"] == "subscription_ended"


def test_stripe_down_is_a_503_that_changes_nothing(api, subscribed, settings):
    _, sub, _, _ = subscribed
    settings.STRIPE_API_HOST = "http://127.0.0.1:9"  # nothing listens there
    response = api.post(f"{API}subscriptions/{sub.id}/cancel/")
    assert response.status_code == 503 and error_of(response)["code"] == "stripe_unavailable"
    assert dj.Subscription.objects.get(id=sub.id).stripe_data["status"] == "active"


def test_unknown_subscriptions_are_404_and_viewers_cannot_cancel(api, viewer, subscribed):
    _, sub, _, _ = subscribed
    assert api.post(f"{API}subscriptions/sub_missing/cancel/").status_code == 404
    assert viewer.get(f"{API}subscriptions/").status_code == 200
    assert viewer.post(f"{API}subscriptions/{sub.id}/cancel/").status_code == 403
