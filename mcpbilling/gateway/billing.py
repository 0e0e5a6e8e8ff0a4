"""Every tools/call through the charge engine: limit, authorise, execute, settle, receipt.

The tool runs outside any transaction, under its timeout. Settling happens in
``finally``, shielded from cancellation: a result is captured (the engine
releases a failed one unless the price charges failed calls); no result (the
call was cancelled or crashed) is released. A repeated idempotency key gets the
stored result of the charged call back, with its receipt, and no new charge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types

from billing.models import Hold, PaymentPath, UsageRecord
from billing.selectors import credit_balance
from billing.services.calls import (
    Settlement,
    call_authorize,
    call_capture,
    call_release,
    call_replay,
)
from billing.services.pricing import microcents_to_decimal
from customers.authentication import Principal
from mcpbilling.errors import ApplicationError
from mcpbilling.gateway.catalog import Offer
from mcpbilling.gateway.db import LoopDatabase, run_phase, run_phase_grouped
from mcpbilling.gateway.errors import refusal_result
from mcpbilling.gateway.ratelimit import RateLimiter
from mcpbilling.gateway.registry import error_result
from mcpbilling.gateway.spares import SpareHolds
from mcpbilling.gateway.upstream import UpstreamPool, UpstreamUnavailable
from mcpbilling.gateway.workers import ToolWorkers

RECEIPT_META_KEY = "mcpbilling/receipt"
IDEMPOTENCY_META_KEY = "mcpbilling/idempotency_key"
Outcome = UsageRecord.Outcome


@dataclass(frozen=True)
class Replay:
    """An earlier charged call with the same idempotency key."""

    usage: UsageRecord
    balance_credits: int | None


def _balance_credits(principal: Principal) -> int | None:
    return credit_balance(customer_id=principal.customer.pk, plan=principal.customer.plan)


def call_begin(*, principal: Principal, offer: Offer, idempotency_key: str | None) -> Hold | Replay:
    """Authorise the call, or find the charged call its idempotency key already made."""
    customer = principal.customer
    if idempotency_key is not None:
        usage = call_replay(customer=customer, idempotency_key=idempotency_key)
        if usage is not None:
            return Replay(usage, _balance_credits(principal))
    try:
        return call_authorize(
            customer=customer,
            tool=offer.tool,
            api_key=principal.api_key,
            idempotency_key=idempotency_key,
        )
    except ApplicationError as exc:
        usage = None
        if exc.code == "idempotency_replay" and idempotency_key is not None:
            usage = call_replay(customer=customer, idempotency_key=idempotency_key)
        if usage is None:
            raise
        return Replay(usage, _balance_credits(principal))


def call_settle(
    *,
    hold: Hold,
    outcome: str,
    duration_ms: int,
    produced: bool,
    response: dict[str, Any] | None,
) -> Settlement:
    """Capture a call that produced a result; release one that did not.

    ``response`` is the result as stored to answer a repeat of the call's
    idempotency key (None without one).
    """
    if not produced:
        return call_release(hold=hold, outcome=outcome, duration_ms=duration_ms)
    return call_capture(hold=hold, outcome=outcome, duration_ms=duration_ms, response=response)


def receipt(usage: UsageRecord, balance_credits: int | None) -> dict[str, Any]:
    """What the call cost (cents, as Stripe writes amounts) and the credits left."""
    return {
        "usage_id": str(usage.pk),
        "unit_amount_decimal": microcents_to_decimal(usage.amount_microcents),
        "currency": usage.currency,
        "credits": usage.credits if usage.path == PaymentPath.CREDITS else None,
        "balance": balance_credits,
    }


def _with_receipt(result: types.CallToolResult, receipt_: dict[str, Any]) -> types.CallToolResult:
    return result.model_copy(update={"meta": {**(result.meta or {}), RECEIPT_META_KEY: receipt_}})


async def _authorise(
    principal: Principal,
    offer: Offer,
    idempotency_key: str | None,
    database: LoopDatabase | None,
    spares: SpareHolds | None,
) -> Hold | Replay:
    """The call's hold, authorised now; with ``spares``, more for their pool too."""
    if spares is None:
        return await run_phase(
            database, call_begin, principal=principal, offer=offer, idempotency_key=idempotency_key
        )
    return await spares.authorise(principal, offer)


async def billed_call(
    *,
    principal: Principal,
    offer: Offer,
    arguments: dict[str, Any],
    idempotency_key: str | None,
    limiter: RateLimiter,
    upstreams: UpstreamPool,
    workers: ToolWorkers,
    database: LoopDatabase | None = None,
    spares: SpareHolds | None = None,
) -> types.CallToolResult:
    """Run one call of ``offer`` for ``principal``, charged at most once."""
    try:
        await limiter.take(principal, offer.name)
        # Spares serve calls without an idempotency key (ADR 0010): a spare this
        # process holds for the key and tool, if one fits, costs no round trip.
        if idempotency_key is not None:
            spares = None
        begun = None if spares is None else spares.take(principal, offer)
        if begun is None:
            # Shielded: a call cancelled while the hold is written still sees the hold and
            # releases it below, instead of leaving it reserved until it goes stale.
            with anyio.CancelScope(shield=True):
                begun = await _authorise(principal, offer, idempotency_key, database, spares)
    except ApplicationError as exc:
        return refusal_result(exc)
    if isinstance(begun, Replay):
        stored = types.CallToolResult.model_validate(begun.usage.response)
        return _with_receipt(stored, receipt(begun.usage, begun.balance_credits))

    started = time.perf_counter()
    # A result the tool produced is captured; none (cancelled, crashed, a JSON-RPC error
    # from upstream) or an unreachable upstream is released.
    outcome, result, produced = Outcome.ERROR, None, False
    try:
        with anyio.fail_after(offer.timeout_s):
            result = await offer.run(arguments, upstreams=upstreams, workers=workers)
        outcome = Outcome.ERROR if result.is_error else Outcome.SUCCESS
        produced = True
    except TimeoutError:
        outcome, produced = Outcome.TIMEOUT, True
        result = error_result(f"{offer.name} did not finish within {offer.timeout_s:g} s.")
    except UpstreamUnavailable as exc:
        result = error_result(f"The server behind {offer.name} is unavailable ({exc}).")
    except anyio.get_cancelled_exc_class():
        outcome = Outcome.CANCELLED
        raise
    finally:
        produced = produced and result is not None
        response = None
        if produced and idempotency_key is not None:  # kept only to answer a repeat
            response = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        duration_ms = int((time.perf_counter() - started) * 1000)
        with anyio.CancelScope(shield=True):
            settlement = None
            if begun.spare and outcome == Outcome.SUCCESS and spares is not None:
                settlement = await spares.capture(begun, duration_ms=duration_ms)
            if settlement is None:
                settlement = await run_phase_grouped(
                    database,
                    begun.customer_id,
                    call_settle,
                    hold=begun,
                    outcome=outcome,
                    duration_ms=duration_ms,
                    produced=produced,
                    response=response,
                )
    assert result is not None
    return _with_receipt(result, receipt(settlement.usage, settlement.balance_credits))
