"""Reads of billing state."""

from __future__ import annotations

from django.db.models import Sum

from billing.models import BillingModel, CreditAccount, LedgerEntry, Plan


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
