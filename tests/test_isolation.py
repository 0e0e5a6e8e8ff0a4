"""A customer sees only their own data: B, signed in, asks for each of A's objects by id
on every page and download, and gets 404 (or nothing of A's), never A's data."""

from __future__ import annotations

import pytest
from django.test import Client

from billing.services.calls import call_authorize, call_capture
from billing.services.ledger import credit_grant
from customers.models import ApiKey
from tests.billing.stripe_documents import pack_payment, subscription_invoice
from tests.factories import CreditPackFactory, api_key, priced_tool, signed_in_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(stripe_emulated):
    """A with a key, a call, an invoice and a payment; B signed in with a call of its own."""
    CreditPackFactory(slug="starter", name="Starter", credits=500, price_cents=500)
    tool = priced_tool("calculate", credits=1)
    a_client, b_client = Client(), Client()
    a = signed_in_customer(a_client, "alice@example.com")
    b = signed_in_customer(b_client, "bob@example.com")
    for owner in (a, b):
        credit_grant(customer_id=owner.pk, credits=10, idempotency_key=f"seed:{owner.pk}")
    a_key = api_key(a, name="alice-secret-key").api_key
    b_key = api_key(b, name="bob key").api_key
    a_usage = call_capture(hold=call_authorize(customer=a, tool=tool, api_key=a_key)).usage
    b_usage = call_capture(hold=call_authorize(customer=b, tool=tool, api_key=b_key)).usage
    return {
        "a": a_client,
        "b": b_client,
        "a_key": a_key,
        "a_usage": a_usage,
        "b_usage": b_usage,
        "a_invoice": subscription_invoice(a),
        "a_payment": pack_payment(a),
    }


def _urls(world) -> dict[str, str]:
    key, usage = world["a_key"], world["a_usage"]
    invoice, payment = world["a_invoice"], world["a_payment"]
    return {
        "usage receipt": f"/usage/{usage.pk}/",
        "usage filtered by A's key": f"/usage/?api_key={key.pk}",
        "export filtered by A's key": f"/usage/export.csv?api_key={key.pk}",
        "invoice": f"/billing/invoices/{invoice.id}/",
        "invoice PDF": f"/billing/invoices/{invoice.id}/pdf/",
        "receipt": f"/billing/receipts/{payment.id}/",
    }


def test_a_reaches_each_of_its_own_objects(world):
    """The addresses below are real: A gets them (so B's 404 means isolation, not typos)."""
    urls = _urls(world)
    for name in ("usage receipt", "usage filtered by A's key", "export filtered by A's key"):
        assert world["a"].get(urls[name]).status_code == 200, name
    for name in ("invoice", "receipt"):
        assert world["a"].get(urls[name]).status_code == 302, name


def test_b_gets_404_for_each_of_as_objects_by_id(world):
    for name, url in _urls(world).items():
        response = world["b"].get(url)
        assert response.status_code == 404, name
        assert str(world["a_usage"].pk) not in response.content.decode(), name
        assert "alice" not in response.content.decode(), name


@pytest.mark.parametrize("action", ["rotate", "revoke"])
def test_b_cannot_rotate_or_revoke_as_key(world, action):
    key = world["a_key"]

    response = world["b"].post(f"/keys/{key.pk}/{action}/")

    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert ApiKey.objects.filter(customer=key.customer).count() == 1


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/",
        "/keys/",
        "/usage/",
        "/usage/export.csv",
        "/billing/invoices/",
        "/billing/credits/",
        "/connect/",
    ],
)
def test_bs_own_pages_and_downloads_show_nothing_of_as(world, path):
    response = world["b"].get(path)

    assert response.status_code == 200
    body = (
        b"".join(response.streaming_content) if response.streaming else response.content
    ).decode()
    for secret in (
        str(world["a_usage"].pk),
        world["a_key"].prefix,
        "alice",
        world["a_invoice"].id,
        world["a_payment"].id,
    ):
        assert secret not in body, (path, secret)
    if path in ("/usage/", "/usage/export.csv", "/dashboard/"):
        assert str(world["b_usage"].pk) in body or world["b_usage"].tool.name in body
