"""Reads of billing state."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Prefetch, QuerySet, Sum

from billing.models import (
    BillingModel,
    CreditAccount,
    Hold,
    LedgerEntry,
    Plan,
    Tool,
    ToolPrice,
    UsageRecord,
)
from customers.models import Customer


def plan_uses_credits(plan: Plan | None) -> bool:
    """Whether customers on ``plan`` pay with credits (and so have a balance to show)."""
    return plan is not None and plan.billing_model == BillingModel.CREDITS


def credit_balance(*, customer_id: int, plan: Plan | None) -> int | None:
    """The customer's credit balance, or None when its plan does not use credits."""
    if not plan_uses_credits(plan):
        return None
    return (
        CreditAccount.objects.filter(customer_id=customer_id)
        .values_list("balance_credits", flat=True)
        .first()
    )


def credit_balance_recompute(*, customer_id: int) -> int:
    """The balance as the ledger says it is: the sum of the account's entries."""
    total = LedgerEntry.objects.filter(account__customer_id=customer_id).aggregate(
        total=Sum("amount_credits")
    )["total"]
    return total or 0


@dataclass(frozen=True)
class Balance:
    """A customer's credits and money in flight, as the account caches them."""

    credits: int
    held_credits: int
    held_microcents: int
    unbilled_microcents: int
    currency: str
    uses_credits: bool

    @property
    def available_credits(self) -> int:
        return self.credits - self.held_credits


def account_balance(*, customer: Customer) -> Balance:
    """The customer's balance: credits (all, held by calls in flight) and money in flight."""
    account = CreditAccount.objects.get(customer=customer)
    plan = customer.plan
    return Balance(
        credits=account.balance_credits,
        held_credits=account.held_credits,
        held_microcents=account.held_microcents,
        unbilled_microcents=account.unbilled_microcents,
        currency=plan.currency if plan else settings.BILLING_DEFAULT_CURRENCY,
        uses_credits=plan_uses_credits(plan),
    )


def ledger_entry_list(*, customer: Customer) -> QuerySet[LedgerEntry]:
    """The customer's ledger, each entry with the lot it opened (grants, refunds)."""
    return LedgerEntry.objects.filter(account__customer=customer).select_related("lot")


def usage_list() -> QuerySet[UsageRecord]:
    """Settled calls with the names a listing shows; filtered and paged by the caller.

    Only the columns a listing shows are read: not the stored tool result, nor the
    related rows' JSON (a tool's schema, a price's tiers), which cost more to decode
    than the query costs to run.
    """
    return UsageRecord.objects.select_related("tool", "price", "plan", "api_key").only(
        *(f.name for f in UsageRecord._meta.concrete_fields if f.name != "response"),
        "tool__name",
        "price__version",
        "plan__slug",
        "api_key__prefix",
    )


def hold_list_open() -> QuerySet[Hold]:
    """Holds of calls in flight (and spares reserved for the next calls)."""
    return Hold.objects.filter(status=Hold.Status.HELD).select_related("tool")


def tool_list() -> QuerySet[Tool]:
    """Tools, each with its price versions newest first (the first is the active one)."""
    return Tool.objects.prefetch_related(
        Prefetch("prices", queryset=ToolPrice.objects.order_by("-version"))
    )


def tool_price_list(*, tool: Tool) -> QuerySet[ToolPrice]:
    return ToolPrice.objects.filter(tool=tool)
