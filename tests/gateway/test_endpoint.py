"""The /mcp endpoint end to end: the official MCP client over HTTP against the running site."""

from __future__ import annotations

import logging

import pytest
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from billing.models import BillingModel, Hold, LedgerEntry, Plan, Tool, UsageRecord
from billing.services.pricing import tool_price_set
from tests.factories import PlanFactory, api_key, customer
from tests.gateway import tools_for_tests
from tests.gateway.support import (
    balance,
    call,
    call_error,
    list_tools,
    refusal,
    serving,
    site_app,
)

pytestmark = pytest.mark.django_db(transaction=True)

RECEIPT = "mcpbilling/receipt"


class TestToolsList:
    def test_lists_the_tools_with_their_price(self, site, funded):
        _, key = funded(10)
        tools = list_tools(site, key)
        assert tools["calculate"].meta["mcpbilling/price"] == {
            "currency": "usd",
            "unit_amount_decimal": "1",
            "credits": 1,
        }
        assert tools["hash_text"].meta["mcpbilling/price"]["unit_amount_decimal"] == "0.05"
        assert tools["date_calc"].meta["mcpbilling/price"]["unit_amount_decimal"] == "0"
        assert tools["calculate"].input_schema["properties"]["expression"]["type"] == "string"

    def test_shows_only_the_tools_the_key_may_call(self, site, funded):
        owner, _ = funded(10)
        scoped = api_key(owner, scopes=["calculate", "hash_text"]).secret
        assert set(list_tools(site, scoped)) == {"calculate", "hash_text"}

    def test_a_tool_without_price_or_disabled_is_not_offered(self, site, funded):
        _, key = funded(10)
        Tool.objects.create(name="unpriced", input_schema={"type": "object"})
        Tool.objects.filter(name="hash_text").update(enabled=False)
        tools = list_tools(site, key)
        assert "unpriced" not in tools and "hash_text" not in tools
        assert "calculate" in tools

    def test_the_listing_shows_a_new_price(self, site, funded):
        _, key = funded(10)
        tool_price_set(tool=Tool.objects.get(name="calculate"), unit_amount_microcents=250_000)
        price = list_tools(site, key)["calculate"].meta["mcpbilling/price"]
        assert price == {"currency": "usd", "unit_amount_decimal": "0.25", "credits": None}


class TestPricedCall:
    def test_returns_the_result_and_a_receipt_and_debits_once(self, site, funded):
        owner, key = funded(10)
        result = call(site, key, "calculate", {"expression": "(2 + 3) * sqrt(16) / 2^3"})
        assert not result.is_error
        assert result.structured_content == {"result": 2.5}
        receipt = result.meta[RECEIPT]
        usage = UsageRecord.objects.get()
        assert receipt == {
            "usage_id": str(usage.pk),
            "unit_amount_decimal": "1",
            "currency": "usd",
            "credits": 1,
            "balance": 9,
        }
        assert usage.charged and usage.outcome == "success" and usage.tool.name == "calculate"
        assert balance(owner) == 9
        assert LedgerEntry.objects.filter(kind="debit").count() == 1

    def test_legacy_protocol_clients_are_billed_the_same(self, site, funded):
        owner, key = funded(10)
        result = call(site, key, "calculate", {"expression": "6*7"}, mode="legacy")
        assert result.structured_content == {"result": 42}
        assert result.meta[RECEIPT]["balance"] == 9
        assert balance(owner) == 9

    def test_a_free_tool_charges_nothing(self, site, funded):
        owner, key = funded(10)
        result = call(site, key, "date_calc", {"start": "2026-01-31", "months": 1})
        assert result.structured_content["date"] == "2026-02-28"
        assert result.meta[RECEIPT]["unit_amount_decimal"] == "0"
        assert balance(owner) == 10

    def test_x_api_key_header_is_accepted(self, site, funded):
        owner, key = funded(10)
        result = call(site, None, "calculate", {"expression": "1+1"}, headers={"X-API-Key": key})
        assert result.structured_content == {"result": 2}
        assert balance(owner) == 9


class TestRefusals:
    def test_empty_balance_is_insufficient_credits_with_a_link_and_no_charge(self, site, funded):
        owner, key = funded(0)
        result = call(site, key, "calculate", {"expression": "1+1"})
        error = refusal(result)
        assert error["code"] == "insufficient_credits"
        assert error["action_url"] == "http://127.0.0.1:8000/billing/credits/"
        assert "http://127.0.0.1:8000/billing/credits/" in result.content[0].text
        assert not UsageRecord.objects.exists() and not Hold.objects.exists()
        assert balance(owner) == 0

    def test_subscription_plan_without_subscription_links_to_the_plan(self, site):
        plan = PlanFactory(slug="pro", billing_model=BillingModel.SUBSCRIPTION, included_calls=10)
        key = api_key(customer(plan=plan)).secret
        error = refusal(call(site, key, "calculate", {"expression": "1"}))
        assert error["code"] == "subscription_required"
        assert error["action_url"] == "http://127.0.0.1:8000/billing/plans/?plan=pro"

    def test_pay_as_you_go_without_a_card_asks_for_one(self, site):
        key = api_key(customer(plan=PlanFactory(billing_model=BillingModel.PER_CALL))).secret
        error = refusal(call(site, key, "calculate", {"expression": "1"}))
        assert error["code"] == "payment_method_required"
        assert error["action_url"] == "http://127.0.0.1:8000/billing/payment-method/"

    def test_included_calls_used_up_is_quota_exceeded(self, site):
        plan = PlanFactory(billing_model=BillingModel.SUBSCRIPTION, included_calls=1)
        key = api_key(customer(plan=plan, subscription_status="active")).secret
        first = call(site, key, "calculate", {"expression": "1"})
        # Included in the subscription: no money, no credits.
        assert first.meta[RECEIPT]["unit_amount_decimal"] == "0"
        assert first.meta[RECEIPT]["credits"] is None and first.meta[RECEIPT]["balance"] is None
        error = refusal(call(site, key, "calculate", {"expression": "1"}))
        assert error["code"] == "quota_exceeded"
        assert error["action_url"] == "http://127.0.0.1:8000/billing/plans/"
        assert UsageRecord.objects.count() == 1

    def test_rate_limited_says_when_to_retry(self, site, funded):
        owner, key = funded(10, rate_limit_per_minute=1)
        call(site, key, "calculate", {"expression": "1"})
        error = refusal(call(site, key, "calculate", {"expression": "1"}))
        assert error["code"] == "rate_limited"
        assert 1 <= error["retry_after_s"] <= 60
        assert error["action_url"] is None
        assert balance(owner) == 9


class TestFailedCalls:
    def test_a_failing_tool_charges_nothing(self, site, funded):
        owner, key = funded(10)
        result = call(site, key, "explode", {"message": "no such file"})
        assert result.is_error and result.content[0].text == "no such file"
        assert result.meta[RECEIPT]["unit_amount_decimal"] == "0"
        usage = UsageRecord.objects.get()
        assert not usage.charged and usage.outcome == "error"
        assert balance(owner) == 10

    def test_a_price_that_charges_failed_calls_charges_them(self, site, funded):
        owner, key = funded(10)
        tool_price_set(
            tool=Tool.objects.get(name="explode"),
            unit_amount_microcents=2_000_000,
            credits=2,
            charge_failed_calls=True,
        )
        result = call(site, key, "explode")
        assert result.is_error and result.meta[RECEIPT]["credits"] == 2
        assert UsageRecord.objects.get().charged
        assert balance(owner) == 8

    def test_a_crash_is_an_error_result_that_hides_the_details(self, site, funded):
        owner, key = funded(10)
        result = call(site, key, "crash")
        assert result.is_error and "internal detail" not in result.content[0].text
        assert balance(owner) == 10

    def test_a_timeout_charges_nothing(self, site, funded):
        owner, key = funded(10)
        result = call(site, key, "hang")
        assert result.is_error and "did not finish" in result.content[0].text
        usage = UsageRecord.objects.select_related("hold").get()
        assert usage.outcome == "timeout" and usage.hold.status == Hold.Status.RELEASED
        assert balance(owner) == 10


class TestIdempotency:
    def test_a_retried_key_returns_the_stored_result_and_charges_once(self, site, funded):
        owner, key = funded(10)
        tools_for_tests.runs.clear()
        meta = {"mcpbilling/idempotency_key": "order-42"}
        first = call(site, key, "counted", {"label": "a"}, meta=meta)
        second = call(site, key, "counted", {"label": "a"}, meta=meta)
        assert second.structured_content == first.structured_content == {"result": "a"}
        assert second.meta[RECEIPT]["usage_id"] == first.meta[RECEIPT]["usage_id"]
        assert tools_for_tests.runs == ["a"]
        assert balance(owner) == 9 and UsageRecord.objects.count() == 1

    def test_a_key_of_a_failed_call_may_be_retried(self, site, funded):
        owner, key = funded(10)
        meta = {"mcpbilling/idempotency_key": "retry-me"}
        assert call(site, key, "explode", meta=meta).is_error
        assert not call(site, key, "counted", {"label": "b"}, meta=meta).is_error
        assert balance(owner) == 9

    def test_a_malformed_key_is_a_jsonrpc_error(self, site, funded):
        owner, key = funded(10)
        meta = {"mcpbilling/idempotency_key": 7}
        error = call_error(site, key, "calculate", {"expression": "1"}, meta=meta)
        assert error.error.code == INVALID_PARAMS and "idempotency_key" in error.error.message
        assert balance(owner) == 10


class TestProtocolErrors:
    def test_an_unknown_tool_is_a_jsonrpc_error(self, site, funded):
        _, key = funded(10)
        error = call_error(site, key, "no_such_tool")
        assert error.error.code == INVALID_PARAMS
        assert "Unknown tool" in error.error.message

    def test_a_tool_the_key_may_not_call_is_unknown_to_it(self, site, funded):
        owner, _ = funded(10)
        scoped = api_key(owner, scopes=["hash_text"]).secret
        assert (
            call_error(site, scoped, "calculate", {"expression": "1"}).error.code == INVALID_PARAMS
        )
        assert balance(owner) == 10

    def test_wrong_argument_types_are_a_jsonrpc_error_and_charge_nothing(self, site, funded):
        owner, key = funded(10)
        error = call_error(site, key, "calculate", {"expression": 12})
        assert error.error.code == INVALID_PARAMS
        assert "expression" in error.error.message
        assert not UsageRecord.objects.exists() and balance(owner) == 10

    def test_an_argument_over_its_size_limit_is_refused(self, site, funded):
        owner, key = funded(10)
        error = call_error(site, key, "calculate", {"expression": "1+" * 300 + "1"})
        assert error.error.code == INVALID_PARAMS and "500" in error.error.message
        assert balance(owner) == 10


def test_a_customer_on_an_inactive_plan_is_asked_to_choose_one(site):
    key = api_key(customer(plan=PlanFactory(active=False))).secret
    assert refusal(call(site, key, "calculate", {"expression": "1"}))["code"] == (
        "subscription_required"
    )


def test_freemium_refusal_names_the_upgrade_plan(site):
    paid = PlanFactory(slug="credits", billing_model=BillingModel.CREDITS)
    plan = PlanFactory(
        billing_model=BillingModel.FREEMIUM,
        free_calls=1,
        free_tier_action=Plan.FreeTierAction.REFUSE,
        upgrade_plan=paid,
    )
    key = api_key(customer(plan=plan)).secret
    assert not call(site, key, "calculate", {"expression": "1"}).is_error
    error = refusal(call(site, key, "calculate", {"expression": "1"}))
    assert error["code"] == "free_tier_exhausted"
    assert error["action_url"] == "http://127.0.0.1:8000/billing/plans/?plan=credits"


class TestInternalErrors:
    @pytest.mark.parametrize("mode", ["auto", "legacy"])
    def test_a_broken_dependency_is_a_generic_internal_error_that_charges_nothing(
        self, settings, transactional_db, funded, mode
    ):
        settings.REDIS_URL = "redis://127.0.0.1:1/0"  # the rate limiter's Redis is down
        owner, key = funded(10)
        logged: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = logged.append
        logging.getLogger("mcpbilling.gateway.server").addHandler(handler)
        try:
            with serving(site_app()) as site:
                error = call_error(site, key, "calculate", {"expression": "1"}, mode=mode)
        finally:
            logging.getLogger("mcpbilling.gateway.server").removeHandler(handler)
        assert error.error.code == INTERNAL_ERROR
        assert error.error.message.startswith("Internal error; nothing was charged (reference ")
        assert "refused" not in error.error.message.lower()
        reference = error.error.message.rsplit(" ", 1)[1].rstrip(").")
        assert any(reference in record.getMessage() and record.exc_info for record in logged)
        assert balance(owner) == 10 and not UsageRecord.objects.exists()
