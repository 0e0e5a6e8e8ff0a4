"""The charge engine: authorise a tool call, then capture or release it.

``call_authorize`` decides, in one short transaction, whether the customer's
plan lets the call run and reserves what it will cost (a hold). The tool runs
outside any transaction. ``call_capture`` (success, or failure on a price that
charges failed calls) or ``call_release`` then settle the hold, writing the
usage record, the ledger entry and the outbox row together.

Every check-then-write is a conditional ``UPDATE ... WHERE <limit holds>``, so
concurrent calls cannot both pass a limit only one fits under. Lock order, in
every path: tool counter, period counter, account, budget counters, and the
hold last (authorise inserts it, settling marks it settled), so concurrent
calls of one customer cannot deadlock.

Each phase is a ``billing.rows.atomic()`` transaction: its statements are
queued, every condition is a required statement PostgreSQL checks itself, and
nothing is read before the end, so on PostgreSQL the common call costs two
round trips in all, each one implicit transaction (ADR 0007). The price is
confirmed in the same round trip: the call expects the version this process
last saw active and starts again if a newer one came in meanwhile.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections
from django.db.models import F
from django.utils import timezone

from billing.ids import uuid7
from billing.models import (
    BillingModel,
    BudgetCounter,
    Hold,
    OutboxMessage,
    PaymentPath,
    PeriodCounter,
    Plan,
    Tool,
    ToolPeriodCounter,
    UsageRecord,
)
from billing.rows import (
    Slot,
    Statement,
    atomic,
    commit_unflushed,
    db_value,
    execute,
    execute_filled,
    field_values,
    insert_columns,
    insert_statement,
    row_insert,
    row_new,
)
from billing.selectors import credit_balance, plan_uses_credits
from billing.services.ledger import ACCOUNTS_TABLE, debit_record, held_credits_take
from billing.services.pricing import (
    PriceChanged,
    Quote,
    price_at_position,
    tool_price_expect,
    tool_quote,
)
from customers.models import ApiKey, Customer
from customers.services import customer_period_current, customer_plan_change
from mcpbilling.errors import ApplicationError

logger = logging.getLogger(__name__)

Outcome = UsageRecord.Outcome

# The action a refused customer can take; the interface turns it into a URL.
BUY_CREDITS = "buy_credits"
SUBSCRIBE = "subscribe"
ADD_PAYMENT_METHOD = "add_payment_method"
UPGRADE = "upgrade"
UPDATE_PAYMENT_METHOD = "update_payment_method"


def refusal(code: str, message: str, *, action: str | None = None, **extra) -> ApplicationError:
    """A billing refusal with one of the contract's codes; nothing has been charged."""
    return ApplicationError(code, message, status=402, action=action, **extra)


@dataclass(frozen=True)
class Settlement:
    """What a settled call cost and what the customer has left."""

    usage: UsageRecord
    balance_credits: int | None  # None when the customer's plan does not use credits


# --- counters ---------------------------------------------------------------


def counter_add(model, *, keys: dict, field: str, by: int, limit: int | None = None) -> bool:
    """Add ``by`` to ``field`` of the row ``keys`` names (created at zero), unless past ``limit``.

    Returns False, changing nothing, when the new value would exceed ``limit``.
    """
    rows = model.objects.filter(**keys)
    if limit is not None:
        rows = rows.filter(**{f"{field}__lte": limit - by})
    if rows.update(**{field: F(field) + by}):
        return True
    if model.objects.filter(**keys).exists():
        return False
    model.objects.bulk_create([model(**keys)], ignore_conflicts=True)
    return bool(rows.update(**{field: F(field) + by}))


def _tool_position(*, customer: Customer, tool: Tool, by: int) -> int:
    """Count a call of ``tool`` in the period and return its position among them."""
    keys = {"customer": customer, "tool": tool, "period_start": customer.period_start}
    counter_add(ToolPeriodCounter, keys=keys, field="calls", by=by)
    return ToolPeriodCounter.objects.filter(**keys).values_list("calls", flat=True).get()


def _customer_budget(customer: Customer) -> int | None:
    if customer.daily_budget_microcents is not None:
        return customer.daily_budget_microcents
    return customer.plan.daily_budget_microcents if customer.plan else None


def _reserve_budgets(
    *, customer: Customer, api_key: ApiKey | None, amount: int, day
) -> tuple[bool, bool]:
    """Count ``amount`` against the customer's and the key's daily budgets, or refuse.

    Returns which of the two counted it, so a release gives back exactly those.
    """
    key_limit = api_key.daily_budget_microcents if api_key is not None else None
    budgets = [
        ("customer", None, _customer_budget(customer), "this account"),
        ("api_key", api_key, key_limit, "this API key"),
    ]
    for scope, key, limit, owner in budgets:
        if limit is None:
            continue
        keys = {"customer": customer, "api_key": key, "day": day}
        if not counter_add(
            BudgetCounter, keys=keys, field="spent_microcents", by=amount, limit=limit
        ):
            raise refusal(
                "budget_exceeded", f"The daily spending cap of {owner} is reached.", scope=scope
            )
    return budgets[0][2] is not None, key_limit is not None


def _release_budgets(hold: Hold) -> None:
    scopes = []
    if hold.counted_customer_budget:
        scopes.append(None)
    if hold.counted_key_budget:
        scopes.append(hold.api_key_id)
    for api_key_id in scopes:
        BudgetCounter.objects.filter(
            customer_id=hold.customer_id, api_key_id=api_key_id, day=hold.budget_day
        ).update(spent_microcents=F("spent_microcents") - hold.amount_microcents)


# --- authorise ----------------------------------------------------------------


def _reserve_credits(customer: Customer, credits: int) -> None:
    execute(
        f"UPDATE {ACCOUNTS_TABLE} SET held_credits = held_credits + %s "  # noqa: S608
        "WHERE customer_id = %s AND balance_credits >= held_credits + %s RETURNING 1",
        [credits, customer.pk, credits],
        required=refusal(
            "insufficient_credits",
            f"This call costs {credits} credits and the balance does not cover it.",
            action=BUY_CREDITS,
            credits_required=credits,
        ),
    )


def _reserve_exposure(customer: Customer, plan: Plan, amount: int) -> int:
    """Count ``amount`` against the pay-as-you-go exposure limit; returns what was counted."""
    limit = plan.exposure_limit_microcents
    if limit is None:
        return 0
    execute(
        f"UPDATE {ACCOUNTS_TABLE} "  # noqa: S608
        "SET held_microcents = held_microcents + %s WHERE customer_id = %s "
        "AND held_microcents + unbilled_microcents + %s <= %s RETURNING 1",
        [amount, customer.pk, amount, limit],
        required=refusal(
            "budget_exceeded",
            "The amount owed has reached this account's limit; it opens again once paid.",
            action=UPDATE_PAYMENT_METHOD,
            scope="exposure",
        ),
    )
    return amount


def _period_slot(customer: Customer, field: str, limit: int) -> bool:
    keys = {"customer": customer, "period_start": customer.period_start}
    return counter_add(PeriodCounter, keys=keys, field=field, by=1, limit=limit)


def _require_subscription(customer: Customer, plan: Plan) -> None:
    if customer.subscription_status not in ("active", "trialing"):
        raise refusal(
            "subscription_required",
            f"The {plan.name} plan needs an active subscription.",
            action=SUBSCRIBE,
            plan=plan.slug,
        )


def _choose_path(customer: Customer, plan: Plan, quote: Quote) -> tuple[str, int]:
    """Decide how the call is paid under ``plan`` and reserve it; returns (path, exposure)."""
    model = plan.billing_model
    if model == BillingModel.CREDITS:
        if quote.credits is None:
            raise refusal(
                "subscription_required",
                f"{quote.tool.name} cannot be paid with credits.",
                action=SUBSCRIBE,
            )
        _reserve_credits(customer, quote.credits)
        return PaymentPath.CREDITS, 0
    if model == BillingModel.PER_CALL:
        if not customer.has_payment_method:
            raise refusal(
                "payment_method_required",
                "Add a card to pay per call.",
                action=ADD_PAYMENT_METHOD,
            )
        return PaymentPath.PAYG, _reserve_exposure(customer, plan, quote.unit_amount_microcents)
    if model == BillingModel.SUBSCRIPTION:
        _require_subscription(customer, plan)
        if plan.included_calls and _period_slot(
            customer, "included_calls_used", plan.included_calls
        ):
            return PaymentPath.INCLUDED, 0
        if plan.overage != Plan.Overage.METERED:
            raise refusal(
                "quota_exceeded",
                f"The {plan.included_calls or 0} calls included this period are used.",
                action=UPGRADE,
                period_end=customer.period_end.isoformat(),
            )
        return PaymentPath.METERED, _reserve_exposure(customer, plan, quote.unit_amount_microcents)
    if model == BillingModel.USAGE:
        _require_subscription(customer, plan)
        return PaymentPath.METERED, _reserve_exposure(customer, plan, quote.unit_amount_microcents)
    if model == BillingModel.FREEMIUM:
        if plan.free_calls and _period_slot(customer, "free_calls_used", plan.free_calls):
            return PaymentPath.FREE_TIER, 0
        if plan.free_tier_action == Plan.FreeTierAction.CHARGE:
            if not customer.has_payment_method:
                raise refusal(
                    "free_tier_exhausted",
                    f"The {plan.free_calls or 0} free calls of this period are used; add a card "
                    "to go on paying per call.",
                    action=ADD_PAYMENT_METHOD,
                )
            return PaymentPath.PAYG, _reserve_exposure(customer, plan, quote.unit_amount_microcents)
        raise refusal(
            "free_tier_exhausted",
            f"The {plan.free_calls or 0} free calls of this period are used.",
            action=UPGRADE,
            upgrade_plan=plan.upgrade_plan.slug if plan.upgrade_plan else None,
            period_end=customer.period_end.isoformat(),
        )
    raise ApplicationError("plan_invalid", f"Unknown billing model {model!r}.", status=500)


def _check_customer(customer: Customer) -> Plan:
    if customer.status in (Customer.Status.SUSPENDED, Customer.Status.CANCELED):
        raise ApplicationError("account_inactive", "This account is not active.", status=403)
    if customer.status == Customer.Status.PAST_DUE:
        raise refusal(
            "payment_failed",
            "The last payment failed; update the card to go on.",
            action=UPDATE_PAYMENT_METHOD,
        )
    if customer.plan is None or not customer.plan.active:
        raise refusal("subscription_required", "Choose a plan to call tools.", action=SUBSCRIBE)
    return customer.plan


def call_replay(*, customer: Customer, idempotency_key: str) -> UsageRecord | None:
    """The settled, charged call made earlier with this idempotency key, if any."""
    return (
        UsageRecord.objects.filter(
            customer=customer, idempotency_key=idempotency_key, hold__status=Hold.Status.CAPTURED
        )
        .select_related("tool", "price")
        .first()
    )


_PRICE_ATTEMPTS = 3


def call_authorize(
    *,
    customer: Customer,
    tool: Tool,
    api_key: ApiKey | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Hold:
    """Reserve what one call of ``tool`` costs under the customer's plan, or refuse.

    Raises ApplicationError with a contract code (``insufficient_credits``,
    ``quota_exceeded``...) and reserves nothing when the call may not run.
    A hold with the same idempotency key still open refuses with
    ``call_in_progress``; a settled one is for ``call_replay`` to answer.
    """
    hold, _ = _call_authorize(
        customer=customer, tool=tool, api_key=api_key, idempotency_key=idempotency_key, now=now
    )
    return hold


def call_authorize_ahead(
    *,
    customer: Customer,
    tool: Tool,
    api_key: ApiKey | None,
    spares: int,
    now: datetime | None = None,
) -> tuple[Hold, list[Hold]]:
    """``call_authorize``, and up to ``spares`` more holds like the call's for later calls
    of ``tool`` by ``api_key`` (docs/decisions/0010), reserved in the same transaction.

    Spares are reserved only on the credits path with a plain price (no tiers, no
    daily budgets), and only while they take at most 1/``SPARE_SHARE`` of the
    credits left free: none near the end of a balance. Each is a held hold
    (``spare`` set) that ``call_capture`` or ``call_release`` settles like any
    other; one no call is given goes back with ``spares_return``.
    """
    return _call_authorize(customer=customer, tool=tool, api_key=api_key, now=now, spares=spares)


def call_admissible(*, customer: Customer, tool: Tool, api_key: ApiKey | None) -> Plan:
    """The checks every call passes before anything is reserved; returns the plan."""
    plan = _check_customer(customer)
    if not tool.enabled:
        raise ApplicationError("tool_disabled", f"Tool {tool.name!r} is disabled.", status=404)
    if api_key is not None and not api_key.allows_tool(tool.name):
        raise ApplicationError(
            "forbidden_tool", f"This API key may not call {tool.name!r}.", status=403
        )
    return plan


def _call_authorize(
    *,
    customer: Customer,
    tool: Tool,
    api_key: ApiKey | None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    spares: int = 0,
) -> tuple[Hold, list[Hold]]:
    now = now or timezone.now()
    plan = call_admissible(customer=customer, tool=tool, api_key=api_key)
    customer = customer_period_current(customer=customer, now=now)
    try:
        for attempt in range(_PRICE_ATTEMPTS):
            check = None if tool.is_free else tool_price_expect(tool=tool, fresh=attempt > 0)
            if check is not None and check.expected is None:
                raise ApplicationError(
                    "tool_not_priced", f"Tool {tool.name!r} has no price.", status=404
                )
            confirmed = None
            try:
                with atomic():
                    commit_unflushed()  # a hold needs no flush to disk of its own (ADR 0006)
                    if check is not None:
                        # First: a replaced price rolls back before a refusal.
                        confirmed = check.confirm()
                    hold, ahead = _authorize(
                        customer,
                        plan,
                        tool,
                        check.expected if check else None,
                        api_key,
                        idempotency_key,
                        now,
                        spares,
                    )
                return hold, ahead()
            except PriceChanged:
                continue
            except ApplicationError:
                # A refusal counts only if it was made at the active price: one the
                # database made after confirming it was, one made before is asked again.
                if (
                    check is None
                    or (confirmed is not None and confirmed.ran)
                    or check.still_active()
                ):
                    raise
        raise ApplicationError(
            "price_conflict", f"The price of {tool.name!r} keeps changing; retry.", status=409
        )
    except IntegrityError as exc:
        if (
            idempotency_key
            and Hold.objects.filter(
                customer=customer, idempotency_key=idempotency_key, status=Hold.Status.HELD
            ).exists()
        ):
            raise ApplicationError(
                "call_in_progress",
                "A call with this idempotency key is still running.",
                status=409,
            ) from exc
        if idempotency_key and call_replay(customer=customer, idempotency_key=idempotency_key):
            raise ApplicationError(
                "idempotency_replay", "This idempotency key was already charged.", status=409
            ) from exc
        raise


def _authorize(
    customer, plan, tool, price, api_key, idempotency_key, now, spares
) -> tuple[Hold, Callable[[], list[Hold]]]:
    counted_tool = False
    if price is None:
        quote = tool_quote(customer=customer, tool=tool)
    elif price.tiers:
        position = _tool_position(customer=customer, tool=tool, by=1)
        counted_tool = True
        amount, credits, tier = price_at_position(price, position)
        quote = Quote(tool, price, amount, credits, price.currency, tier)
    else:
        quote = Quote(tool, price, price.unit_amount_microcents, price.credits, price.currency)

    if tool.is_free:
        path, exposure = PaymentPath.FREE_TOOL, 0
    else:
        try:
            path, exposure = _choose_path(customer, plan, quote)
        except ApplicationError as exc:
            if (
                exc.code != "free_tier_exhausted"
                or plan.free_tier_action != Plan.FreeTierAction.UPGRADE
            ):
                raise
            if plan.upgrade_plan is None:
                raise
            # Freemium that upgrades: the customer moves to the paid plan, the call goes on.
            plan = customer_plan_change(customer=customer, plan=plan.upgrade_plan).plan
            path, exposure = _choose_path(customer, plan, quote)

    charged_amount = (
        quote.unit_amount_microcents
        if path
        in (
            PaymentPath.CREDITS,
            PaymentPath.PAYG,
            PaymentPath.METERED,
        )
        else 0
    )
    budget_customer = budget_key = False
    if charged_amount and (
        _customer_budget(customer) is not None
        or (api_key is not None and api_key.daily_budget_microcents is not None)
    ):
        budget_customer, budget_key = _reserve_budgets(
            customer=customer, api_key=api_key, amount=charged_amount, day=now.date()
        )
    hold = Hold(
        customer=customer,
        api_key=api_key,
        tool=tool,
        price=price,
        plan=plan,
        path=path,
        credits=(quote.credits or 0) if path == PaymentPath.CREDITS else 0,
        amount_microcents=charged_amount,
        currency=quote.currency,
        exposure_microcents=exposure,
        period_start=customer.period_start,
        counted_tool_period=counted_tool,
        budget_day=now.date() if budget_customer or budget_key else None,
        counted_customer_budget=budget_customer,
        counted_key_budget=budget_key,
        idempotency_key=idempotency_key,
        expires_at=now + timedelta(seconds=settings.BILLING_HOLD_TTL_S),
    )
    row_insert(hold)  # its id is set once the batch is sent
    plain = not (counted_tool or budget_customer or budget_key or idempotency_key)
    if spares > 0 and plain and path == PaymentPath.CREDITS and hold.credits and _on_postgresql():
        return hold, _spares_reserve(hold, spares)
    return hold, list


# Spares take at most this share of the credits left free, so that other keys, tools
# and server processes find most of a balance free, and none are taken near its end.
SPARE_SHARE = 4


def _on_postgresql() -> bool:
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


def _spares_reserve(hold: Hold, count: int) -> Callable[[], list[Hold]]:
    """Queue up to ``count`` more holds like ``hold`` (PostgreSQL only); read them after.

    The account row is already locked by the call's own reservation, so the
    credits left free cannot change between the statement's read and its write.
    """
    insert, fields = insert_columns(Hold)
    db = connections[DEFAULT_DB_ALIAS]
    spare = copy.copy(hold)
    spare.spare = True
    sql = (
        "WITH free AS (SELECT LEAST(%s, (balance_credits - held_credits) / %s) AS n "  # noqa: S608
        f"FROM {ACCOUNTS_TABLE} WHERE customer_id = %s), "
        f"reserved AS (UPDATE {ACCOUNTS_TABLE} SET held_credits = held_credits + %s * free.n "
        "FROM free WHERE customer_id = %s AND free.n > 0 RETURNING free.n) "
        f"{insert} SELECT {', '.join(f'%s::{f.db_type(db)}' for f in fields)} "
        "FROM reserved, generate_series(1, reserved.n) RETURNING id"
    )
    per_spare = hold.credits
    reserved = execute(
        sql,
        [
            count,
            per_spare * SPARE_SHARE,
            hold.customer_id,
            per_spare,
            hold.customer_id,
            *field_values(spare, fields),
        ],
    )

    def spares() -> list[Hold]:
        made = []
        for (pk,) in reserved.rows():
            made.append(copy.copy(spare))
            made[-1].pk = pk
        return made

    return spares


# --- settle -------------------------------------------------------------------


class _AlreadySettled(Exception):
    """Raised inside a settle transaction to roll it back: another settle won."""


# What a settle transaction answers once it has committed.
_Answer = Callable[[], Settlement]


def _answer(
    hold: Hold, status: str, now: datetime, usage: UsageRecord, balance: Callable[[], int | None]
) -> _Answer:
    def settled() -> Settlement:
        hold.status, hold.settled_at = status, now
        return Settlement(usage=usage, balance_credits=balance())

    return settled


def _hold_finished(
    status: str, now: datetime | Slot, hold_id: int | Slot, customer_id: int, created_at
) -> Statement:
    """Mark a held hold settled, last in the transaction (see the lock order above).

    Required: a hold another settle changed first raises ``_AlreadySettled``.
    The hold is named by id, customer and creation time: an authorisation lost
    in a database crash (ADR 0006) may see its id given to another hold.
    """
    return Statement(
        f"UPDATE {Hold._meta.db_table} SET status = %s, settled_at = %s "  # noqa: S608
        "WHERE id = %s AND customer_id = %s AND created_at = %s AND status = %s RETURNING 1",
        (
            status,
            db_value(Hold, "settled_at", now),
            hold_id,
            customer_id,
            db_value(Hold, "created_at", created_at),
            Hold.Status.HELD,
        ),
        _AlreadySettled(),
    )


def _hold_finish(hold: Hold, status: str, now: datetime) -> None:
    execute_filled(
        [_hold_finished(status, now, hold.pk, hold.customer_id, hold.created_at)], _NO_SLOTS
    )


def _usage_values(
    hold: Hold, *, charged: bool, outcome: str | Slot, duration_ms: int | Slot, response
) -> dict[str, Any]:
    """The usage row of a settled ``hold``, by attribute name (no id or creation time)."""
    return {
        "hold_id": hold.pk,
        "customer_id": hold.customer_id,
        "api_key_id": hold.api_key_id,
        "tool_id": hold.tool_id,
        "price_id": hold.price_id,
        "plan_id": hold.plan_id,
        "path": hold.path,
        "outcome": outcome,
        "charged": charged,
        "amount_microcents": hold.amount_microcents if charged else 0,
        "credits": hold.credits if charged else 0,
        "currency": hold.currency,
        "duration_ms": duration_ms,
        "idempotency_key": hold.idempotency_key,
        # Kept only to answer a repeat of the idempotency key.
        "response": response if charged and hold.idempotency_key else None,
        "period_start": hold.period_start,
        "refunded_at": None,
    }


def _usage_write(
    hold: Hold, *, charged: bool, outcome: str, duration_ms: int, response
) -> UsageRecord:
    values = _usage_values(
        hold,
        charged=charged,
        outcome=outcome,
        duration_ms=_duration(duration_ms),
        response=response,
    )
    return row_insert(row_new(UsageRecord, **values))


def _duration(duration_ms: int) -> int:
    return max(0, int(duration_ms))


# --- the capture of a credits hold, written ahead (docs/decisions/0012) -------------------

# What changes from one capture of a credits hold to the next.
NOW = Slot("now")
HOLD_ID = Slot("hold_id")
HOLD_CREATED_AT = Slot("hold_created_at")
USAGE_ID = Slot("usage_id")
ENTRY_KEY = Slot("entry_key")
OUTCOME = Slot("outcome")
DURATION_MS = Slot("duration_ms")
RESPONSE = Slot("response")
_NO_SLOTS: dict[Slot, Any] = {}


def capture_terms(hold: Hold) -> tuple:
    """What the capture of ``hold`` writes besides its slots: holds with equal terms
    share one ``CreditsCapture``."""
    return (
        hold.customer_id,
        hold.api_key_id,
        hold.tool_id,
        hold.price_id,
        hold.plan_id,
        hold.path,
        hold.credits,
        hold.amount_microcents,
        hold.currency,
        hold.idempotency_key,
        hold.period_start,
        hold.tool.name,
    )


@dataclass(frozen=True)
class CreditsCapture:
    """What capturing a credits hold writes: five statements, one round trip, nothing
    read before the end; the first (the account's) returns the balance after it.

    Written once for all holds of the same ``terms`` (the spares of a pool, ADR 0012),
    its changing values left as slots that ``fill`` gives for each capture.
    """

    terms: tuple
    statements: tuple[Statement, ...]
    usage: dict[str, Any]  # the usage row by attribute name, its slots open

    def fill(
        self, hold: Hold, *, outcome: str, duration_ms: int, response, now: datetime
    ) -> tuple[dict[Slot, Any], UsageRecord]:
        """The slots' database values for capturing ``hold``, and its usage row."""
        given = {
            NOW: now,
            HOLD_ID: hold.pk,
            HOLD_CREATED_AT: hold.created_at,
            USAGE_ID: uuid7(),
            ENTRY_KEY: f"call:{hold.pk}",
            OUTCOME: outcome,
            DURATION_MS: _duration(duration_ms),
            RESPONSE: response,  # a slot only where the row keeps it (_usage_values)
        }
        usage = row_new(
            UsageRecord,
            **{name: given[v] if type(v) is Slot else v for name, v in self.usage.items()},
        )
        values = {
            **given,
            NOW: db_value(Hold, "settled_at", now),
            HOLD_CREATED_AT: db_value(Hold, "created_at", hold.created_at),
            USAGE_ID: db_value(UsageRecord, "id", usage.pk),
            RESPONSE: db_value(UsageRecord, "response", given[RESPONSE]),
        }
        return values, usage


def credits_capture(hold: Hold) -> CreditsCapture:
    """The ``CreditsCapture`` of ``hold`` (a held hold on the credits path)."""
    usage = {
        **_usage_values(
            hold, charged=True, outcome=OUTCOME, duration_ms=DURATION_MS, response=RESPONSE
        ),
        "id": USAGE_ID,
        "hold_id": HOLD_ID,
        "created_at": NOW,
    }
    statements = (
        held_credits_take(
            customer_id=hold.customer_id, credits=hold.credits, now=NOW, required=_AlreadySettled()
        ),
        _hold_finished(Hold.Status.CAPTURED, NOW, HOLD_ID, hold.customer_id, HOLD_CREATED_AT),
        insert_statement(UsageRecord, usage),
        *debit_record(
            customer_id=hold.customer_id,
            credits=hold.credits,
            idempotency_key=ENTRY_KEY,
            description=f"Call of {hold.tool.name}",
            usage_id=USAGE_ID,
            now=NOW,
        ),
    )
    return CreditsCapture(capture_terms(hold), statements, usage)


def _balance(hold: Hold) -> int | None:
    return credit_balance(customer_id=hold.customer_id, plan=hold.plan)


def _balance_queued(hold: Hold) -> Callable[[], int | None]:
    """The credits left, read last in the settle's own transaction (no round trip of its
    own); the answer is None on a plan without credits, as ``credit_balance`` says."""
    if not plan_uses_credits(hold.plan):
        return lambda: None
    read = execute(
        f"SELECT balance_credits FROM {ACCOUNTS_TABLE} WHERE customer_id = %s",  # noqa: S608
        [hold.customer_id],
    )
    return lambda: row[0] if (row := read.row()) is not None else None


def _settled(hold: Hold) -> Settlement:
    """What settled ``hold`` earlier, or ``hold_lost`` when no such hold exists (ADR 0006)
    or it was a spare returned unused (ADR 0010)."""
    settled = (
        Hold.objects.select_related("plan", "usage")
        .filter(pk=hold.pk, customer_id=hold.customer_id, created_at=hold.created_at)
        .exclude(status__in=[Hold.Status.HELD, Hold.Status.RETURNED])  # returned: no call's
        .first()
    )
    if settled is None:
        raise ApplicationError(
            "hold_lost", "The authorisation of this call was lost; it is not charged.", status=409
        )
    return Settlement(usage=settled.usage, balance_credits=_balance(settled))


def _settle(hold: Hold | int, settle: Callable[[Hold], _Answer]) -> Settlement:
    """Run ``settle(hold)`` in one transaction, or return the settlement another call made.

    ``hold`` is the Hold ``call_authorize`` returned (saving a read) or its id.
    """
    if not isinstance(hold, Hold):
        hold = Hold.objects.select_related("plan", "price", "tool").get(pk=hold)
    if hold.status == Hold.Status.HELD:
        try:
            with atomic():
                answer = settle(hold)
            return answer()
        except _AlreadySettled:
            pass
        except IntegrityError:  # the usage row of a hold another settle has just written
            if Hold.objects.filter(pk=hold.pk, status=Hold.Status.HELD).exists():
                raise
    return _settled(hold)


def call_capture(
    *,
    hold_id: int | None = None,
    hold: Hold | None = None,
    outcome: str = Outcome.SUCCESS,
    duration_ms: int = 0,
    response=None,
    now: datetime | None = None,
) -> Settlement:
    """Charge an authorised call: usage record, ledger entry and outbox row in one transaction.

    Pass the ``hold`` that ``call_authorize`` returned, or its ``hold_id``.

    A failed outcome on a price that does not charge failed calls is released
    instead. Capturing a hold twice charges once and returns the first usage.
    """
    now = now or timezone.now()
    captured = Hold.Status.CAPTURED

    def capture(hold: Hold) -> _Answer:
        if outcome != Outcome.SUCCESS and not (hold.price and hold.price.charge_failed_calls):
            return _release(hold, outcome=outcome, duration_ms=duration_ms, now=now)
        usage_written = {"charged": True, "outcome": outcome, "duration_ms": duration_ms}
        if hold.path == PaymentPath.CREDITS and hold.credits:
            capture = credits_capture(hold)
            values, usage = capture.fill(
                hold, outcome=outcome, duration_ms=duration_ms, response=response, now=now
            )
            account, *_ = execute_filled(capture.statements, values)
            return _answer(hold, captured, now, usage, lambda: account.row()[1])
        if hold.path in (PaymentPath.PAYG, PaymentPath.METERED):
            execute(
                f"UPDATE {ACCOUNTS_TABLE} "  # noqa: S608
                "SET held_microcents = held_microcents - %s, "
                "unbilled_microcents = unbilled_microcents + %s WHERE customer_id = %s",
                [
                    hold.exposure_microcents,
                    hold.amount_microcents if hold.path == PaymentPath.PAYG else 0,
                    hold.customer_id,
                ],
            )
        _hold_finish(hold, captured, now)
        usage = _usage_write(hold, **usage_written, response=response)
        if hold.path == PaymentPath.METERED:
            _meter_event_enqueue(hold, usage, now)
        return _answer(hold, captured, now, usage, _balance_queued(hold))

    return _settle(hold or hold_id, capture)


def _meter_event_enqueue(hold: Hold, usage: UsageRecord, now: datetime) -> None:
    """Queue the meter event for a metered call; its identifier is derived from the usage id."""
    plan = hold.plan
    message = OutboxMessage(
        kind=OutboxMessage.Kind.METER_EVENT,
        identifier=f"mcpb_usage_{usage.pk}",
        customer_id=hold.customer_id,
        usage=usage,
        payload={
            "event_name": plan.stripe_meter_event_name if plan else "",
            "timestamp": int(now.timestamp()),
            "value_microcents": hold.amount_microcents,
            "tool": hold.tool.name,
        },
        next_attempt_at=now,
    )
    row_insert(message)


def _release(
    hold: Hold, *, outcome: str, duration_ms: int, now: datetime, status: str = Hold.Status.RELEASED
) -> _Answer:
    """Give back every reservation of ``hold`` and record the uncharged usage."""
    if hold.counted_tool_period:
        ToolPeriodCounter.objects.filter(
            customer_id=hold.customer_id, tool_id=hold.tool_id, period_start=hold.period_start
        ).update(calls=F("calls") - 1)
    if hold.path in (PaymentPath.INCLUDED, PaymentPath.FREE_TIER):
        field = "included_calls_used" if hold.path == PaymentPath.INCLUDED else "free_calls_used"
        PeriodCounter.objects.filter(
            customer_id=hold.customer_id, period_start=hold.period_start
        ).update(**{field: F(field) - 1})
    if hold.credits or hold.exposure_microcents:
        execute(
            f"UPDATE {ACCOUNTS_TABLE} "  # noqa: S608
            "SET held_credits = held_credits - %s, held_microcents = held_microcents - %s "
            "WHERE customer_id = %s",
            [hold.credits, hold.exposure_microcents, hold.customer_id],
        )
    _release_budgets(hold)
    _hold_finish(hold, status, now)
    usage = _usage_write(
        hold, charged=False, outcome=outcome, duration_ms=duration_ms, response=None
    )
    return _answer(hold, status, now, usage, _balance_queued(hold))


def call_release(
    *,
    hold_id: int | None = None,
    hold: Hold | None = None,
    outcome: str = Outcome.ERROR,
    duration_ms: int = 0,
    now: datetime | None = None,
    status: str = Hold.Status.RELEASED,
) -> Settlement:
    """Settle a call without charging it: give back every reservation, record the usage."""
    now = now or timezone.now()
    return _settle(
        hold or hold_id,
        lambda held: _release(
            held, outcome=outcome, duration_ms=duration_ms, now=now, status=status
        ),
    )


def spares_return(*, holds: list[Hold], now: datetime | None = None) -> int:
    """Give back spare holds no call was given (PostgreSQL only): each is marked
    returned, with no usage record, and its credits are free again.

    A spare settled or returned meanwhile is left as it is; returns how many
    were still held.
    """
    now = now or timezone.now()
    by_customer: dict[int, list[int]] = {}
    for hold in holds:
        by_customer.setdefault(hold.customer_id, []).append(hold.pk)
    returned = 0
    for customer_id, ids in sorted(by_customer.items()):
        with atomic():
            # The account first, as every path locks it before its holds.
            execute(
                f"SELECT 1 FROM {ACCOUNTS_TABLE} WHERE customer_id = %s FOR UPDATE",  # noqa: S608
                [customer_id],
            )
            counted = execute(
                f"WITH returned AS (UPDATE {Hold._meta.db_table} "  # noqa: S608
                "SET status = %s, settled_at = %s "
                "WHERE id = ANY(%s) AND customer_id = %s AND status = %s AND spare "
                f"RETURNING credits) UPDATE {ACCOUNTS_TABLE} SET held_credits = "
                "held_credits - (SELECT COALESCE(SUM(credits), 0) FROM returned) "
                "WHERE customer_id = %s RETURNING (SELECT COUNT(*) FROM returned)",
                [
                    Hold.Status.RETURNED,
                    db_value(Hold, "settled_at", now),
                    ids,
                    customer_id,
                    Hold.Status.HELD,
                    customer_id,
                ],
            )
        returned += counted.row()[0]
    return returned


def holds_abandon(
    holds, *, outcome: str, status: str = Hold.Status.RELEASED, now: datetime | None = None
) -> int:
    """Settle the held ones of ``holds`` (a queryset) whose call never will: a call's is
    released with ``outcome`` and ``status``; a spare, which may never have been a
    call's, is returned. Returns how many were settled."""
    now = now or timezone.now()
    held = holds.filter(status=Hold.Status.HELD)
    spares = list(held.filter(spare=True).only("pk", "customer_id"))
    settled = spares_return(holds=spares, now=now) if spares else 0
    for hold_id in held.filter(spare=False).values_list("pk", flat=True):
        call_release(hold_id=hold_id, outcome=outcome, now=now, status=status)
        settled += 1
    return settled


def holds_release_stale(*, now: datetime | None = None) -> int:
    """Settle holds whose call never did (a crashed worker); returns how many."""
    now = now or timezone.now()
    return holds_abandon(
        Hold.objects.filter(expires_at__lte=now),
        outcome=Outcome.EXPIRED,
        status=Hold.Status.EXPIRED,
        now=now,
    )


def hold_release(*, hold_id: int, now: datetime | None = None) -> Hold:
    """Release one open hold by hand (its call will never settle): charge nothing.

    A call's hold is released as cancelled, with its usage row; a spare is returned.
    """
    if not holds_abandon(Hold.objects.filter(pk=hold_id), outcome=Outcome.CANCELLED, now=now):
        raise ApplicationError("hold_not_open", "This hold is settled already.")
    return Hold.objects.get(pk=hold_id)
