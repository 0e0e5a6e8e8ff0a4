"""Races the charge engine must win: many threads on PostgreSQL, one balance."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.db.models import Sum

from billing.models import BillingModel, CreditAccount, LedgerEntry, UsageRecord
from billing.services.calls import call_authorize, call_capture
from billing.services.ledger import credit_grant
from mcpbilling.errors import ApplicationError
from tests.factories import PlanFactory, api_key, customer, priced_tool

pytestmark = [pytest.mark.django_db(transaction=True)]

ATTEMPTS = 200
THREADS = 50


def run_concurrently(fn, count):
    """Run ``fn(i)`` for i in range(count) on THREADS threads released together."""
    barrier = threading.Barrier(min(THREADS, count))

    def worker(i):
        try:
            if i < THREADS:
                barrier.wait(timeout=30)
            return fn(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(worker, range(count)))


def attempt(owner, tool, key=None, idem=None):
    try:
        hold = call_authorize(customer=owner, tool=tool, api_key=key, idempotency_key=idem)
        call_capture(hold_id=hold.pk)
        return "captured"
    except ApplicationError as exc:
        return exc.code


def test_exactly_the_balance_is_spent(on_postgres):
    owner, tool = customer(), priced_tool(credits=1)
    credit_grant(customer_id=owner.pk, credits=100, idempotency_key="race")
    outcomes = Counter(run_concurrently(lambda i: attempt(owner, tool), ATTEMPTS))
    assert outcomes == {"captured": 100, "insufficient_credits": 100}
    account = CreditAccount.objects.get(customer=owner)
    assert (account.balance_credits, account.held_credits) == (0, 0)
    total = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount_credits"))["s"]
    assert total == account.balance_credits
    assert UsageRecord.objects.filter(charged=True).count() == 100


def test_a_repeated_idempotency_key_charges_once(on_postgres):
    owner, tool = customer(), priced_tool(credits=1)
    credit_grant(customer_id=owner.pk, credits=100, idempotency_key="race")
    outcomes = Counter(
        run_concurrently(lambda i: attempt(owner, tool, idem=f"k{i % 10}"), ATTEMPTS)
    )
    assert outcomes["captured"] == 10
    assert set(outcomes) <= {"captured", "call_in_progress", "idempotency_replay"}
    assert CreditAccount.objects.get(customer=owner).balance_credits == 90


def test_included_calls_and_key_budget_hold_under_a_race(on_postgres):
    plan = PlanFactory(billing_model=BillingModel.SUBSCRIPTION, included_calls=30)
    owner, tool = customer(plan=plan, subscription_status="active"), priced_tool()
    outcomes = Counter(run_concurrently(lambda i: attempt(owner, tool), 100))
    assert outcomes == {"captured": 30, "quota_exceeded": 70}

    funded = customer()
    credit_grant(customer_id=funded.pk, credits=1000, idempotency_key="budget")
    key = api_key(funded, daily_budget_microcents=25_000_000).api_key  # 25 calls of 1 cent
    outcomes = Counter(run_concurrently(lambda i: attempt(funded, tool, key=key), 100))
    assert outcomes == {"captured": 25, "budget_exceeded": 75}
