"""The credit ledger: grants, expiry, refunds and reversals."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum

from billing.models import CreditAccount, CreditLot, LedgerEntry
from billing.services.calls import call_authorize, call_capture
from billing.services.ledger import credit_expire, credit_grant, credit_reverse, usage_refund
from mcpbilling.errors import ApplicationError
from tests.factories import customer, priced_tool

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def account(owner) -> CreditAccount:
    return CreditAccount.objects.get(customer=owner)


def assert_consistent(owner):
    acct = account(owner)
    entries = LedgerEntry.objects.filter(account=acct).aggregate(s=Sum("amount_credits"))["s"] or 0
    lots = CreditLot.objects.filter(account=acct).aggregate(s=Sum("remaining_credits"))["s"] or 0
    assert acct.balance_credits == entries == lots
    assert 0 <= acct.held_credits <= acct.balance_credits


def spend(owner, tool, now=T0):
    hold = call_authorize(customer=owner, tool=tool, now=now)
    return call_capture(hold_id=hold.pk, now=now).usage


def test_grant_is_idempotent():
    owner = customer()
    first = credit_grant(customer_id=owner.pk, credits=50, idempotency_key="checkout:cs_1")
    again = credit_grant(customer_id=owner.pk, credits=50, idempotency_key="checkout:cs_1")
    assert first.pk == again.pk
    assert account(owner).balance_credits == 50
    assert_consistent(owner)


def test_a_key_reused_for_another_amount_is_refused():
    owner = customer()
    credit_grant(customer_id=owner.pk, credits=50, idempotency_key="k")
    with pytest.raises(ApplicationError) as info:
        credit_grant(customer_id=owner.pk, credits=60, idempotency_key="k")
    assert info.value.code == "idempotency_conflict"
    assert account(owner).balance_credits == 50


@pytest.mark.parametrize("credits", [0, -5])
def test_grants_must_be_positive(credits):
    owner = customer()
    with pytest.raises(ApplicationError):
        credit_grant(customer_id=owner.pk, credits=credits, idempotency_key="bad")
    assert not LedgerEntry.objects.exists()


def test_calls_spend_the_lot_that_expires_first():
    owner, tool = customer(), priced_tool(credits=3)
    credit_grant(customer_id=owner.pk, credits=5, idempotency_key="forever")
    credit_grant(
        customer_id=owner.pk, credits=5, idempotency_key="soon", expires_at=T0 + timedelta(days=1)
    )
    spend(owner, tool)
    lots = {lot.entry.idempotency_key: lot.remaining_credits for lot in CreditLot.objects.all()}
    assert lots == {"forever": 5, "soon": 2}
    assert_consistent(owner)


def test_a_call_larger_than_the_first_lot_spends_the_next_ones_in_expiry_order():
    owner, tool = customer(), priced_tool(credits=6)
    for key, credits, days in (("forever", 5, None), ("late", 3, 9), ("soon", 2, 1), ("mid", 2, 5)):
        expires_at = T0 + timedelta(days=days) if days else None
        credit_grant(
            customer_id=owner.pk, credits=credits, idempotency_key=key, expires_at=expires_at
        )
    spend(owner, tool)
    lots = {lot.entry.idempotency_key: lot.remaining_credits for lot in CreditLot.objects.all()}
    assert lots == {"soon": 0, "mid": 0, "late": 1, "forever": 5}
    assert_consistent(owner)


def test_a_capture_the_lots_cannot_cover_is_refused_and_changes_nothing():
    owner, tool = customer(), priced_tool(credits=3)
    credit_grant(customer_id=owner.pk, credits=5, idempotency_key="grant")
    hold = call_authorize(customer=owner, tool=tool, now=T0)
    CreditLot.objects.filter(account__customer=owner).update(remaining_credits=2)  # corrupted
    with pytest.raises(ApplicationError) as info:
        call_capture(hold_id=hold.pk, now=T0)
    assert info.value.code == "ledger_inconsistent"
    assert (account(owner).balance_credits, account(owner).held_credits) == (5, 3)
    assert CreditLot.objects.get().remaining_credits == 2
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.DEBIT).exists()


def test_expiry_takes_what_is_left_of_expired_lots_only():
    owner, tool = customer(), priced_tool(credits=3)
    credit_grant(customer_id=owner.pk, credits=5, idempotency_key="forever")
    credit_grant(
        customer_id=owner.pk, credits=5, idempotency_key="soon", expires_at=T0 + timedelta(days=1)
    )
    spend(owner, tool)
    assert credit_expire(now=T0) == 0
    assert credit_expire(now=T0 + timedelta(days=2)) == 2
    assert account(owner).balance_credits == 5
    assert credit_expire(now=T0 + timedelta(days=3)) == 0  # nothing twice
    assert LedgerEntry.objects.filter(kind="expiry").count() == 1
    assert_consistent(owner)


def test_expiry_leaves_credits_held_by_a_call_in_flight():
    owner, tool = customer(), priced_tool(credits=4)
    credit_grant(
        customer_id=owner.pk, credits=5, idempotency_key="soon", expires_at=T0 + timedelta(days=1)
    )
    hold = call_authorize(customer=owner, tool=tool, now=T0)
    later = T0 + timedelta(days=2)
    assert credit_expire(now=later) == 1  # 4 are held
    call_capture(hold_id=hold.pk, now=later)
    assert account(owner).balance_credits == 0
    assert_consistent(owner)


def test_refund_returns_a_calls_credits_once():
    owner, tool = customer(), priced_tool(credits=3)
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="g")
    usage = spend(owner, tool)
    usage_refund(usage_id=usage.pk)
    usage_refund(usage_id=usage.pk)
    assert account(owner).balance_credits == 10
    assert LedgerEntry.objects.filter(kind="refund").count() == 1
    assert_consistent(owner)


def test_reversal_takes_back_only_unspent_credits():
    owner, tool = customer(), priced_tool(credits=3)
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="checkout:cs_9")
    spend(owner, tool)
    entry = credit_reverse(grant_idempotency_key="checkout:cs_9")
    assert entry.amount_credits == -7
    assert credit_reverse(grant_idempotency_key="checkout:cs_9") is None  # once
    assert account(owner).balance_credits == 0
    assert_consistent(owner)


def test_reversal_of_an_unknown_grant_is_an_error():
    with pytest.raises(ApplicationError) as info:
        credit_reverse(grant_idempotency_key="checkout:nope")
    assert info.value.code == "grant_not_found"
