"""The customer's pages: pricing, dashboard, usage with its CSV, a call's receipt, connect."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import BillingModel, Payment, UsageRecord
from billing.services.calls import call_authorize, call_capture, call_release
from billing.services.ledger import credit_grant
from tests.factories import PlanFactory, api_key, priced_tool, signed_in_customer

pytestmark = pytest.mark.django_db


def _call(owner, tool, *, key=None, ok=True):
    hold = call_authorize(customer=owner, tool=tool, api_key=key)
    settled = call_capture(hold=hold) if ok else call_release(hold=hold, outcome="error")
    return settled.usage


@pytest.fixture
def credits_customer(client):
    owner = signed_in_customer(client, "ada@example.com")
    credit_grant(customer_id=owner.pk, credits=500, idempotency_key=f"seed:{owner.pk}")
    return owner


def test_signed_out_home_is_the_pricing_page_with_plans_and_tool_prices(client):
    PlanFactory(slug="free", name="Free", billing_model=BillingModel.FREEMIUM, free_calls=100)
    PlanFactory(
        slug="pro",
        name="Pro",
        billing_model=BillingModel.SUBSCRIPTION,
        price_cents=2900,
        included_calls=10_000,
    )
    PlanFactory(slug="secret", name="Secret", public=False)
    priced_tool("calculate", cents=1, credits=1)
    priced_tool("hash_text", cents=0.05, credits=1)

    page = client.get("/").content.decode()

    assert "Free" in page and "100 free calls" in page
    assert "$29.00" in page and "10,000 calls included" in page
    assert "Secret" not in page
    assert re.search(r"<code class=\"fw-semibold\">calculate</code>.*?\$0\.01", page, re.S)
    assert re.search(r"<code class=\"fw-semibold\">hash_text</code>.*?\$0\.0005", page, re.S)
    assert 'href="/accounts/signup/"' in page


def test_signed_in_home_is_the_dashboard(client, credits_customer):
    response = client.get("/")

    assert response.status_code == 302 and response["Location"] == "/dashboard/"


def test_dashboard_shows_balance_held_spend_and_the_last_calls(client, credits_customer):
    tool = priced_tool("calculate", cents=1, credits=3)
    key = api_key(credits_customer, name="laptop").api_key
    _call(credits_customer, tool, key=key)
    _call(credits_customer, tool, key=key, ok=False)
    call_authorize(customer=credits_customer, tool=tool, api_key=key)  # in flight

    page = client.get("/dashboard/").content.decode()

    assert re.search(r'id="dash-credits">\s*494\s*<', page)  # 497 balance - 3 held
    assert re.search(r"Credits held.*?>\s*3\s*<", page, re.S)
    assert re.search(r'id="dash-spent">\s*3 credits\s*<', page)
    assert "3 credits" in page and "Not charged" in page and "laptop" in page
    assert "Tool error" in page


def test_free_calls_left_change_with_each_call(client):
    plan = PlanFactory(slug="free", billing_model=BillingModel.FREEMIUM, free_calls=10)
    owner = signed_in_customer(client, "ada@example.com", plan=plan)
    tool = priced_tool("calculate")

    before = client.get("/dashboard/").content.decode()
    _call(owner, tool)
    after = client.get("/dashboard/").content.decode()

    assert re.search(r'id="dash-free-left">\s*10\s*<', before)
    assert re.search(r'id="dash-free-left">\s*9\s*<', after)
    assert "Free tier" in after


@pytest.mark.parametrize(
    ("setup", "alert", "action"),
    [
        ("no_credits", "You have no credits left.", "/billing/credits/"),
        ("low", "Your credit balance is low.", "/billing/credits/"),
        ("past_due", "Your subscription is past due.", "/billing/invoices/"),
        ("payment_failed", "Your last payment failed.", "/billing/payment-method/"),
        ("free_used", "You have used this period", "/billing/plans/"),
        ("payg_no_card", "Add a card to pay per call.", "/billing/payment-method/"),
        ("no_plan", "You have no plan.", "/billing/plans/"),
    ],
)
def test_dashboard_alerts_say_what_to_do(client, setup, alert, action):
    plan = {
        "free_used": PlanFactory(slug="free", billing_model=BillingModel.FREEMIUM, free_calls=1),
        "payg_no_card": PlanFactory(slug="payg", billing_model=BillingModel.PER_CALL),
    }.get(setup)
    owner = signed_in_customer(client, "ada@example.com", plan=plan)
    if setup == "low":
        credit_grant(customer_id=owner.pk, credits=20, idempotency_key="low")
    if setup == "past_due":
        owner.subscription_status = "past_due"
    if setup == "payment_failed":
        Payment.objects.create(
            customer=owner, purpose="collection", status="failed", amount_cents=500
        )
    if setup == "free_used":
        _call(owner, priced_tool("calculate"))
    if setup == "no_plan":
        owner.plan = None
    owner.save()

    page = client.get("/dashboard/").content.decode()

    assert alert in page
    block = page[page.index(alert) :]
    assert f'href="{action}' in block[: block.index("</div>\n</div>") + 20] or action in block[:600]


def test_usage_lists_calls_with_price_version_cost_and_receipt(client, credits_customer):
    tool = priced_tool("calculate", cents=1, credits=2)
    usage = _call(credits_customer, tool)

    page = client.get("/usage/").content.decode()

    assert "<code>calculate</code>" in page and "v1" in page and "2 credits" in page
    assert f'href="/usage/{usage.pk}/"' in page
    receipt = client.get(f"/usage/{usage.pk}/").content.decode()
    assert str(usage.pk) in receipt and "version 1" in receipt and "Prepaid credits" in receipt


def test_usage_filters_by_tool_key_outcome_and_date(client, credits_customer):
    calc, other = priced_tool("calculate"), priced_tool("hash_text")
    first = api_key(credits_customer, name="first").api_key
    second = api_key(credits_customer, name="second").api_key
    wanted = _call(credits_customer, calc, key=first)
    _call(credits_customer, other, key=first)
    _call(credits_customer, calc, key=second)
    _call(credits_customer, calc, key=first, ok=False)
    today = timezone.now().date()

    page = client.get(
        "/usage/",
        {
            "tool": "calculate",
            "api_key": first.pk,
            "outcome": "success",
            "created_after": today,
            "created_before": today,
        },
    ).content.decode()
    shown = set(re.findall(r'href="/usage/([0-9a-f-]{36})/"', page))
    assert shown == {str(wanted.pk)}

    yesterday = today - timedelta(days=1)
    empty = client.get("/usage/", {"created_before": yesterday}).content.decode()
    assert "No calls match these filters" in empty


def test_bad_usage_filters_show_the_error_beside_the_field(client, credits_customer):
    response = client.get("/usage/", {"created_after": "2026-13-45", "outcome": "nonsense"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid date." in page and "Select a valid choice." in page
    assert re.search(r'class="[^"]*is-invalid[^"]*"[^>]*id="id_created_after"', page)


def test_usage_is_paginated_fifty_a_page(client, credits_customer):
    tool = priced_tool("calculate", credits=1)
    for _ in range(51):
        _call(credits_customer, tool)

    first = client.get("/usage/").content.decode()
    second = client.get("/usage/", {"page": 2}).content.decode()

    assert len(set(re.findall(r'href="/usage/([0-9a-f-]{36})/"', first))) == 50
    assert len(set(re.findall(r'href="/usage/([0-9a-f-]{36})/"', second))) == 1
    assert 'href="?page=2"' in first and 'href="?page=1"' in second


def test_usage_export_streams_the_filtered_calls_as_csv(client, credits_customer):
    calc = priced_tool("calculate", cents=0.5, credits=2)
    key = api_key(credits_customer, name="agent").api_key
    usages = [_call(credits_customer, calc, key=key) for _ in range(3)]
    _call(credits_customer, priced_tool("hash_text"), key=key)

    response = client.get("/usage/export.csv", {"tool": "calculate"})

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["receipt_id"] for r in rows] == [str(u.pk) for u in reversed(usages)]
    assert rows[0]["tool"] == "calculate" and rows[0]["api_key_name"] == "agent"
    assert rows[0]["price_version"] == "1" and rows[0]["credits"] == "2"
    assert rows[0]["amount_decimal"] == "0.5" and rows[0]["paid_by"] == "credits"


def test_usage_export_pages_through_more_rows_than_one_batch(client, credits_customer, monkeypatch):
    from billing.views import usage as usage_views

    monkeypatch.setattr(usage_views, "EXPORT_BATCH", 7)
    tool = priced_tool("calculate", credits=1)
    for _ in range(20):
        _call(credits_customer, tool)

    response = client.get("/usage/export.csv")
    chunks = list(response.streaming_content)
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))

    assert len(chunks) == 1 + 3  # the header, then batches of 7, 7 and 6
    assert len({r["receipt_id"] for r in rows}) == 20 == UsageRecord.objects.count()


def test_usage_export_refuses_bad_filters(client, credits_customer):
    response = client.get("/usage/export.csv", {"created_after": "yesterday"})

    assert response.status_code == 400
    assert b"created_after" in response.content


def test_connect_shows_the_endpoint_and_set_ups_with_the_sites_url(
    client, credits_customer, settings
):
    settings.SITE_URL = "https://billing.example.com"
    priced_tool("calculate")

    page = client.get("/connect/").content.decode()

    assert "https://billing.example.com/mcp" in page
    for title in ("mcp.json", "VS Code", "Claude Code", "Python SDK", "TypeScript SDK", "curl"):
        assert f">{title}</button>" in page
    assert "mcpb_YOUR_API_KEY" in page
    assert "streamable_http_client" in page and "StreamableHTTPClientTransport" in page
