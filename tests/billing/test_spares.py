"""Spare holds (docs/decisions/0010): calls authorised ahead, settled or returned exactly once."""

from datetime import UTC, datetime, timedelta

import pytest

from billing.models import BillingModel, CreditAccount, Hold, LedgerEntry, UsageRecord
from billing.services.calls import (
    SPARE_SHARE,
    call_authorize_ahead,
    call_capture,
    call_release,
    holds_release_stale,
    spares_return,
)
from billing.services.ledger import credit_grant
from mcpbilling.errors import ApplicationError
from tests.factories import PlanFactory, api_key, customer, priced_tool

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def funded(credits, **plan_fields):
    owner = customer(plan=PlanFactory(billing_model=BillingModel.CREDITS, **plan_fields), now=T0)
    credit_grant(customer_id=owner.pk, credits=credits, idempotency_key=f"seed:{owner.pk}")
    return owner


def account(owner) -> CreditAccount:
    return CreditAccount.objects.get(customer=owner)


def ahead(owner, tool, spares, key=None):
    return call_authorize_ahead(customer=owner, tool=tool, api_key=key, spares=spares, now=T0)


class TestReserve:
    def test_spares_are_held_holds_like_the_call(self, on_postgres):
        owner, tool = funded(1000), priced_tool(credits=3)
        key = api_key(owner).api_key
        hold, spares = ahead(owner, tool, 5, key)
        assert len(spares) == 5 and not hold.spare
        assert account(owner).held_credits == 3 * 6
        stored = Hold.objects.filter(pk__in=[s.pk for s in spares])
        assert stored.count() == 5
        for spare in stored:
            assert spare.spare and spare.status == Hold.Status.HELD
            assert (spare.tool_id, spare.api_key_id, spare.credits) == (tool.pk, key.pk, 3)
            assert spare.path == hold.path and spare.price_id == hold.price_id
        assert {s.created_at for s in spares} == {s.created_at for s in stored}

    def test_spares_take_at_most_a_share_of_the_free_credits(self, on_postgres):
        owner, tool = funded(3 * 41), priced_tool(credits=3)
        _, spares = ahead(owner, tool, 100)
        # 40 calls' credits free after the call: a quarter of them.
        assert len(spares) == 40 // SPARE_SHARE
        _, more = ahead(owner, tool, 100)
        assert len(more) == (40 - 10 - 1) // SPARE_SHARE

    def test_none_near_the_end_of_a_balance(self, on_postgres):
        owner, tool = funded(3 * SPARE_SHARE), priced_tool(credits=3)
        _, spares = ahead(owner, tool, 16)
        assert spares == [] and account(owner).held_credits == 3

    def test_none_where_a_call_must_be_counted(self, on_postgres):
        owner = funded(1000, daily_budget_microcents=10**12)
        hold, spares = ahead(owner, priced_tool(credits=3), 16)
        assert spares == [] and hold.budget_day is not None


class TestSettle:
    def test_a_spare_is_captured_once_like_any_hold(self, on_postgres):
        owner, tool = funded(100), priced_tool(credits=3)
        _, spares = ahead(owner, tool, 4)
        first = call_capture(hold=spares[0], now=T0)
        again = call_capture(hold=spares[0], now=T0)
        assert again.usage.pk == first.usage.pk
        assert first.balance_credits == 97
        assert LedgerEntry.objects.filter(kind="debit").count() == 1
        assert account(owner).held_credits == 3 * 4  # the call's and three spares

    def test_returned_spares_free_their_credits_without_usage(self, on_postgres):
        owner, tool = funded(100), priced_tool(credits=3)
        hold, spares = ahead(owner, tool, 4)
        call_release(hold=spares[1], now=T0)
        assert spares_return(holds=spares, now=T0) == 3  # one was settled already
        assert account(owner).held_credits == 3  # the call's own hold
        assert Hold.objects.filter(status=Hold.Status.RETURNED).count() == 3
        assert UsageRecord.objects.count() == 1  # the released one's
        assert spares_return(holds=spares, now=T0) == 0
        assert account(owner).held_credits == 3
        call_capture(hold=hold, now=T0)
        assert account(owner).held_credits == 0 and account(owner).balance_credits == 97

    def test_a_returned_spare_cannot_be_captured(self, on_postgres):
        owner, tool = funded(100), priced_tool(credits=3)
        _, spares = ahead(owner, tool, 2)
        spares_return(holds=spares[:1], now=T0)
        with pytest.raises(ApplicationError) as info:
            call_capture(hold=spares[0], now=T0)
        assert info.value.code == "hold_lost"
        assert account(owner).balance_credits == 100

    def test_stale_spares_are_returned_and_stale_calls_released(self, on_postgres):
        owner, tool = funded(100), priced_tool(credits=3)
        hold, _ = ahead(owner, tool, 3)
        later = T0 + timedelta(hours=1)
        assert holds_release_stale(now=later) == 4
        assert Hold.objects.get(pk=hold.pk).status == Hold.Status.EXPIRED
        assert Hold.objects.filter(spare=True, status=Hold.Status.RETURNED).count() == 3
        assert UsageRecord.objects.get().outcome == "expired"  # the call's, none for spares
        assert account(owner).held_credits == 0 and account(owner).balance_credits == 100
