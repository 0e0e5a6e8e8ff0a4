"""Billing meters, meter events (v1, and the v2 session and stream) and event summaries."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

from .. import objects
from ..context import Ctx, Reply, RouteTable
from ..errors import StripeError, invalid
from ..forms import Params
from ..lists import all_of, field_filter, paginate
from ..store import Store, random_token

Obj = dict[str, Any]
routes = RouteTable()

FORMULAS = ("sum", "count", "last")
WINDOWS = {"hour": 3600, "day": 86400}
MAX_PAST_S = 35 * 86400  # timestamps within the past 35 calendar days
MAX_FUTURE_S = 5 * 60  # and at most 5 minutes ahead
IDENTIFIER_TTL_S = 24 * 3600  # Stripe enforces uniqueness for at least 24 hours
SESSION_TTL_S = 15 * 60  # a v2 meter event session lasts 15 minutes
MAX_STREAM_EVENTS = 100
SESSION_KIND = "v2.billing.meter_event_session"


# --- meters --------------------------------------------------------------------------
@routes.post("/v1/billing/meters")
def meter_create(ctx: Ctx, params: Params) -> Obj:
    """Create a meter: display name, event name, aggregation formula and payload keys."""
    aggregation = params.sub("default_aggregation", required=True)
    mtr = objects.meter(
        ctx.store,
        display_name=params.str("display_name", required=True),
        event_name=_bounded(params, "event_name"),
        formula=aggregation.str("formula", required=True, choices=FORMULAS),
        customer_key=params.sub("customer_mapping").str("event_payload_key")
        or "stripe_customer_id",
        value_key=params.sub("value_settings").str("event_payload_key") or "value",
    )
    if params.has("event_time_window"):
        mtr["event_time_window"] = params.str("event_time_window", choices=tuple(WINDOWS))
    ctx.store.put(mtr)
    ctx.emit("billing.meter.created", mtr)
    return mtr


def _bounded(params: Params, key: str, limit: int = 100) -> str:
    value = params.str(key, required=True)
    if len(value) > limit:
        raise invalid(f"{key} can be at most {limit} characters.", param=key)
    return value


routes.retrieve("/v1/billing/meters/{meter_id}", "billing.meter")


@routes.post("/v1/billing/meters/{meter_id}")
def meter_update(ctx: Ctx, params: Params, meter_id: str) -> Obj:
    """Rename a meter (its display name is the only updatable field)."""
    mtr = ctx.store.require("billing.meter", meter_id)
    with ctx.changes(mtr, "billing.meter.updated"):
        if params.has("display_name"):
            mtr["display_name"] = params.str("display_name", required=True)
            mtr["updated"] = ctx.store.now()
    return mtr


@routes.post("/v1/billing/meters/{meter_id}/deactivate")
def meter_deactivate(ctx: Ctx, params: Params, meter_id: str) -> Obj:
    """Stop a meter accepting events."""
    return _set_status(ctx, meter_id, "inactive", "billing.meter.deactivated")


@routes.post("/v1/billing/meters/{meter_id}/reactivate")
def meter_reactivate(ctx: Ctx, params: Params, meter_id: str) -> Obj:
    """Let a deactivated meter accept events again."""
    return _set_status(ctx, meter_id, "active", "billing.meter.reactivated")


def _set_status(ctx: Ctx, meter_id: str, status: str, event_type: str) -> Obj:
    mtr = ctx.store.require("billing.meter", meter_id)
    if mtr["status"] == status:
        raise invalid(f"The meter is already {status}.", param="id")
    now = ctx.store.now()
    mtr.update(
        {
            "status": status,
            "status_transitions": {"deactivated_at": now if status == "inactive" else None},
            "updated": now,
        }
    )
    ctx.store.mark_dirty()
    ctx.emit(event_type, mtr)
    return mtr


routes.listing("/v1/billing/meters", "billing.meter", "status")


# --- meter events ------------------------------------------------------------------
def accept_event(
    store: Store,
    *,
    event_name: str,
    payload: dict[str, Any],
    identifier: str | None,
    timestamp: int | None,
) -> Obj:
    """Validate a meter event as Stripe does and keep it; raises Stripe's 400s."""
    now = store.now()
    timestamp = now if timestamp is None else timestamp
    meter = _meter_for(store, event_name)
    _check_payload(store, meter, payload)
    _check_timestamp(timestamp, now)
    identifier = identifier or f"emu_{random_token(24)}"
    if len(identifier) > 100:
        raise invalid("identifier can be at most 100 characters.", param="identifier")
    with store.lock:
        seen = store.meter_identifiers.get(identifier)
        if seen is not None and now - seen < IDENTIFIER_TTL_S:
            raise invalid(
                f"An event already exists with identifier {identifier}.",
                param="identifier",
                code="duplicate_meter_event",
            )
        event = objects.meter_event(
            event_name=event_name,
            identifier=identifier,
            payload={key: str(value) for key, value in payload.items()},
            timestamp=timestamp,
            created=now,
        )
        store.meter_events.append(event)
        store.meter_identifiers[identifier] = now
        store.mark_dirty()
    return event


def _meter_for(store: Store, event_name: str) -> Obj:
    meters = store.all("billing.meter", lambda m: m["event_name"] == event_name)
    active = [m for m in meters if m["status"] == "active"]
    if active:
        return active[-1]  # the oldest active meter decides the payload keys
    if meters:
        raise invalid(
            f"The meter for event name {event_name} is inactive.",
            param="event_name",
            code="archived_meter",
        )
    raise invalid(
        f"No active meter was found with event name {event_name}.",
        param="event_name",
        code="no_meter",
    )


def _check_payload(store: Store, meter: Obj, payload: dict[str, Any]) -> None:
    customer_key = meter["customer_mapping"]["event_payload_key"]
    customer_id = payload.get(customer_key)
    if not customer_id:
        raise invalid(
            f"Customer mapping key {customer_key} not found in payload.",
            param="payload",
            code="meter_event_no_customer_defined",
        )
    if store.get("customer", customer_id) is None:
        raise invalid(
            f"Customer {customer_id} not found.",
            param=f"payload[{customer_key}]",
            code="meter_event_customer_not_found",
        )
    value_key = meter["value_settings"]["event_payload_key"]
    raw = payload.get(value_key)
    if raw is None and meter["default_aggregation"]["formula"] == "count":
        return
    if _number(raw) is None:
        raise invalid(
            f"Meter event value for {value_key} must be a number (got {raw!r}).",
            param=f"payload[{value_key}]",
            code="meter_event_invalid_value",
        )


def _number(raw: Any) -> Decimal | None:
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _check_timestamp(timestamp: int, now: int) -> None:
    if timestamp < now - MAX_PAST_S:
        raise invalid(
            "Timestamp must be within the past 35 calendar days.",
            param="timestamp",
            code="timestamp_too_far_in_past",
        )
    if timestamp > now + MAX_FUTURE_S:
        raise invalid(
            "Timestamp must be at most 5 minutes in the future.",
            param="timestamp",
            code="timestamp_in_future",
        )


@routes.post("/v1/billing/meter_events")
def meter_event_create(ctx: Ctx, params: Params) -> Obj:
    """Record usage: ``event_name``, ``payload[...]``, optional ``identifier`` and ``timestamp``."""
    payload = params.sub("payload", required=True).data
    if not all(isinstance(value, str) for value in payload.values()):
        raise invalid("payload values must be strings.", param="payload")
    return accept_event(
        ctx.store,
        event_name=_bounded(params, "event_name"),
        payload=payload,
        identifier=params.str("identifier"),
        timestamp=params.int("timestamp"),
    )


# --- summaries -----------------------------------------------------------------
def aggregate(store: Store, meter: Obj, customer_id: str, start: int, end: int) -> Decimal:
    """A customer's usage on a meter in [start, end), by the meter's formula."""
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    with store.lock:
        events = [
            event
            for event in store.meter_events
            if event["event_name"] == meter["event_name"]
            and event["payload"].get(customer_key) == customer_id
            and start <= event["timestamp"] < end
        ]
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return Decimal(len(events))
    values = [_number(event["payload"].get(value_key)) or Decimal(0) for event in events]
    if formula == "last":
        latest = max(range(len(events)), key=lambda i: events[i]["timestamp"], default=None)
        return values[latest] if latest is not None else Decimal(0)
    return sum(values, Decimal(0))


@routes.get("/v1/billing/meters/{meter_id}/event_summaries")
def meter_event_summaries(ctx: Ctx, params: Params, meter_id: str) -> Obj:
    """A customer's usage in [start_time, end_time), whole or per hour/day window, newest first."""
    mtr = ctx.store.require("billing.meter", meter_id)
    customer_id = params.str("customer", required=True)
    start, end = _aligned(params, "start_time"), _aligned(params, "end_time")
    if end <= start:
        raise invalid("end_time must be after start_time.", param="end_time")
    window = params.str("value_grouping_window", choices=tuple(WINDOWS))
    bounds = _windows(start, end, WINDOWS[window]) if window else [(start, end)]
    summaries = []
    for low, high in reversed(bounds):
        value = aggregate(ctx.store, mtr, customer_id, low, high)
        if window and not value and not _has_events(ctx.store, mtr, customer_id, low, high):
            continue
        summaries.append(
            objects.meter_event_summary(
                summary_id=_summary_id(meter_id, customer_id, low, high),
                meter_id=meter_id,
                value=value,
                start=low,
                end=high,
            )
        )
    return paginate(summaries, params, f"/v1/billing/meters/{meter_id}/event_summaries")


def _aligned(params: Params, key: str) -> int:
    value = params.int(key, required=True)
    if value % 60:
        raise invalid(f"{key} must be aligned with minute boundaries.", param=key)
    return value


def _windows(start: int, end: int, size: int) -> list[tuple[int, int]]:
    first = start - start % size
    return [(max(low, start), min(low + size, end)) for low in range(first, end, size)]


def _has_events(store: Store, meter: Obj, customer_id: str, start: int, end: int) -> bool:
    customer_key = meter["customer_mapping"]["event_payload_key"]
    return any(
        event["event_name"] == meter["event_name"]
        and event["payload"].get(customer_key) == customer_id
        and start <= event["timestamp"] < end
        for event in store.meter_events
    )


def _summary_id(meter_id: str, customer_id: str, start: int, end: int) -> str:
    digest = hashlib.sha256(f"{meter_id}|{customer_id}|{start}|{end}".encode()).hexdigest()
    return f"mtrusg_test_{digest[:48]}"


# --- v2: sessions, the event stream, and synchronous events ------------------------------
def _iso(timestamp: int) -> str:
    return (
        dt.datetime.fromtimestamp(timestamp, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _unix(value: Any, *, param: str) -> int | None:
    if value is None:
        return None
    try:
        return int(dt.datetime.fromisoformat(str(value)).timestamp())
    except ValueError:
        raise invalid(f"Invalid timestamp: {value}", param=param) from None


@routes.post("/v2/billing/meter_event_session")
def meter_event_session_create(ctx: Ctx, params: Params) -> Obj:
    """A 15-minute token for the high-throughput event stream."""
    now = ctx.store.now()
    session = {
        "id": ctx.store.new_id("mes_"),
        "object": SESSION_KIND,
        "authentication_token": "mes_tok_" + random_token(40),
        "created": _iso(now),
        "expires_at": _iso(now + SESSION_TTL_S),
        "livemode": False,
        "_expires": now + SESSION_TTL_S,
    }
    return ctx.store.put(session)


def session_token_valid(store: Store, token: str) -> bool:
    """Whether a bearer token is a live meter event session token."""
    return any(
        session["authentication_token"] == token and session["_expires"] > store.now()
        for session in store.all(SESSION_KIND)
    )


def session_expired() -> StripeError:
    """The 401 Stripe sends for an expired or unknown session token."""
    return StripeError(
        401,
        "temporary_session_expired",
        "The meter event session has expired; create a new one.",
        code="billing_meter_event_session_expired",
    )


@routes.post("/v2/billing/meter_event_stream")
def meter_event_stream(ctx: Ctx, params: Params) -> Reply:
    """Accept up to 100 events; invalid ones are dropped (Stripe validates them later)."""
    events = params.subs("events", required=True)
    if len(events) > MAX_STREAM_EVENTS:
        raise invalid(f"At most {MAX_STREAM_EVENTS} events per request.", param="events")
    for event in events:
        try:
            _accept_v2(ctx.store, event)
        except StripeError as exc:
            ctx.store.rejected_meter_events.append(
                {"event": event.data, "error": exc.body()["error"]}
            )
    return Reply(202, {})


@routes.post("/v2/billing/meter_events")
def meter_event_create_v2(ctx: Ctx, params: Params) -> Obj:
    """Record one event with synchronous validation (v2 shape: ISO timestamps)."""
    event = _accept_v2(ctx.store, params)
    return {
        "object": "v2.billing.meter_event",
        "created": _iso(event["created"]),
        "event_name": event["event_name"],
        "identifier": event["identifier"],
        "livemode": False,
        "payload": event["payload"],
        "timestamp": _iso(event["timestamp"]),
    }


def _accept_v2(store: Store, event: Params) -> Obj:
    return accept_event(
        store,
        event_name=_bounded(event, "event_name"),
        payload=event.sub("payload", required=True).data,
        identifier=event.str("identifier"),
        timestamp=_unix(event.raw("timestamp"), param=event.name("timestamp")),
    )


def meter_events_where(store: Store, params: Params) -> list[Obj]:
    """Accepted events, newest first, by ``event_name`` and ``customer`` (for the test helpers)."""
    customer = params.str("customer")
    where = all_of(
        field_filter(params, "event_name", "identifier"),
        lambda e: customer is None or customer in e["payload"].values(),
    )
    with store.lock:
        return [dict(e) for e in reversed(store.meter_events) if where(e)]
