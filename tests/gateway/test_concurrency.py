"""Many calls at once through /mcp: the balance and the rate limit hold exactly."""

from __future__ import annotations

import pytest

from billing.models import Hold, LedgerEntry, UsageRecord
from tests.gateway.support import balance, concurrent_calls, outcomes

pytestmark = pytest.mark.django_db(transaction=True)


def test_200_calls_against_a_balance_for_100_charge_exactly_100(on_postgres, site, funded):
    owner, key = funded(100, rate_limit_per_minute=None)
    results = concurrent_calls(site, key, "calculate", {"expression": "6*7"}, calls=200)
    assert outcomes(results) == {"ok": 100, "insufficient_credits": 100}
    assert balance(owner) == 0
    assert UsageRecord.objects.filter(charged=True).count() == 100
    assert LedgerEntry.objects.filter(kind="debit").count() == 100
    assert not Hold.objects.filter(status=Hold.Status.HELD).exists()


def test_200_calls_against_a_limit_of_100_let_100_through(on_redis, site, funded):
    owner, key = funded(1000, rate_limit_per_minute=100)
    results = concurrent_calls(site, key, "calculate", {"expression": "6*7"}, calls=200)
    assert outcomes(results) == {"ok": 100, "rate_limited": 100}
    assert balance(owner) == 900
