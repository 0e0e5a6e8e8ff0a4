"""Clients of the emulator (tests/conftest.py runs it) and a webhook receiver."""

import httpx
import pytest

from mcpbilling.stripe_emulator.testing import webhook_receiver


@pytest.fixture
def client(emulator):
    """A stripe.StripeClient pointed at the emulator, without retries."""
    return emulator.client(max_network_retries=0)


@pytest.fixture
def http(emulator):
    """A plain HTTP client for the helpers and hosted pages."""
    with httpx.Client(base_url=emulator.url, timeout=5) as session:
        yield session


@pytest.fixture
def receiver():
    """A local webhook receiver."""
    with webhook_receiver() as found:
        yield found


@pytest.fixture
def paying_customer(client):
    """A customer whose default card is a Visa that pays."""
    cus = client.v1.customers.create({"email": "payer@example.com", "name": "Payer"})
    pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    return client.v1.customers.update(
        cus.id, {"invoice_settings": {"default_payment_method": pm.id}}
    )


@pytest.fixture
def monthly_price(client):
    """A $20/month licensed price of a "Pro" product."""
    product = client.v1.products.create({"name": "Pro"})
    return client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
        }
    )
