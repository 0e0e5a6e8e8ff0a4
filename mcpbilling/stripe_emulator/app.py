"""The Starlette app: Stripe's protocol (auth, params, idempotency, errors) around handlers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import forms, helpers, pages
from .context import API_VERSION, Ctx, Handler, Reply
from .errors import StripeError, api_error, authentication, for_status, invalid, unrecognized_url
from .expand import expand
from .faults import Fault, FaultTable
from .resources import MODULES, meters
from .store import Saver, Store, public, random_token
from .webhooks import DeliveryConfig, Dispatcher

logger = logging.getLogger(__name__)

IDEMPOTENCY_TTL_S = 24 * 3600
IDEMPOTENCY_MAX_KEY = 255
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
STREAM_PATH = "/v2/billing/meter_event_stream"
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Runtime:
    """Everything the app serves from: state, webhook delivery, faults, persistence."""

    store: Store
    dispatcher: Dispatcher
    faults: FaultTable = field(default_factory=FaultTable)
    saver: Saver | None = None

    def ctx(self, request: Request, **fields: Any) -> Ctx:
        """A context for work done on behalf of ``request``."""
        return Ctx(self.store, url_base=str(request.base_url).rstrip("/"), **fields)

    def reset(self) -> None:
        """Forget every object, event, meter event, fault and delivery; stop holding webhooks."""
        self.store.reset()
        self.faults.clear()
        self.dispatcher.clear()
        self.dispatcher.resume()


def create_app(
    *, state_file: Path | str | None = None, delivery: DeliveryConfig | None = None
) -> Starlette:
    """The emulator as an ASGI app; run it with uvicorn (lifespan on)."""
    store = Store(state_file)
    runtime = Runtime(store=store, dispatcher=Dispatcher(store, delivery), saver=Saver(store))
    store.listeners.append(runtime.dispatcher.on_event)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime.dispatcher.start()
        runtime.saver.start()
        try:
            yield
        finally:
            runtime.dispatcher.stop()
            runtime.saver.stop()

    app = Starlette(
        routes=[*api_routes(), *helpers.routes(), *pages.routes()],
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.runtime = runtime
    return app


def api_routes() -> list[BaseRoute]:
    """Every API route, literal path segments before parameters (``/search`` before ``/{id}``)."""
    entries = [entry for module in MODULES for entry in module.routes.entries]
    entries.sort(key=lambda entry: [part.startswith("{") for part in entry[1].split("/")])
    return [Route(path, _endpoint(handler), methods=[method]) for method, path, handler in entries]


def _endpoint(handler: Handler) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await serve(request, handler)

    endpoint.__name__ = handler.__name__
    return endpoint


async def serve(request: Request, handler: Handler) -> Response:
    """Serve one API request: faults, authentication, parameters, idempotency, the handler."""
    runtime: Runtime = request.app.state.runtime
    request_id = "req_" + random_token(14)
    fault = runtime.faults.take(request.method, request.url.path)
    if fault is not None and not fault.after:
        failed = await _inject(fault)
        if failed is not None:
            return _respond(failed.status, failed.body(), request_id, failed.headers)
    try:
        api_key = _authenticate(request, runtime.store)
        params = await _read_params(request)
        status, body, headers = _run_idempotently(
            runtime, request, handler, params, api_key, request_id
        )
    except StripeError as exc:
        status, body, headers = exc.status, exc.body(), exc.headers
    if fault is not None and fault.after:
        failed = await _inject(fault)
        if failed is not None:
            return _respond(failed.status, failed.body(), request_id, failed.headers)
    return _respond(status, body, request_id, headers)


async def _inject(fault: Fault) -> StripeError | None:
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    return for_status(fault.status, retry_after=fault.retry_after) if fault.status else None


def _respond(status: int, body: Any, request_id: str, headers: dict[str, str]) -> Response:
    return JSONResponse(
        body,
        status_code=status,
        headers={"Request-Id": request_id, "Stripe-Version": API_VERSION, **headers},
    )


def _authenticate(request: Request, store: Store) -> str:
    key = _api_key(request.headers.get("authorization", ""))
    if not key:
        raise authentication(
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth "
            "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
        )
    if request.url.path == STREAM_PATH:
        if meters.session_token_valid(store, key):
            return key
        raise meters.session_expired()
    if key.startswith(TEST_KEY_PREFIXES):
        return key
    if key.startswith(("sk_live_", "rk_live_")):
        raise authentication("The Stripe emulator only accepts test mode keys (sk_test_...).")
    raise authentication(
        f"Invalid API Key provided: {key[:8]}{'*' * max(len(key) - 12, 0)}{key[-4:]}"
    )


def _api_key(header: str) -> str:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


async def _read_params(request: Request) -> forms.Params:
    data = forms.decode(request.url.query)
    if request.method in ("POST", "DELETE"):
        body = (await request.body()).decode("utf-8", errors="replace")
        if request.url.path.startswith("/v2/"):
            data.update(_json_body(body))
        elif body:
            data.update(forms.decode(body))
    return forms.Params(data)


def _json_body(body: str) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    return data


def _run_idempotently(
    runtime: Runtime,
    request: Request,
    handler: Handler,
    params: forms.Params,
    api_key: str,
    request_id: str,
) -> tuple[int, Any, dict[str, str]]:
    key = request.headers.get("idempotency-key") if request.method != "GET" else None
    ctx = runtime.ctx(request, request_id=request_id, idempotency_key=key)
    path_params = request.path_params
    if not key:
        return _execute(ctx, handler, params, path_params)
    if len(key) > IDEMPOTENCY_MAX_KEY:
        raise invalid(f"Idempotency keys can be at most {IDEMPOTENCY_MAX_KEY} characters.")
    slot = f"{api_key}:{key}"
    fingerprint = [request.method, request.url.path, forms.flatten(params.data)]
    replay = _claim(runtime.store, slot, key, fingerprint)
    if replay is not None:
        return replay
    try:
        status, body, headers = _execute(ctx, handler, params, path_params)
        if 200 <= status < 300 or status == 402:  # Stripe saves results of requests that ran
            _save(runtime.store, slot, fingerprint, status, body, headers)
    finally:
        runtime.store.in_flight.discard(slot)
    return status, body, {**headers, "Idempotency-Key": key}


def _claim(store: Store, slot: str, key: str, fingerprint: list[Any]):
    """The saved response to replay, or None after marking the key in flight."""
    with store.lock:
        saved = store.idempotency.get(slot)
        if saved is not None and time.time() - saved["at"] < IDEMPOTENCY_TTL_S:
            if saved["fingerprint"] != fingerprint:
                raise StripeError(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they "
                    f"were first used with. Try using a key other than '{key}' if you meant to "
                    "execute a different request.",
                )
            headers = {**saved["headers"], "Idempotent-Replayed": "true", "Idempotency-Key": key}
            return saved["status"], saved["body"], headers
        if slot in store.in_flight:
            raise StripeError(
                409,
                "idempotency_error",
                "There is currently another in-progress request using this Stripe API key (and "
                "idempotency key). Please try again later.",
                code="idempotency_key_in_use",
            )
        store.in_flight.add(slot)
        return None


def _save(
    store: Store, slot: str, fingerprint: list[Any], status: int, body: Any, headers: dict[str, str]
) -> None:
    with store.lock:
        now = time.time()
        if len(store.idempotency) > 50_000:
            expired = [
                k for k, v in store.idempotency.items() if now - v["at"] >= IDEMPOTENCY_TTL_S
            ]
            for stale in expired:
                del store.idempotency[stale]
        store.idempotency[slot] = {
            "fingerprint": fingerprint,
            "status": status,
            "body": body,
            "headers": dict(headers),
            "at": now,
        }


def _execute(ctx: Ctx, handler: Handler, params: forms.Params, path_params: dict[str, str]):
    """Run a handler under the store lock and render its answer; errors become Stripe's shape."""
    try:
        with ctx.store.lock:
            result = handler(ctx, params, **path_params)
            status, body = (
                (result.status, result.body) if isinstance(result, Reply) else (200, result)
            )
            rendered = expand(ctx.store, public(body), params.strings("expand"))
    except StripeError as exc:
        return exc.status, exc.body(), exc.headers
    except Exception:
        logger.exception("Stripe emulator: %s failed", getattr(handler, "__name__", handler))
        failure = api_error(500)
        return failure.status, failure.body(), {}
    return status, rendered, {}


async def _not_found(request: Request, exc: Exception) -> Response:
    error = unrecognized_url(request.method, request.url.path)
    return _respond(error.status, error.body(), "req_" + random_token(14), {})
