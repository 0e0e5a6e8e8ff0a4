"""A customer's invoice and payment at the emulator, mirrored by dj-stripe as webhooks would."""

from __future__ import annotations

from django.conf import settings
from djstripe import models as dj

from billing.services.stripe_catalog import stripe_customer_ensure
from customers.models import Customer
from mcpbilling.stripe_api import stripe_client


def _mirror(model, obj) -> None:
    """As dj-stripe's webhook handler does: the object as the stripe library returned it
    (dj-stripe iterates an invoice's ``lines`` as stripe's list object, not as JSON)."""
    model.sync_from_stripe_data(obj, api_key=settings.STRIPE_SECRET_KEY)


def paying(owner: Customer) -> str:
    """The customer's Stripe customer, with a default Visa; returns its id."""
    client = stripe_client()
    stripe_id = stripe_customer_ensure(customer=owner)
    card = client.v1.payment_methods.attach("pm_card_visa", {"customer": stripe_id})
    client.v1.customers.update(stripe_id, {"invoice_settings": {"default_payment_method": card.id}})
    _mirror(dj.PaymentMethod, client.v1.payment_methods.retrieve(card.id))
    return stripe_id


def subscription_invoice(owner: Customer, *, cents: int = 2900):
    """A paid subscription invoice of ``cents`` a month, mirrored; returns Stripe's invoice."""
    client = stripe_client()
    stripe_id = owner.stripe_customer_id or paying(owner)
    product = client.v1.products.create({"name": "Pro"})
    price = client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount": cents,
            "recurring": {"interval": "month"},
        }
    )
    sub = client.v1.subscriptions.create({"customer": stripe_id, "items": [{"price": price.id}]})
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    _mirror(dj.Invoice, invoice)
    return invoice


def pack_payment(owner: Customer, *, cents: int = 500, pack: str = "starter"):
    """A credit pack paid (as Checkout pays it), mirrored; returns the charge."""
    client = stripe_client()
    stripe_id = owner.stripe_customer_id or paying(owner)
    customer = client.v1.customers.retrieve(stripe_id)
    metadata = {"mcpb_customer_id": str(owner.pk), "mcpb_pack": pack}
    intent = client.v1.payment_intents.create(
        {
            "amount": cents,
            "currency": "usd",
            "customer": stripe_id,
            "confirm": True,
            "payment_method": customer.invoice_settings.default_payment_method,
            "metadata": metadata,
        }
    )
    charge = client.v1.charges.retrieve(intent.latest_charge)
    _mirror(dj.Charge, charge)
    return charge
