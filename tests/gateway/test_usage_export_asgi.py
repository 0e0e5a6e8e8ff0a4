"""/usage/export.csv under the ASGI server: streamed in chunks, not read into memory first."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from django.test import Client

from billing.services.calls import call_authorize, call_capture
from billing.services.ledger import credit_grant
from tests.factories import priced_tool, signed_in_customer

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_export_streams_every_row_in_batches(site, monkeypatch):
    from billing.views import usage as usage_views

    monkeypatch.setattr(usage_views, "EXPORT_BATCH", 10)
    browser = Client()
    owner = signed_in_customer(browser, "ada@example.com")
    credit_grant(customer_id=owner.pk, credits=100, idempotency_key="seed")
    tool = priced_tool("calculate", credits=1)
    made = {
        str(call_capture(hold=call_authorize(customer=owner, tool=tool)).usage.pk)
        for _ in range(35)
    }

    cookies = {"sessionid": browser.cookies["sessionid"].value}
    with httpx.stream("GET", f"{site}/usage/export.csv", cookies=cookies, timeout=30) as response:
        chunks = list(response.iter_raw())
        headers = response.headers

    assert response.status_code == 200
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert "content-length" not in headers  # streamed: chunked transfer
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert {row["receipt_id"] for row in rows} == made
