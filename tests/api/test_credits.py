"""customers/{id}/credit-grants/, adjustments/, ledger-entries/ and balance/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import CreditAccount, CreditLot, LedgerEntry
from billing.selectors import credit_balance_recompute
from billing.services.calls import call_authorize
from billing.services.ledger import credit_grant
from tests.api.conftest import API, error_of
from tests.factories import customer, priced_tool

pytestmark = pytest.mark.django_db


def _url(owner, what: str) -> str:
    return f"{API}customers/{owner.pk}/{what}/"


def _balance(owner) -> int:
    return CreditAccount.objects.get(customer=owner).balance_credits


def test_a_grant_adds_a_lot_that_expires_when_asked(api):
    owner = customer()
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = api.post(
        _url(owner, "credit-grants"),
        {"credits": 500, "description": "Welcome", "expires_at": expires.isoformat()},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["credits"], body["balance_after_credits"]) == ("grant", 500, 500)
    assert body["remaining_credits"] == 500 and body["customer"] == str(owner.pk)
    assert CreditLot.objects.get(account__customer=owner).expires_at == expires
    assert _balance(owner) == 500
    listed = api.get(_url(owner, "credit-grants")).json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]


def test_a_grant_must_be_positive_whole_and_expire_in_the_future(api):
    owner = customer()
    for bad in ({"credits": 0}, {"credits": -5}, {"credits": "many"}, {"credits": 10**13}):
        response = api.post(_url(owner, "credit-grants"), bad, format="json")
        assert response.status_code == 400 and "credits" in error_of(response)["fields"]
    response = api.post(
        _url(owner, "credit-grants"),
        {"credits": 1, "expires_at": "2001-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 400 and "expires_at" in error_of(response)["fields"]
    assert _balance(owner) == 0
    assert api.post(f"{API}customers/999999/credit-grants/", {"credits": 1}).status_code == 404


def test_a_retried_grant_with_its_idempotency_key_grants_once(api):
    owner = customer()
    for _ in range(3):
        response = api.post(
            _url(owner, "credit-grants"), {"credits": 7}, format="json", HTTP_IDEMPOTENCY_KEY="g1"
        )
        assert response.status_code == 201
    assert _balance(owner) == 7
    other = api.post(
        _url(owner, "credit-grants"), {"credits": 8}, format="json", HTTP_IDEMPOTENCY_KEY="g1"
    )
    assert other.status_code == 409 and _balance(owner) == 7


def test_an_adjustment_needs_a_reason_and_takes_from_the_lots_expiring_first(api):
    owner = customer()
    soon = timezone.now() + timedelta(days=1)
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="late")
    credit_grant(customer_id=owner.pk, credits=5, idempotency_key="soon", expires_at=soon)
    assert api.post(_url(owner, "adjustments"), {"credits": -3}, format="json").status_code == 400
    response = api.post(
        _url(owner, "adjustments"), {"credits": -7, "reason": "double grant"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["credits"], body["description"]) == (
        "adjustment",
        -7,
        "double grant",
    )
    lots = {lot.expires_at is None: lot.remaining_credits for lot in CreditLot.objects.all()}
    assert lots == {False: 0, True: 8}  # the lot expiring tomorrow went first
    added = api.post(
        _url(owner, "adjustments"), {"credits": 2, "reason": "goodwill"}, format="json"
    )
    assert added.status_code == 201 and added.json()["remaining_credits"] == 2
    assert _balance(owner) == 10 == credit_balance_recompute(customer_id=owner.pk)


def test_an_adjustment_never_takes_credits_held_by_calls_in_flight(api):
    owner = customer()
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="seed")
    call_authorize(customer=owner, tool=priced_tool(credits=4))  # holds 4
    response = api.post(
        _url(owner, "adjustments"), {"credits": -7, "reason": "too much"}, format="json"
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "insufficient_credits" and "6" in error["message"]
    assert _balance(owner) == 10
    assert not LedgerEntry.objects.filter(kind="adjustment").exists()


def test_the_balance_and_the_ledger(api):
    owner = customer()
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="seed")
    call_authorize(customer=owner, tool=priced_tool(credits=4))
    balance = api.get(_url(owner, "balance")).json()
    assert balance == {
        "customer": str(owner.pk),
        "credits": 10,
        "held_credits": 4,
        "available_credits": 6,
        "uses_credits": True,
        "held_decimal": "0",
        "unbilled_decimal": "0",
        "currency": "usd",
    }
    api.post(_url(owner, "adjustments"), {"credits": -1, "reason": "fee"}, format="json")
    ledger = api.get(_url(owner, "ledger-entries")).json()["results"]
    assert [(row["kind"], row["credits"]) for row in ledger] == [("adjustment", -1), ("grant", 10)]
    only = api.get(_url(owner, "ledger-entries"), {"kind": "adjustment"}).json()["results"]
    assert len(only) == 1


def test_a_view_only_operator_cannot_move_credits(viewer):
    owner = customer()
    assert viewer.get(_url(owner, "balance")).status_code == 200
    assert viewer.post(_url(owner, "credit-grants"), {"credits": 5}).status_code == 403
    assert viewer.post(_url(owner, "adjustments"), {"credits": 5, "reason": "x"}).status_code == 403
    assert _balance(owner) == 0
