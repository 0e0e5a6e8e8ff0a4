"""``/_emulator/``: test helpers over JSON, without auth (part of the external contract)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import cards
from .errors import StripeError, invalid, no_such
from .faults import Fault
from .forms import Params
from .resources import billing, checkout, meters
from .store import public
from .webhooks import ORDERS, DeliveryConfig

if TYPE_CHECKING:
    from .app import Runtime

Obj = dict[str, Any]
Helper = Callable[["Runtime", Request, Obj], Any]

DEFAULT_PAYING_CARD = "4242424242424242"
DEFAULT_DECLINING_CARD = "4000000000000002"


def routes() -> list[BaseRoute]:
    """The helper routes."""
    table: list[tuple[str, str, Helper]] = [
        ("GET", "/_emulator/health", health),
        ("GET", "/_emulator/state", state),
        ("POST", "/_emulator/reset", reset),
        ("POST", "/_emulator/checkout/{session_id}/pay", checkout_pay),
        ("POST", "/_emulator/checkout/{session_id}/decline", checkout_decline),
        ("GET", "/_emulator/faults", faults_list),
        ("POST", "/_emulator/faults", faults_add),
        ("DELETE", "/_emulator/faults", faults_clear),
        ("GET", "/_emulator/deliveries", deliveries),
        ("POST", "/_emulator/deliveries/flush", deliveries_flush),
        ("POST", "/_emulator/events/{event_id}/resend", event_resend),
        ("POST", "/_emulator/subscriptions/{sub_id}/advance", subscription_advance),
        ("POST", "/_emulator/webhooks/pause", webhooks_pause),
        ("POST", "/_emulator/webhooks/resume", webhooks_resume),
        ("POST", "/_emulator/webhooks/config", webhooks_config),
        ("GET", "/_emulator/meter_events", meter_events),
    ]
    return [Route(path, _endpoint(helper), methods=[method]) for method, path, helper in table]


def _endpoint(helper: Helper) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        try:
            body = _json(await request.body())
            with runtime.store.lock:
                result = helper(runtime, request, body)
        except StripeError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        return JSONResponse(public(result))

    endpoint.__name__ = helper.__name__
    return endpoint


def _json(raw: bytes) -> Obj:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise invalid("The body must be JSON.") from None
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.")
    return data


def health(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Liveness, and whether webhooks are held."""
    return {"status": "ok", "webhooks": runtime.dispatcher.status()}


def state(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """How many objects of each kind the emulator holds."""
    counts = {kind: len(objs) for kind, objs in runtime.store.objects.items()}
    return {"objects": counts, "meter_events": len(runtime.store.meter_events)}


def reset(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Forget every object, event, meter event, fault and delivery."""
    runtime.reset()
    return {"reset": True}


def checkout_pay(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Pay a checkout session as its page would (``card``: number, ``tok_`` or ``pm_card_``)."""
    ctx = runtime.ctx(request)
    card = str(body.get("card") or DEFAULT_PAYING_CARD)
    return checkout.pay_with(
        ctx, request.path_params["session_id"], card, email=body.get("email"), name=body.get("name")
    )


def checkout_decline(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Try to pay a session with a declining card: answers the 402 and completes nothing."""
    card = str(body.get("card") or DEFAULT_DECLINING_CARD)
    found = cards.from_any(card, param="card")
    if found.decline is None:
        raise invalid(f"{card} does not decline; pass a declining test card.", param="card")
    return checkout_pay(runtime, request, {**body, "card": card})


def faults_list(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """The armed faults."""
    return {"object": "list", "data": runtime.faults.list()}


def faults_add(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Arm a fault: ``path``, ``status`` and/or ``delay_s``, ``method``, ``times``, ``after``..."""
    fault = Fault.from_json(body)
    runtime.faults.add(fault)
    return fault.as_json()


def faults_clear(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Disarm every fault."""
    runtime.faults.clear()
    return {"cleared": True}


def deliveries(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Webhook delivery attempts, oldest first, by ``event``, ``endpoint`` and ``type``."""
    params = Params(dict(request.query_params))
    wanted = {key: params.str(key) for key in ("event", "endpoint") if params.str(key)}
    event_type = params.str("type")
    data = []
    for record in runtime.dispatcher.attempts():
        if any(record[key] != value for key, value in wanted.items()):
            continue
        event = runtime.store.get("event", record["event"])
        if event_type and (event is None or event["type"] != event_type):
            continue
        data.append({**record, "type": event["type"] if event else None})
    return {"object": "list", "data": data, "status": runtime.dispatcher.status()}


def deliveries_flush(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Deliver held webhooks now, ``?order=forward|reverse|shuffle``; stays paused."""
    order = request.query_params.get("order") or body.get("order") or "forward"
    if order not in ORDERS:
        raise invalid(f"order must be one of {', '.join(ORDERS)}", param="order")
    return {"flushed": runtime.dispatcher.flush(order), "order": order}


def event_resend(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Deliver an event again (to ``endpoint`` only, when given): duplicates for tests."""
    event_id = request.path_params["event_id"]
    if runtime.store.get("event", event_id) is None:
        raise no_such("event", event_id)
    return {"queued": runtime.dispatcher.resend(event_id, body.get("endpoint"))}


def subscription_advance(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """End the current period now and renew: the invoice is paid or fails with the default card."""
    ctx = runtime.ctx(request)
    sub = runtime.store.require("subscription", request.path_params["sub_id"])
    invoice = billing.advance(ctx, sub)
    return {"subscription": sub, "invoice": invoice}


def webhooks_pause(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Hold deliveries."""
    runtime.dispatcher.pause()
    return runtime.dispatcher.status()


def webhooks_resume(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Deliver held webhooks in order and stop holding."""
    released = runtime.dispatcher.resume()
    return {**runtime.dispatcher.status(), "released": released}


def webhooks_config(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Set ``retry_delays`` (seconds), ``max_attempts`` and ``timeout_s`` for deliveries."""
    current = runtime.dispatcher.config
    try:
        config = DeliveryConfig(
            retry_delays=tuple(float(d) for d in body.get("retry_delays", current.retry_delays)),
            max_attempts=int(body.get("max_attempts", current.max_attempts)),
            timeout_s=float(body.get("timeout_s", current.timeout_s)),
        )
    except (TypeError, ValueError):
        raise invalid(
            "retry_delays must be numbers; max_attempts and timeout_s numbers too."
        ) from None
    if config.max_attempts < 1 or config.timeout_s <= 0:
        raise invalid("max_attempts must be at least 1 and timeout_s positive.")
    runtime.dispatcher.configure(config)
    return {
        "retry_delays": list(config.retry_delays),
        "max_attempts": config.max_attempts,
        "timeout_s": config.timeout_s,
    }


def meter_events(runtime: Runtime, request: Request, body: Obj) -> Obj:
    """Every accepted meter event, newest first, by ``event_name``, ``customer``, ``identifier``."""
    params = Params(dict(request.query_params))
    data = meters.meter_events_where(runtime.store, params)
    return {"object": "list", "data": data, "rejected": list(runtime.store.rejected_meter_events)}
