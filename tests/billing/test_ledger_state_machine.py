"""A Hypothesis state machine over grant, hold, capture, release, refund and expiry.

After every step: the balance equals the sum of the ledger entries and of the
lots' remaining credits, it is never negative, held credits never exceed it,
and no idempotency key is charged twice.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.db.models import Count, Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from billing.models import CreditAccount, CreditLot, Hold, LedgerEntry, UsageRecord
from billing.services.calls import call_authorize, call_capture, call_release
from billing.services.ledger import credit_expire, credit_grant, usage_refund
from mcpbilling.errors import ApplicationError
from tests.factories import customer, priced_tool

T0 = datetime(2026, 5, 1, tzinfo=UTC)


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        # Each example runs in a transaction rolled back at teardown: examples
        # share nothing, so Hypothesis can replay and shrink them.
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.owner = customer(now=T0)
        self.tools = {cost: priced_tool(f"cost_{cost}", credits=cost) for cost in (1, 3, 7)}
        self.now = T0
        self.grants = 0
        self.open_holds: list[int] = []
        self.used_keys: set[str] = set()
        self.expected_balance = 0

    @rule(credits=st.integers(1, 40), expires_in_days=st.none() | st.integers(1, 5))
    def grant(self, credits, expires_in_days):
        self.grants += 1
        expires = self.now + timedelta(days=expires_in_days) if expires_in_days else None
        credit_grant(
            customer_id=self.owner.pk,
            credits=credits,
            idempotency_key=f"grant:{self.grants}",
            expires_at=expires,
        )
        self.expected_balance += credits

    @rule(cost=st.sampled_from([1, 3, 7]), key=st.none() | st.sampled_from(["a", "b", "c"]))
    def hold(self, cost, key):
        account = CreditAccount.objects.get(customer=self.owner)
        try:
            hold = call_authorize(
                customer=self.owner, tool=self.tools[cost], idempotency_key=key, now=self.now
            )
        except ApplicationError as exc:
            assert exc.code in {"insufficient_credits", "call_in_progress", "idempotency_replay"}
            if exc.code == "insufficient_credits":
                assert account.available_credits < cost
            return
        assert account.available_credits >= cost
        self.open_holds.append(hold.pk)

    @precondition(lambda self: self.open_holds)
    @rule(data=st.data(), succeeded=st.booleans())
    def settle(self, data, succeeded):
        hold_id = data.draw(st.sampled_from(self.open_holds))
        self.open_holds.remove(hold_id)
        if succeeded:
            usage = call_capture(hold_id=hold_id, now=self.now).usage
            self.expected_balance -= usage.credits
        else:
            call_release(hold_id=hold_id, now=self.now)

    @rule(data=st.data())
    def refund(self, data):
        charged = list(
            UsageRecord.objects.filter(customer=self.owner, charged=True).values_list(
                "pk", "refunded_at"
            )
        )
        if not charged:
            return
        usage_id, refunded_at = data.draw(st.sampled_from(charged))
        usage_refund(usage_id=usage_id)
        if refunded_at is None:
            self.expected_balance += UsageRecord.objects.get(pk=usage_id).credits

    @rule(days=st.integers(1, 3))
    def time_passes_and_credits_expire(self, days):
        self.now += timedelta(days=days)
        self.expected_balance -= credit_expire(now=self.now)

    def teardown(self):
        if hasattr(self, "atomic"):
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    @invariant()
    def balance_matches_entries_and_lots(self):
        if not hasattr(self, "owner"):
            return
        account = CreditAccount.objects.get(customer=self.owner)
        entries = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount_credits"))
        lots = CreditLot.objects.filter(account=account).aggregate(s=Sum("remaining_credits"))
        assert account.balance_credits == (entries["s"] or 0) == (lots["s"] or 0)
        assert account.balance_credits == self.expected_balance
        assert 0 <= account.held_credits <= account.balance_credits
        held = Hold.objects.filter(customer=self.owner, status="held").aggregate(s=Sum("credits"))
        assert account.held_credits == (held["s"] or 0)

    @invariant()
    def each_idempotency_key_charged_at_most_once(self):
        charged = (
            UsageRecord.objects.filter(charged=True, idempotency_key__isnull=False)
            .values("customer", "idempotency_key")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
        )
        assert not charged.exists()


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TestLedgerMachine = pytest.mark.django_db(TestLedgerMachine)
