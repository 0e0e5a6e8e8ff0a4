"""/billing/invoices/: subscription invoices and pack payments from dj-stripe's mirror."""

from __future__ import annotations

import re

import pytest

from tests.billing.stripe_documents import pack_payment, subscription_invoice
from tests.factories import CreditPackFactory, signed_in_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, stripe_emulated):
    return signed_in_customer(client, "ada@example.com")


def test_lists_invoices_and_payments_newest_first_with_their_links(client, owner, stripe_emulated):
    CreditPackFactory(slug="starter", name="Starter", credits=500, price_cents=500)
    payment = pack_payment(owner)
    invoice = subscription_invoice(owner, cents=2900)

    page = client.get("/billing/invoices/").content.decode()

    rows = re.findall(r'<tr id="(invoice|payment)-([\w]+)">', page)
    assert rows == [("invoice", invoice.id), ("payment", payment.id)]
    assert "$29.00" in page and invoice.number in page
    assert "Starter credit pack (500 credits)" in page and "$5.00" in page
    assert f'href="/billing/invoices/{invoice.id}/"' in page
    assert f'href="/billing/receipts/{payment.id}/"' in page


def test_document_links_lead_to_stripes_pages(client, owner, stripe_emulated):
    payment = pack_payment(owner)
    invoice = subscription_invoice(owner)

    to_invoice = client.get(f"/billing/invoices/{invoice.id}/")
    to_receipt = client.get(f"/billing/receipts/{payment.id}/")

    assert to_invoice.status_code == 302
    assert to_invoice["Location"] == f"{stripe_emulated.url}/i/{invoice.id}"
    assert to_receipt.status_code == 302
    assert to_receipt["Location"] == f"{stripe_emulated.url}/r/{payment.id}"
    # The emulator's invoices have no PDF: no link, and the PDF address is a 404.
    assert client.get(f"/billing/invoices/{invoice.id}/pdf/").status_code == 404


def test_payments_of_invoices_are_not_listed_twice(client, owner, stripe_emulated):
    subscription_invoice(owner)

    page = client.get("/billing/invoices/").content.decode()

    assert len(re.findall(r'<tr id="(?:invoice|payment)-', page)) == 1


def test_without_documents_the_page_says_so(client, owner):
    page = client.get("/billing/invoices/").content.decode()

    assert "No invoices or payments yet" in page


def test_the_portal_link_opens_stripes_portal(client, owner, stripe_emulated):
    response = client.get("/billing/portal/")

    assert response.status_code == 303
    assert response["Location"].startswith(f"{stripe_emulated.url}/p/session/")
