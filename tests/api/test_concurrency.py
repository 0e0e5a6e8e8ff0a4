"""Idempotency-Key under concurrency: 20 grants at once through HTTP, on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum
from rest_framework.authtoken.models import Token

from billing.models import CreditAccount, CreditLot, LedgerEntry
from mcpbilling.api.models import IdempotencyKey
from tests.factories import customer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

REQUESTS = 20


def _grant_all(live_server, owner, keys: list[str]) -> list[httpx.Response]:
    """POST one grant of 5 credits per key, all released at once from their own threads."""
    user = get_user_model().objects.create_superuser("racer", "racer@example.com", "pw")
    token = Token.objects.create(user=user).key
    url = f"{live_server.url}/api/v1/customers/{owner.pk}/credit-grants/"
    barrier = threading.Barrier(len(keys))

    def grant(key: str) -> httpx.Response:
        with httpx.Client(timeout=60) as http:
            barrier.wait(timeout=30)
            return http.post(
                url,
                json={"credits": 5, "description": "race"},
                headers={"Authorization": f"Token {token}", "Idempotency-Key": key},
            )

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return list(pool.map(grant, keys))


def _ledger_matches_balance(owner) -> int:
    balance = CreditAccount.objects.get(customer=owner).balance_credits
    entries = LedgerEntry.objects.filter(account__customer=owner).aggregate(s=Sum("amount_credits"))
    lots = CreditLot.objects.filter(account__customer=owner).aggregate(s=Sum("remaining_credits"))
    assert entries["s"] == lots["s"] == balance
    return balance


def test_twenty_concurrent_grants_with_one_key_grant_once(on_postgres, live_server):
    owner = customer()
    responses = _grant_all(live_server, owner, ["same-key"] * REQUESTS)
    assert [r.status_code for r in responses] == [201] * REQUESTS
    assert len({r.json()["id"] for r in responses}) == 1  # all got the first answer
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert replayed.count(None) == 1 and replayed.count("true") == REQUESTS - 1
    assert LedgerEntry.objects.filter(account__customer=owner).count() == 1
    assert _ledger_matches_balance(owner) == 5
    assert IdempotencyKey.objects.count() == 1


def test_twenty_concurrent_grants_with_different_keys_grant_twenty_times(on_postgres, live_server):
    owner = customer()
    responses = _grant_all(live_server, owner, [f"key-{n}" for n in range(REQUESTS)])
    assert [r.status_code for r in responses] == [201] * REQUESTS
    assert len({r.json()["id"] for r in responses}) == REQUESTS
    assert _ledger_matches_balance(owner) == 5 * REQUESTS
    after = sorted(r.json()["balance_after_credits"] for r in responses)
    assert after == list(range(5, 5 * REQUESTS + 1, 5))  # each saw the one before it
