"""Many calls at once through /mcp: the balance and the rate limit hold exactly."""

from __future__ import annotations

import pytest

from billing.models import Hold, LedgerEntry, UsageRecord
from tests.gateway.support import balance, concurrent_calls, outcomes, serving, site_app

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


def test_500_calls_at_once_through_a_small_redis_pool_all_get_billing_results(
    on_redis, settings, transactional_db, funded
):
    """A burst far above the pool waits for connections instead of failing.

    redis-py's default pool raised "Too many connections" past 100 in flight and
    the client got JSON-RPC code 0 with that text; the pool here has 4.
    """
    settings.REDIS_MAX_CONNECTIONS = 4
    owner, key = funded(1000, rate_limit_per_minute=100_000)
    with serving(site_app()) as site:
        results = concurrent_calls(
            site, key, "calculate", {"expression": "6*7"}, calls=500, clients=25
        )
    assert outcomes(results) == {"ok": 500}
    assert balance(owner) == 500
    assert not Hold.objects.filter(status=Hold.Status.HELD).exists()
