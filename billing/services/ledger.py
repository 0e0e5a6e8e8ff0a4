"""The credit ledger: grants, debits, refunds, expiry and reversals.

Lock order: the account row (``SELECT ... FOR UPDATE``) before its lots, in
every writer, so lot changes of one account are serialised by that lock.
Invariants: balance = sum of entries = sum of the lots' remaining credits;
0 <= held <= balance.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache

from django.db import connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from billing.models import (
    CreditAccount,
    CreditLot,
    LedgerEntry,
    PaymentPath,
    PeriodCounter,
    UsageRecord,
)
from billing.rows import Slot, Statement, db_value, row_insert, values_of
from mcpbilling.errors import ApplicationError

Kind = LedgerEntry.Kind


def account_lock(*, customer_id: int) -> CreditAccount:
    """The customer's credit account, row-locked until the transaction ends."""
    return CreditAccount.objects.select_for_update().get(customer_id=customer_id)


def entry_append(
    *,
    account: CreditAccount,
    kind: str,
    amount_credits: int,
    idempotency_key: str,
    description: str = "",
    usage: UsageRecord | None = None,
) -> LedgerEntry:
    """Append an entry to a locked account and move its cached balance with it."""
    balance = account.balance_credits + amount_credits
    if balance < account.held_credits:
        raise ApplicationError("insufficient_credits", "The balance cannot cover this entry.")
    CreditAccount.objects.filter(pk=account.pk).update(
        balance_credits=F("balance_credits") + amount_credits, updated_at=timezone.now()
    )
    account.balance_credits = balance
    return _entry_write(
        account_id=account.pk,
        kind=kind,
        amount_credits=amount_credits,
        balance_after=balance,
        idempotency_key=idempotency_key,
        description=description,
        usage=usage,
    )


def _entry_write(
    *,
    account_id: int,
    kind: str,
    amount_credits: int,
    balance_after: int,
    idempotency_key: str,
    description: str,
    usage: UsageRecord | None,
) -> LedgerEntry:
    """The entry row itself; callers have moved the account's cached balance under its lock."""
    return row_insert(
        LedgerEntry(
            account_id=account_id,
            kind=kind,
            amount_credits=amount_credits,
            balance_after_credits=balance_after,
            idempotency_key=idempotency_key,
            description=description[:255],
            usage=usage,
        )
    )


ACCOUNTS_TABLE = CreditAccount._meta.db_table
_LOTS = CreditLot._meta.db_table


@cache
def _debit_entry_sql() -> tuple[str, tuple[Field, ...]]:
    """INSERT ... SELECT of a debit's entry, reading the account id and balance in the statement.

    Run after the account's UPDATE in the same transaction, so the balance is the one after it.
    """
    fields = tuple(
        f
        for f in LedgerEntry._meta.concrete_fields
        if not f.primary_key and f.column not in ("account_id", "balance_after_credits")
    )
    quote = connection.ops.quote_name
    # Names come from the models, never from input; values are parameters.
    sql = (
        f"INSERT INTO {quote(LedgerEntry._meta.db_table)} "  # noqa: S608
        f"({', '.join(quote(f.column) for f in fields)}, account_id, balance_after_credits) "
        f"SELECT {', '.join(['%s'] * len(fields))}, id, balance_credits "
        f"FROM {ACCOUNTS_TABLE} WHERE customer_id = %s"
    )
    return sql, fields


def held_credits_take(
    *, customer_id: int, credits: int, now: datetime | Slot, required: BaseException
) -> Statement:
    """Turn ``credits`` a hold reserved into spent ones: the statement, to run in a
    transaction that then records the debit with ``debit_record``'s.

    One ``UPDATE ... RETURNING`` takes the account's row lock and moves both
    cached balances; its row is (account id, balance after). It is required:
    when fewer credits are held than that, the hold is no longer held and
    ``required`` is raised.
    """
    return Statement(
        f"UPDATE {ACCOUNTS_TABLE} SET balance_credits = balance_credits - %s, "  # noqa: S608
        "held_credits = held_credits - %s, updated_at = %s "
        "WHERE customer_id = %s AND held_credits >= %s RETURNING id, balance_credits",
        (credits, credits, db_value(CreditAccount, "updated_at", now), customer_id, credits),
        required,
    )


# Take N credits from the account's open lots, the one expiring first first: each
# lot gives what it has, up to what the lots before it left to take. No lot changes
# when together they hold less (the ledger would be inconsistent): no row returned.
# Parameters: credits, credits, customer id, credits, credits.
_LOTS_TAKE = (
    f"UPDATE {_LOTS} SET remaining_credits = remaining_credits - take.credits "  # noqa: S608
    "FROM (SELECT id, CASE WHEN remaining_credits < %s - ahead "
    "THEN remaining_credits ELSE %s - ahead END AS credits "
    "FROM (SELECT id, remaining_credits, "
    "SUM(remaining_credits) OVER (ORDER BY expires_at ASC NULLS LAST, id ASC) "
    "- remaining_credits AS ahead, SUM(remaining_credits) OVER () AS open_credits "
    f"FROM {_LOTS} WHERE account_id = "
    f"(SELECT id FROM {ACCOUNTS_TABLE} WHERE customer_id = %s) AND remaining_credits > 0) AS lots "
    "WHERE ahead < %s AND open_credits >= %s) AS take "
    f"WHERE {_LOTS}.id = take.id RETURNING 1"
)


def debit_record(
    *,
    customer_id: int,
    credits: int,
    idempotency_key: str | Slot,
    description: str,
    usage_id: uuid.UUID | Slot,
    now: datetime | Slot,
) -> tuple[Statement, Statement]:
    """The ledger entry and lot changes of credits taken by ``held_credits_take``: the
    statements, to run after it in its transaction.

    That statement holds the account's row lock, so no other writer changes the
    lots meanwhile.
    """
    sql, fields = _debit_entry_sql()
    entry = {
        "kind": Kind.DEBIT,
        "amount_credits": -credits,
        "idempotency_key": idempotency_key,
        "description": description[:255],
        "usage_id": usage_id,
        "created_at": now,
    }
    return (
        Statement(sql, (*values_of(fields, entry), customer_id)),
        Statement(
            _LOTS_TAKE,
            (credits, credits, customer_id, credits, credits),
            ApplicationError(
                "ledger_inconsistent", "The lots hold less than the balance.", status=500
            ),
        ),
    )


def _existing(idempotency_key: str, *, account: CreditAccount, amount: int) -> LedgerEntry | None:
    entry = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if entry is not None and (entry.account_id != account.pk or entry.amount_credits != amount):
        raise ApplicationError(
            "idempotency_conflict",
            f"Idempotency key {idempotency_key!r} was used for a different entry.",
            status=409,
        )
    return entry


@transaction.atomic
def credit_grant(
    *,
    customer_id: int,
    credits: int,
    idempotency_key: str,
    description: str = "",
    expires_at: datetime | None = None,
    kind: str = Kind.GRANT,
) -> LedgerEntry:
    """Add credits once per idempotency key; a repeat returns the first entry."""
    if credits <= 0:
        raise ApplicationError("invalid_amount", "A grant must be a positive number of credits.")
    account = account_lock(customer_id=customer_id)
    existing = _existing(idempotency_key, account=account, amount=credits)
    if existing is not None:
        return existing
    entry = entry_append(
        account=account,
        kind=kind,
        amount_credits=credits,
        idempotency_key=idempotency_key,
        description=description,
    )
    CreditLot.objects.create(
        account=account,
        entry=entry,
        granted_credits=credits,
        remaining_credits=credits,
        expires_at=expires_at,
    )
    return entry


@transaction.atomic
def credit_adjust(
    *, customer_id: int, credits: int, reason: str, idempotency_key: str
) -> LedgerEntry:
    """Correct a balance by hand, once per idempotency key; ``reason`` is the entry's text.

    Credits added come as a lot that never expires; credits removed come from the
    lots that expire first, and never from what calls in flight hold.
    """
    if not reason.strip():
        raise ApplicationError("reason_required", "An adjustment needs a reason.")
    if credits > 0:
        return credit_grant(
            customer_id=customer_id,
            credits=credits,
            idempotency_key=idempotency_key,
            description=reason,
            kind=Kind.ADJUSTMENT,
        )
    if credits == 0:
        raise ApplicationError("invalid_amount", "An adjustment adds or removes credits, not 0.")
    account = account_lock(customer_id=customer_id)
    existing = _existing(idempotency_key, account=account, amount=credits)
    if existing is not None:
        return existing
    if -credits > account.available_credits:
        raise ApplicationError(
            "insufficient_credits",
            f"Only {account.available_credits} credits can be removed: the balance is "
            f"{account.balance_credits}, of which {account.held_credits} are held by calls "
            "in flight.",
        )
    entry = entry_append(
        account=account,
        kind=Kind.ADJUSTMENT,
        amount_credits=credits,
        idempotency_key=idempotency_key,
        description=reason,
    )
    left = -credits
    for lot in CreditLot.objects.filter(account=account, remaining_credits__gt=0):  # expiring first
        taken = min(lot.remaining_credits, left)
        CreditLot.objects.filter(pk=lot.pk).update(remaining_credits=F("remaining_credits") - taken)
        left -= taken
        if not left:
            break
    return entry


@transaction.atomic
def usage_refund(*, usage_id, reason: str = "") -> LedgerEntry | None:
    """Give back what a charged call cost, once; returns the credit entry (None if not credits).

    Refunded credits come back as a lot that does not expire (docs/decisions); a
    pay-as-you-go amount is taken off what will be collected; an included or free
    call is given back to the period's count. Refused (nothing changes) when the
    money already left our hands: a pay-as-you-go amount collected in a payment, or
    a call reported to a Stripe meter; those are refunded at Stripe.
    """
    usage = UsageRecord.objects.select_for_update().get(pk=usage_id)
    if not usage.charged:
        raise ApplicationError("not_charged", "This call was not charged.")
    if usage.refunded_at is not None:
        return LedgerEntry.objects.filter(idempotency_key=f"refund:{usage.pk}").first()
    if usage.path == PaymentPath.METERED:
        raise ApplicationError(
            "refund_at_stripe",
            "This call was reported to a Stripe meter, which bills it: credit the customer at "
            "Stripe (a credit note or a balance adjustment).",
        )
    now = timezone.now()
    UsageRecord.objects.filter(pk=usage.pk).update(refunded_at=now)
    if usage.credits:
        account = account_lock(customer_id=usage.customer_id)
        entry = entry_append(
            account=account,
            kind=Kind.REFUND,
            amount_credits=usage.credits,
            idempotency_key=f"refund:{usage.pk}",
            description=reason or f"Refund of call {usage.pk}",
            usage=usage,
        )
        CreditLot.objects.create(
            account=account,
            entry=entry,
            granted_credits=usage.credits,
            remaining_credits=usage.credits,
        )
        return entry
    if usage.path == PaymentPath.PAYG and usage.amount_microcents:
        taken_off = CreditAccount.objects.filter(
            customer_id=usage.customer_id, unbilled_microcents__gte=usage.amount_microcents
        ).update(unbilled_microcents=F("unbilled_microcents") - usage.amount_microcents)
        if not taken_off:
            raise ApplicationError(
                "already_collected",
                "This call's amount was already collected in a payment: refund that payment "
                "at Stripe.",
            )
    counted = {
        PaymentPath.INCLUDED: "included_calls_used",
        PaymentPath.FREE_TIER: "free_calls_used",
    }
    if usage.path in counted:
        field = counted[usage.path]
        PeriodCounter.objects.filter(
            customer_id=usage.customer_id, period_start=usage.period_start, **{f"{field}__gt": 0}
        ).update(**{field: F(field) - 1})
    return None


def _take_from_lot(*, lot: CreditLot, kind: str, idempotency_key: str, description: str):
    """Remove what is left of a lot, as far as unheld credits allow; None when nothing moved."""
    account = account_lock(customer_id=lot.account.customer_id)
    lot.refresh_from_db(fields=["remaining_credits"])
    amount = min(lot.remaining_credits, account.available_credits)
    if amount <= 0:
        return None
    entry = entry_append(
        account=account,
        kind=kind,
        amount_credits=-amount,
        idempotency_key=idempotency_key.format(remaining=lot.remaining_credits),
        description=description,
    )
    CreditLot.objects.filter(pk=lot.pk).update(remaining_credits=F("remaining_credits") - amount)
    return entry


def credit_expire(*, now: datetime | None = None) -> int:
    """Expire the unspent credits of every lot past its date; returns credits expired.

    Credits reserved by a call in flight are left in the lot and expire on a
    later run, so the call can still be captured.
    """
    now = now or timezone.now()
    expired = 0
    due = CreditLot.objects.filter(expires_at__lte=now, remaining_credits__gt=0).select_related(
        "account"
    )
    for lot in due.iterator():
        with transaction.atomic():
            entry = _take_from_lot(
                lot=lot,
                kind=Kind.EXPIRY,
                idempotency_key=f"expiry:{lot.pk}:{{remaining}}",
                description=f"Credits of grant {lot.entry_id} expired",
            )
        expired += -entry.amount_credits if entry else 0
    return expired


@transaction.atomic
def credit_reverse(*, grant_idempotency_key: str, reason: str = "") -> LedgerEntry | None:
    """Take back what is left unspent of a grant (its payment was refunded)."""
    grant = LedgerEntry.objects.filter(idempotency_key=grant_idempotency_key).first()
    if grant is None or not hasattr(grant, "lot"):
        raise ApplicationError(
            "grant_not_found", f"No grant {grant_idempotency_key!r}.", status=404
        )
    return _take_from_lot(
        lot=grant.lot,
        kind=Kind.REVERSAL,
        idempotency_key=f"reversal:{grant.lot.pk}:{{remaining}}",
        description=reason or f"Reversal of {grant_idempotency_key}",
    )
