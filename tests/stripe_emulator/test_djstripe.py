"""dj-stripe accepts the emulated objects: ``sync_from_stripe_data`` through STRIPE_API_HOST."""

import json

import pytest
import stripe
from djstripe import models as dj

pytestmark = pytest.mark.django_db

# dj-stripe only accepts keys like ^(pk|sk|rk)_(test|live)_[a-zA-Z0-9]{24,}$.
KEY = "sk_test_EmulatorKey000000000000000000"


@pytest.fixture
def djstripe_on_emulator(settings, emulator, monkeypatch):
    """dj-stripe on the emulator (it copies STRIPE_API_HOST to ``stripe.api_base`` at import)."""
    settings.STRIPE_API_HOST = emulator.url
    settings.STRIPE_TEST_SECRET_KEY = KEY
    settings.STRIPE_SECRET_KEY = KEY
    monkeypatch.setattr(stripe, "api_base", emulator.url)
    monkeypatch.setattr(stripe, "api_key", KEY)
    return emulator


@pytest.fixture
def world(djstripe_on_emulator, client):
    """A customer with a card and subscription, a refunded payment, checkout and a webhook."""
    cus = client.v1.customers.create(
        {
            "email": "dj@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
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
    intent = client.v1.payment_intents.create(
        {
            "amount": 1500,
            "currency": "usd",
            "customer": cus.id,
            "payment_method": cus.invoice_settings.default_payment_method,
            "confirm": True,
        }
    )
    refund = client.v1.refunds.create({"payment_intent": intent.id, "amount": 500})
    once = client.v1.prices.create({"product": product.id, "currency": "usd", "unit_amount": 1000})
    session = client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "customer": cus.id,
            "line_items": [{"price": once.id, "quantity": 1}],
            "success_url": "https://x.example",
        }
    )
    endpoint = client.v1.webhook_endpoints.create(
        {"url": "https://x.example/stripe/webhook/", "enabled_events": ["*"]}
    )
    return {
        "customer": cus.id,
        "product": product.id,
        "price": price.id,
        "subscription": sub.id,
        "invoice": sub.latest_invoice,
        "payment_intent": intent.id,
        "charge": intent.latest_charge,
        "payment_method": intent.payment_method,
        "refund": refund.id,
        "session": session.id,
        "endpoint": endpoint.id,
    }


def _sync(model, stripe_class, object_id):
    data = stripe_class.retrieve(object_id, api_key=KEY)
    return model.sync_from_stripe_data(data, api_key=KEY)


def test_account_is_synced_from_get_v1_account(djstripe_on_emulator):
    account = dj.Account.get_or_retrieve_for_api_key(KEY)
    assert account.id.startswith("acct_")


@pytest.mark.parametrize(
    ("name", "model", "stripe_class"),
    [
        ("customer", dj.Customer, stripe.Customer),
        ("product", dj.Product, stripe.Product),
        ("price", dj.Price, stripe.Price),
        ("payment_method", dj.PaymentMethod, stripe.PaymentMethod),
        ("payment_intent", dj.PaymentIntent, stripe.PaymentIntent),
        ("charge", dj.Charge, stripe.Charge),
        ("refund", dj.Refund, stripe.Refund),
        ("subscription", dj.Subscription, stripe.Subscription),
        ("invoice", dj.Invoice, stripe.Invoice),
        ("session", dj.Session, stripe.checkout.Session),
        ("endpoint", dj.WebhookEndpoint, stripe.WebhookEndpoint),
    ],
)
def test_sync_from_stripe_data_accepts_emulated_objects(world, name, model, stripe_class):
    synced = _sync(model, stripe_class, world[name])
    assert synced.id == world[name]
    assert model.objects.filter(id=world[name]).exists()
    assert synced.livemode is not True  # None where Stripe's shape has no livemode (refunds)


def test_product_sync_reads_its_features_without_a_warning(world, caplog):
    with caplog.at_level("WARNING", logger="djstripe"):
        _sync(dj.Product, stripe.Product, world["product"])
    assert not [r for r in caplog.records if "features" in r.getMessage()]


def test_synced_relations_point_at_the_emulated_objects(world):
    sub = _sync(dj.Subscription, stripe.Subscription, world["subscription"])
    assert sub.customer.id == world["customer"]
    assert sub.status == "active"
    assert [item.price.id for item in sub.items.all()] == [world["price"]]
    charge = _sync(dj.Charge, stripe.Charge, world["charge"])
    assert charge.payment_intent.id == world["payment_intent"]
    assert charge.balance_transaction is not None
    invoice = _sync(dj.Invoice, stripe.Invoice, world["invoice"])
    assert invoice.customer.id == world["customer"]


def test_events_are_accepted(world):
    for event in stripe.Event.list(limit=30, api_key=KEY).data:
        # As a webhook delivers it: a plain dict. dj-stripe reads event.request with
        # isinstance(..., dict), which stripe-python 15's objects are not.
        synced = dj.Event.sync_from_stripe_data(json.loads(str(event)), api_key=KEY)
        assert synced.request_id.startswith("req_")
        assert synced.type == event.type
    assert dj.Event.objects.filter(type="customer.subscription.created").exists()
    assert dj.Event.objects.filter(type="charge.refunded").exists()
