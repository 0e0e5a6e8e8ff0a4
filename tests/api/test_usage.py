"""usage/ (filters, refund) and holds/ (open ones, release)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import (
    BillingModel,
    CreditAccount,
    Hold,
    PeriodCounter,
    UsageRecord,
)
from billing.services.calls import call_authorize, call_capture
from billing.services.ledger import credit_grant
from tests.api.conftest import API, error_of
from tests.factories import PlanFactory, api_key, customer, priced_tool

pytestmark = pytest.mark.django_db


def _call(owner, tool, *, key=None, outcome="success"):
    hold = call_authorize(customer=owner, tool=tool, api_key=key)
    return call_capture(hold=hold, outcome=outcome).usage


@pytest.fixture
def funded():
    owner = customer()
    credit_grant(customer_id=owner.pk, credits=100, idempotency_key=f"seed:{owner.pk}")
    return owner


def _ids(api, **query) -> list[str]:
    response = api.get(f"{API}usage/", query)
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_usage_rows_carry_what_the_call_cost(api, funded):
    tool = priced_tool("calc", cents=0.25, credits=2)
    key = api_key(funded)
    usage = _call(funded, tool, key=key.api_key)
    row = api.get(f"{API}usage/{usage.pk}/").json()
    assert row["id"] == str(usage.pk) and row["customer"] == str(funded.pk)
    assert (row["tool"], row["price_version"], row["path"]) == ("calc", 1, "credits")
    assert (row["credits"], row["amount_decimal"], row["charged"]) == (2, "0.25", True)
    assert row["api_key"] == str(key.api_key.pk) and row["api_key_prefix"] == key.api_key.prefix


def test_usage_filters(api, funded):
    other = customer()
    credit_grant(customer_id=other.pk, credits=10, idempotency_key="other")
    calc, echo = priced_tool("calc"), priced_tool("echo")
    key = api_key(funded).api_key
    a = _call(funded, calc, key=key)
    b = _call(funded, echo)
    c = _call(funded, calc, outcome="error")  # released, not charged
    d = _call(other, calc)
    assert _ids(api) == [str(u.pk) for u in (d, c, b, a)]
    assert _ids(api, customer=funded.pk) == [str(u.pk) for u in (c, b, a)]
    assert _ids(api, api_key=key.pk) == [str(a.pk)]
    assert _ids(api, tool="echo") == [str(b.pk)]
    assert _ids(api, outcome="error") == [str(c.pk)]
    assert _ids(api, charged="false") == [str(c.pk)]
    UsageRecord.objects.filter(pk=a.pk).update(created_at=timezone.now() - timedelta(days=2))
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert _ids(api, created_before=yesterday) == [str(a.pk)]
    assert str(a.pk) not in _ids(api, created_after=yesterday)
    for bad in ({"customer": "x"}, {"customer": 10**19}, {"outcome": "meh"}):
        assert api.get(f"{API}usage/", bad).status_code == 400


def test_refunding_credits_gives_them_back_once(api, funded):
    usage = _call(funded, priced_tool(credits=3))
    url = f"{API}usage/{usage.pk}/refund/"
    response = api.post(url, {"reason": "tool misbehaved"}, format="json")
    assert response.status_code == 200 and response.json()["refunded_at"]
    assert api.post(url).status_code == 200  # once: the repeat changes nothing
    assert CreditAccount.objects.get(customer=funded).balance_credits == 100
    assert api.get(f"{API}usage/", {"refunded": "true"}).json()["results"][0]["id"] == str(usage.pk)


def test_a_call_that_was_not_charged_cannot_be_refunded(api, funded):
    usage = _call(funded, priced_tool(), outcome="error")
    response = api.post(f"{API}usage/{usage.pk}/refund/")
    assert response.status_code == 409 and error_of(response)["code"] == "not_charged"


def test_a_collected_pay_as_you_go_call_is_refunded_at_stripe(api):
    owner = customer(plan=PlanFactory(billing_model=BillingModel.PER_CALL), has_payment_method=True)
    usage = _call(owner, priced_tool(cents=5))
    CreditAccount.objects.filter(customer=owner).update(unbilled_microcents=0)  # collected
    response = api.post(f"{API}usage/{usage.pk}/refund/")
    assert response.status_code == 409 and error_of(response)["code"] == "already_collected"
    assert UsageRecord.objects.get(pk=usage.pk).refunded_at is None


def test_refunding_an_uncollected_pay_as_you_go_call_takes_it_off_the_bill(api):
    owner = customer(plan=PlanFactory(billing_model=BillingModel.PER_CALL), has_payment_method=True)
    usage = _call(owner, priced_tool(cents=5))
    assert CreditAccount.objects.get(customer=owner).unbilled_microcents == 5_000_000
    assert api.post(f"{API}usage/{usage.pk}/refund/").status_code == 200
    assert CreditAccount.objects.get(customer=owner).unbilled_microcents == 0


def test_refunding_an_included_call_gives_it_back_to_the_period(api):
    plan = PlanFactory(billing_model=BillingModel.SUBSCRIPTION, included_calls=10)
    owner = customer(plan=plan, subscription_status="active")
    usage = _call(owner, priced_tool())
    assert usage.path == "included"
    assert api.post(f"{API}usage/{usage.pk}/refund/").status_code == 200
    assert PeriodCounter.objects.get(customer=owner).included_calls_used == 0


def test_an_unknown_usage_id_is_a_404(api):
    missing = "00000000-0000-7000-8000-000000000000"
    assert api.get(f"{API}usage/{missing}/").status_code == 404
    assert api.post(f"{API}usage/{missing}/refund/").status_code == 404
    assert api.get(f"{API}usage/not-a-uuid/").status_code == 404


def test_open_holds_are_listed_and_released(api, funded):
    tool = priced_tool(credits=4)
    hold = call_authorize(customer=funded, tool=tool)
    done = call_authorize(customer=funded, tool=tool)
    call_capture(hold=done)
    listed = api.get(f"{API}holds/", {"customer": funded.pk}).json()["results"]
    assert [row["id"] for row in listed] == [str(hold.pk)]
    assert listed[0]["credits"] == 4 and listed[0]["status"] == "held"
    response = api.post(f"{API}holds/{hold.pk}/release/")
    assert response.status_code == 200 and response.json()["status"] == "released"
    assert CreditAccount.objects.get(customer=funded).held_credits == 0
    assert UsageRecord.objects.get(hold=hold).outcome == "cancelled"
    again = api.post(f"{API}holds/{hold.pk}/release/")
    assert again.status_code == 409 and error_of(again)["code"] == "hold_not_open"
    assert api.post(f"{API}holds/{done.pk}/release/").status_code == 409
    assert Hold.objects.get(pk=done.pk).status == "captured"


def test_a_view_only_operator_cannot_refund_or_release(viewer, funded):
    usage = _call(funded, priced_tool())
    hold = call_authorize(customer=funded, tool=priced_tool("other"))
    assert viewer.get(f"{API}usage/").status_code == 200
    assert viewer.get(f"{API}holds/").status_code == 200
    assert viewer.post(f"{API}usage/{usage.pk}/refund/").status_code == 403
    assert viewer.post(f"{API}holds/{hold.pk}/release/").status_code == 403
    assert Hold.objects.get(pk=hold.pk).status == "held"
