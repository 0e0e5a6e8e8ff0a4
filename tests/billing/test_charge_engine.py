"""The charge engine's decisions under each billing model."""

from datetime import UTC, datetime, timedelta

import pytest

from billing.models import (
    BillingModel,
    CreditAccount,
    Hold,
    LedgerEntry,
    OutboxMessage,
    PaymentPath,
    Plan,
    UsageRecord,
)
from billing.services.calls import (
    call_authorize,
    call_capture,
    call_release,
    call_replay,
    holds_release_stale,
)
from billing.services.ledger import credit_grant
from billing.services.pricing import tool_price_set, tool_quote
from customers.models import Customer
from mcpbilling.errors import ApplicationError
from tests.factories import PlanFactory, ToolFactory, api_key, customer, priced_tool

pytestmark = pytest.mark.django_db

CENT = 1_000_000
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def call(owner, tool, *, key=None, outcome="success", now=T0, idem=None):
    """Authorise and settle one call; returns the settlement."""
    hold = call_authorize(customer=owner, tool=tool, api_key=key, idempotency_key=idem, now=now)
    return call_capture(hold_id=hold.pk, outcome=outcome, now=now, response={"ok": True})


def refused(owner, tool, **kwargs) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        call(owner, tool, **kwargs)
    return info.value


def balance(owner) -> CreditAccount:
    return CreditAccount.objects.get(customer=owner)


def funded(credits, **plan_fields):
    owner = customer(plan=PlanFactory(billing_model=BillingModel.CREDITS, **plan_fields), now=T0)
    if credits:
        credit_grant(customer_id=owner.pk, credits=credits, idempotency_key=f"seed:{owner.pk}")
    return owner


class TestCredits:
    def test_capture_debits_once_and_reports_balance(self):
        owner, tool = funded(10), priced_tool(credits=3)
        settlement = call(owner, tool)
        assert settlement.balance_credits == 7
        assert settlement.usage.credits == 3 and settlement.usage.charged
        assert balance(owner).balance_credits == 7
        assert balance(owner).held_credits == 0
        entry = LedgerEntry.objects.get(kind="debit")
        assert entry.amount_credits == -3 and entry.balance_after_credits == 7
        assert entry.usage == settlement.usage

    def test_capturing_twice_charges_once(self):
        owner, tool = funded(10), priced_tool(credits=3)
        hold = call_authorize(customer=owner, tool=tool, now=T0)
        first = call_capture(hold=hold, now=T0)
        second = call_capture(hold_id=hold.pk, now=T0)
        stale = Hold.objects.get(pk=hold.pk)
        stale.status = Hold.Status.HELD  # as another process last saw it
        assert call_capture(hold=stale, now=T0).usage.pk == first.usage.pk
        call_authorize(customer=owner, tool=tool, now=T0)  # another call holds 3 credits
        assert call_capture(hold=stale, now=T0).usage.pk == first.usage.pk
        assert (balance(owner).balance_credits, balance(owner).held_credits) == (7, 3)
        assert first.usage.pk == second.usage.pk
        assert balance(owner).balance_credits == 7
        assert UsageRecord.objects.count() == 1

    def test_insufficient_credits_refuses_and_reserves_nothing(self):
        owner, tool = funded(2), priced_tool(credits=3)
        error = refused(owner, tool)
        assert error.code == "insufficient_credits"
        assert error.extra["action"] == "buy_credits"
        assert balance(owner).held_credits == 0
        assert not Hold.objects.exists()

    def test_hold_reserves_credits_until_settled(self):
        owner, tool = funded(5), priced_tool(credits=3)
        call_authorize(customer=owner, tool=tool, now=T0)
        assert balance(owner).held_credits == 3
        # The second call does not fit into what is left unheld.
        assert refused(owner, tool).code == "insufficient_credits"

    def test_failed_call_is_released_and_not_charged(self):
        owner, tool = funded(5), priced_tool(credits=3)
        settlement = call(owner, tool, outcome="error")
        assert not settlement.usage.charged and settlement.usage.outcome == "error"
        assert balance(owner).balance_credits == 5 and balance(owner).held_credits == 0
        assert not LedgerEntry.objects.filter(kind="debit").exists()

    def test_failed_call_is_charged_when_the_price_says_so(self):
        owner = funded(5)
        tool = priced_tool(credits=3, charge_failed_calls=True)
        settlement = call(owner, tool, outcome="error")
        assert settlement.usage.charged and settlement.usage.outcome == "error"
        assert balance(owner).balance_credits == 2

    def test_tool_without_credit_price_is_refused_on_a_credit_plan(self):
        owner, tool = funded(5), priced_tool(credits=None)
        assert refused(owner, tool).code == "subscription_required"

    def test_free_tool_charges_nothing(self):
        owner = funded(0)
        tool = ToolFactory(name="free_tool", is_free=True)
        settlement = call(owner, tool)
        assert settlement.usage.path == PaymentPath.FREE_TOOL
        assert not settlement.usage.credits and not settlement.usage.amount_microcents

    def test_release_after_capture_changes_nothing(self):
        owner, tool = funded(5), priced_tool(credits=3)
        hold = call_authorize(customer=owner, tool=tool, now=T0)
        call_capture(hold_id=hold.pk, now=T0)
        call_release(hold_id=hold.pk, now=T0)
        assert balance(owner).balance_credits == 2
        assert Hold.objects.get(pk=hold.pk).status == Hold.Status.CAPTURED


class TestIdempotency:
    def test_replay_finds_the_charged_call(self):
        owner, tool = funded(10), priced_tool(credits=1)
        first = call(owner, tool, idem="k1")
        assert call_replay(customer=owner, idempotency_key="k1").pk == first.usage.pk
        assert call_replay(customer=owner, idempotency_key="other") is None

    def test_same_key_cannot_be_charged_twice(self):
        owner, tool = funded(10), priced_tool(credits=1)
        call(owner, tool, idem="k1")
        assert refused(owner, tool, idem="k1").code == "idempotency_replay"
        assert balance(owner).balance_credits == 9

    def test_key_in_flight_refuses_a_second_call(self):
        owner, tool = funded(10), priced_tool(credits=1)
        call_authorize(customer=owner, tool=tool, idempotency_key="k1", now=T0)
        assert refused(owner, tool, idem="k1").code == "call_in_progress"

    def test_released_call_may_be_retried_with_its_key(self):
        owner, tool = funded(10), priced_tool(credits=1)
        call(owner, tool, idem="k1", outcome="error")
        call(owner, tool, idem="k1")
        assert balance(owner).balance_credits == 9

    def test_keys_are_per_customer(self):
        tool = priced_tool(credits=1)
        first, second = funded(10), funded(10)
        call(first, tool, idem="same")
        call(second, tool, idem="same")
        assert balance(first).balance_credits == balance(second).balance_credits == 9


class TestVolumeTiers:
    @pytest.fixture
    def tool(self):
        tool = ToolFactory(name="tiered")
        tool_price_set(
            tool=tool,
            unit_amount_microcents=3 * CENT,
            credits=3,
            tiers=[
                {"up_to": 2, "unit_amount_microcents": 3 * CENT, "credits": 3},
                {"up_to": 4, "unit_amount_microcents": 2 * CENT, "credits": 2},
                {"up_to": None, "unit_amount_microcents": CENT // 2, "credits": 1},
            ],
        )
        return tool

    def test_each_call_is_priced_by_its_position_in_the_period(self, tool):
        owner = funded(100)
        charged = [call(owner, tool).usage.credits for _ in range(6)]
        assert charged == [3, 3, 2, 2, 1, 1]
        assert balance(owner).balance_credits == 100 - 12

    def test_quote_shows_the_next_calls_tier(self, tool):
        owner = funded(100)
        assert tool_quote(customer=owner, tool=tool).credits == 3
        call(owner, tool)
        call(owner, tool)
        quote = tool_quote(customer=owner, tool=tool)
        assert (quote.credits, quote.unit_amount_microcents, quote.tier) == (2, 2 * CENT, 1)

    def test_released_calls_do_not_count_towards_tiers(self, tool):
        owner = funded(100)
        call(owner, tool, outcome="error")
        call(owner, tool, outcome="error")
        assert call(owner, tool).usage.credits == 3

    def test_tiers_restart_in_a_new_period(self, tool):
        owner = funded(100)
        for _ in range(3):
            call(owner, tool)
        next_month = T0 + timedelta(days=31)
        assert call(owner, tool, now=next_month).usage.credits == 3

    def test_price_version_is_kept_on_the_usage(self, tool):
        owner = funded(100)
        before = call(owner, tool).usage
        new = tool_price_set(tool=tool, unit_amount_microcents=CENT, credits=5)
        after = call(owner, tool).usage
        assert (before.price.version, after.price.version) == (1, 2)
        assert after.price == new and after.credits == 5

    def test_a_refusal_at_a_price_replaced_meanwhile_is_not_given(self):
        owner, tool = funded(2), priced_tool(credits=5)
        assert refused(owner, tool).code == "insufficient_credits"  # the 5-credit version is known
        tool_price_set(
            tool=tool, unit_amount_microcents=CENT, credits=1
        )  # as another process would
        usage = call(owner, tool).usage
        assert (usage.credits, usage.price.version) == (1, 2)


class TestFreemium:
    @pytest.fixture
    def plan(self):
        return PlanFactory(billing_model=BillingModel.FREEMIUM, free_calls=2)

    def test_free_tier_then_refusal(self, plan):
        owner, tool = customer(plan=plan, now=T0), priced_tool()
        assert call(owner, tool).usage.path == PaymentPath.FREE_TIER
        assert call(owner, tool).usage.path == PaymentPath.FREE_TIER
        error = refused(owner, tool)
        assert error.code == "free_tier_exhausted" and error.extra["action"] == "upgrade"

    def test_a_new_key_does_not_reset_the_free_tier(self, plan):
        owner, tool = customer(plan=plan, now=T0), priced_tool()
        call(owner, tool, key=api_key(owner).api_key)
        call(owner, tool, key=api_key(owner).api_key)
        fresh = api_key(owner, name="fresh").api_key
        assert refused(owner, tool, key=fresh).code == "free_tier_exhausted"

    def test_free_tier_renews_with_the_period(self, plan):
        owner, tool = customer(plan=plan, now=T0), priced_tool()
        call(owner, tool)
        call(owner, tool)
        next_period = T0 + timedelta(days=32)
        assert call(owner, tool, now=next_period).usage.path == PaymentPath.FREE_TIER
        owner.refresh_from_db()
        assert owner.period_start == datetime(2026, 2, 15, 12, 0, tzinfo=UTC)

    def test_failed_free_calls_give_their_slot_back(self, plan):
        owner, tool = customer(plan=plan, now=T0), priced_tool()
        call(owner, tool, outcome="error")
        call(owner, tool)
        call(owner, tool)
        assert refused(owner, tool).code == "free_tier_exhausted"

    def test_exhausted_free_tier_charges_per_call_with_a_card(self):
        plan = PlanFactory(
            billing_model=BillingModel.FREEMIUM,
            free_calls=1,
            free_tier_action=Plan.FreeTierAction.CHARGE,
        )
        owner, tool = customer(plan=plan, now=T0), priced_tool(cents=2)
        call(owner, tool)
        assert refused(owner, tool).extra["action"] == "add_payment_method"
        Customer.objects.filter(pk=owner.pk).update(has_payment_method=True)
        owner.refresh_from_db()
        usage = call(owner, tool).usage
        assert usage.path == PaymentPath.PAYG and usage.amount_microcents == 2 * CENT
        assert balance(owner).unbilled_microcents == 2 * CENT

    def test_exhausted_free_tier_moves_the_customer_to_the_upgrade_plan(self):
        paid = PlanFactory(billing_model=BillingModel.CREDITS)
        plan = PlanFactory(
            billing_model=BillingModel.FREEMIUM,
            free_calls=1,
            free_tier_action=Plan.FreeTierAction.UPGRADE,
            upgrade_plan=paid,
        )
        owner, tool = customer(plan=plan, now=T0), priced_tool(credits=2)
        credit_grant(customer_id=owner.pk, credits=5, idempotency_key="g")
        call(owner, tool)
        usage = call(owner, tool).usage
        assert usage.path == PaymentPath.CREDITS and usage.credits == 2
        owner.refresh_from_db()
        assert owner.plan == paid


class TestSubscription:
    def plan(self, **fields):
        return PlanFactory(billing_model=BillingModel.SUBSCRIPTION, included_calls=2, **fields)

    def test_requires_an_active_subscription(self):
        owner, tool = customer(plan=self.plan(), now=T0), priced_tool()
        error = refused(owner, tool)
        assert error.code == "subscription_required" and error.extra["action"] == "subscribe"

    def test_included_calls_then_hard_cap(self):
        owner = customer(plan=self.plan(), now=T0, subscription_status="active")
        tool = priced_tool()
        assert {call(owner, tool).usage.path for _ in range(2)} == {PaymentPath.INCLUDED}
        error = refused(owner, tool)
        assert error.code == "quota_exceeded"

    def test_overage_is_metered_through_the_outbox(self):
        plan = self.plan(overage=Plan.Overage.METERED, stripe_meter_event_name="calls")
        owner = customer(plan=plan, now=T0, subscription_status="active")
        tool = priced_tool(cents=0.5)
        call(owner, tool)
        call(owner, tool)
        usage = call(owner, tool).usage
        assert usage.path == PaymentPath.METERED and usage.amount_microcents == CENT // 2
        message = OutboxMessage.objects.get(kind="meter_event")
        assert message.identifier == f"mcpb_usage_{usage.pk}"
        assert message.payload["value_microcents"] == CENT // 2
        assert message.payload["event_name"] == "calls"

    def test_quota_renews_with_the_period(self):
        owner = customer(plan=self.plan(), now=T0, subscription_status="active")
        tool = priced_tool()
        call(owner, tool)
        call(owner, tool)
        assert call(owner, tool, now=T0 + timedelta(days=31)).usage.path == PaymentPath.INCLUDED


class TestUsageBased:
    def test_every_call_goes_to_the_meter(self):
        plan = PlanFactory(billing_model=BillingModel.USAGE, stripe_meter_event_name="calls")
        owner = customer(plan=plan, now=T0, subscription_status="active")
        tool = priced_tool(cents=0.001)
        for _ in range(3):
            call(owner, tool)
        assert OutboxMessage.objects.filter(kind="meter_event").count() == 3
        meter_events = OutboxMessage.objects.filter(kind="meter_event")
        assert {m.payload["value_microcents"] for m in meter_events} == {1000}

    def test_failed_calls_are_not_metered(self):
        plan = PlanFactory(billing_model=BillingModel.USAGE)
        owner = customer(plan=plan, now=T0, subscription_status="trialing")
        call(owner, priced_tool(), outcome="timeout")
        assert not OutboxMessage.objects.filter(kind="meter_event").exists()

    def test_requires_a_subscription(self):
        plan = PlanFactory(billing_model=BillingModel.USAGE)
        owner = customer(plan=plan, now=T0, subscription_status="canceled")
        assert refused(owner, priced_tool()).code == "subscription_required"


class TestPayAsYouGo:
    def plan(self, limit_cents=None):
        limit = None if limit_cents is None else limit_cents * CENT
        return PlanFactory(billing_model=BillingModel.PER_CALL, exposure_limit_microcents=limit)

    def test_requires_a_payment_method(self):
        owner = customer(plan=self.plan(), now=T0)
        error = refused(owner, priced_tool())
        assert error.code == "payment_method_required"

    def test_accrues_unbilled_usage(self):
        owner = customer(plan=self.plan(), now=T0, has_payment_method=True)
        tool = priced_tool(cents=1.5)
        call(owner, tool)
        call(owner, tool)
        assert balance(owner).unbilled_microcents == 3 * CENT

    def test_exposure_limit_counts_accrued_and_in_flight(self):
        owner = customer(plan=self.plan(limit_cents=3), now=T0, has_payment_method=True)
        tool = priced_tool(cents=1)
        call(owner, tool)
        call_authorize(customer=owner, tool=tool, now=T0)  # in flight: 1 cent held
        call(owner, tool)
        error = refused(owner, tool)
        assert (error.code, error.extra["scope"]) == ("budget_exceeded", "exposure")
        account = balance(owner)
        assert (account.unbilled_microcents, account.held_microcents) == (2 * CENT, CENT)

    def test_exposure_limit_frees_up_when_a_call_is_released(self):
        owner = customer(plan=self.plan(limit_cents=1), now=T0, has_payment_method=True)
        tool = priced_tool(cents=1)
        call(owner, tool, outcome="error")
        call(owner, tool)
        assert refused(owner, tool).extra["scope"] == "exposure"


class TestBudgets:
    def test_key_budget_per_day(self):
        owner, tool = funded(100), priced_tool(cents=2, credits=1)
        key = api_key(owner, daily_budget_microcents=5 * CENT).api_key
        call(owner, tool, key=key)
        call(owner, tool, key=key)
        error = refused(owner, tool, key=key)
        assert error.code == "budget_exceeded" and error.extra["scope"] == "api_key"
        other = api_key(owner).api_key  # another key has no cap of its own
        call(owner, tool, key=other)
        call(owner, tool, key=key, now=T0 + timedelta(days=1))  # a new day
        assert balance(owner).balance_credits == 96

    def test_customer_budget_spans_all_keys(self):
        owner = funded(100, daily_budget_microcents=3 * CENT)
        tool = priced_tool(cents=1, credits=1)
        for _ in range(3):
            call(owner, tool, key=api_key(owner).api_key)
        error = refused(owner, tool, key=api_key(owner).api_key)
        assert error.code == "budget_exceeded" and error.extra["scope"] == "customer"

    def test_a_refused_budget_reserves_no_credits(self):
        owner, tool = funded(100), priced_tool(cents=2, credits=1)
        key = api_key(owner, daily_budget_microcents=CENT).api_key
        refused(owner, tool, key=key)
        assert balance(owner).held_credits == 0

    def test_released_calls_give_their_budget_back(self):
        owner, tool = funded(100), priced_tool(cents=2, credits=1)
        key = api_key(owner, daily_budget_microcents=2 * CENT).api_key
        call(owner, tool, key=key, outcome="error")
        call(owner, tool, key=key)
        assert refused(owner, tool, key=key).code == "budget_exceeded"


class TestAccountState:
    def test_past_due_customers_are_asked_to_update_the_card(self):
        owner = funded(10)
        Customer.objects.filter(pk=owner.pk).update(status=Customer.Status.PAST_DUE)
        owner.refresh_from_db()
        error = refused(owner, priced_tool())
        assert error.code == "payment_failed" and error.extra["action"] == "update_payment_method"

    def test_suspended_customers_are_refused(self):
        owner = funded(10)
        owner.status = Customer.Status.SUSPENDED
        assert refused(owner, priced_tool()).code == "account_inactive"

    def test_keys_limited_to_some_tools(self):
        owner = funded(10)
        key = api_key(owner, scopes=["allowed"]).api_key
        call(owner, priced_tool("allowed"), key=key)
        assert refused(owner, priced_tool("other"), key=key).code == "forbidden_tool"

    def test_stale_holds_are_released(self):
        owner, tool = funded(10), priced_tool(credits=4)
        hold = call_authorize(customer=owner, tool=tool, now=T0)
        assert holds_release_stale(now=T0 + timedelta(seconds=60)) == 0
        assert holds_release_stale(now=T0 + timedelta(hours=1)) == 1
        assert Hold.objects.get(pk=hold.pk).status == Hold.Status.EXPIRED
        assert balance(owner).held_credits == 0
        # A late capture of an expired hold charges nothing.
        settlement = call_capture(hold_id=hold.pk, now=T0 + timedelta(hours=1))
        assert not settlement.usage.charged and balance(owner).balance_credits == 10
