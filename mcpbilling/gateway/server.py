"""The MCP server at /mcp: the SDK's stateless Streamable HTTP with JSON responses.

In front of the SDK, ``GatewayApp`` checks Host and Origin (403 for a bad
Origin) and authenticates the bearer token (401 with the RFC 9728 challenge),
before any JSON-RPC is read. The SDK then validates the request; the handlers
here list the tools the caller may call, with prices, and send each tools/call
through ``billing.billed_call``.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
import mcp_types as types
from django.conf import settings
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from billing.services.pricing import tool_quote
from customers.authentication import Principal, authenticate, principal_recent
from mcpbilling.errors import ApplicationError
from mcpbilling.gateway.billing import IDEMPOTENCY_META_KEY, billed_call
from mcpbilling.gateway.catalog import InvalidArguments, catalog
from mcpbilling.gateway.db import LoopDatabase, loop_database, run_db
from mcpbilling.gateway.errors import internal_error_response, unauthorized_response
from mcpbilling.gateway.ratelimit import RateLimiter, rate_limiter
from mcpbilling.gateway.registry import tools_sync_python
from mcpbilling.gateway.security import request_refused
from mcpbilling.gateway.spares import SpareHolds, spare_holds
from mcpbilling.gateway.upstream import UpstreamPool
from mcpbilling.gateway.workers import ToolWorkers, tool_workers

logger = logging.getLogger(__name__)

PRINCIPAL_SCOPE_KEY = "mcpbilling.principal"
Handler = Callable[[Any, Any], Awaitable[Any]]
MAX_IDEMPOTENCY_KEY_CHARS = 255


@dataclass(frozen=True)
class GatewayState:
    """What lives as long as the server: the rate limiter, the upstream connections,
    the Python tools' worker processes and the loop's database sessions (None: the
    engine's phases run on threads)."""

    limiter: RateLimiter
    upstreams: UpstreamPool
    workers: ToolWorkers
    database: LoopDatabase | None
    spares: SpareHolds | None


@asynccontextmanager
async def _lifespan(_: Server[GatewayState]) -> AsyncIterator[GatewayState]:
    if settings.MCP_SYNC_TOOLS_ON_STARTUP:
        try:
            await run_db(tools_sync_python)
        except Exception:  # the endpoint still serves the tools that have rows
            logger.exception("could not sync the Python tools at start-up")
    async with (
        rate_limiter() as limiter,
        loop_database() as database,
        anyio.create_task_group() as task_group,
        tool_workers(
            task_group,
            size=settings.MCP_TOOL_WORKERS,
            modules=settings.MCP_TOOL_MODULES,
            memory_mb=settings.MCP_TOOL_MEMORY_MB,
        ) as workers,
    ):
        spares = spare_holds(database)
        if spares is not None:
            task_group.start_soon(spares.return_idle)
        yield GatewayState(
            limiter=limiter,
            upstreams=UpstreamPool(task_group),
            workers=workers,
            database=database,
            spares=spares,
        )
        if spares is not None:
            await spares.close()
        task_group.cancel_scope.cancel()  # closes the upstream connections, stops the sweep


def _principal(ctx: ServerRequestContext[GatewayState, Any]) -> Principal:
    request = ctx.request
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY) if isinstance(request, Request) else None
    if principal is None:  # only reachable without GatewayApp in front
        raise MCPError(code=types.INVALID_REQUEST, message="Not authenticated.")
    return principal


def _idempotency_key(params: Mapping[str, Any] | None) -> str | None:
    meta = (params or {}).get("_meta")
    key = meta.get(IDEMPOTENCY_META_KEY) if isinstance(meta, Mapping) else None
    if key is None:
        return None
    if not isinstance(key, str) or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise MCPError(
            code=types.INVALID_PARAMS,
            message=f"{IDEMPOTENCY_META_KEY} must be a string of 1 to "
            f"{MAX_IDEMPOTENCY_KEY_CHARS} characters.",
        )
    return key


def _internal_error(exc: BaseException, what: str) -> MCPError:
    """A JSON-RPC internal error with a reference to the logged exception, nothing more."""
    reference = uuid.uuid4().hex[:12]
    logger.error("%s failed (reference %s)", what, reference, exc_info=exc)
    return MCPError(
        code=types.INTERNAL_ERROR,
        message=f"Internal error; nothing was charged (reference {reference}).",
    )


def _internal_errors_hidden(handler: Handler) -> Handler:
    """``handler`` with any failure but an MCP error turned into ``_internal_error``.

    Nothing internal (a library's message, a stack) reaches the client; the
    operator finds the exception in the log by its reference.
    """

    @functools.wraps(handler)
    async def guarded(ctx, params):
        try:
            return await handler(ctx, params)
        except MCPError:
            raise
        except Exception as exc:
            raise _internal_error(exc, handler.__name__) from None

    return guarded


@_internal_errors_hidden
async def _list_tools(
    ctx: ServerRequestContext[GatewayState, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    principal = _principal(ctx)
    offers = [
        offer for offer in (await catalog.offers()).values() if principal.allows_tool(offer.name)
    ]

    def priced() -> list[types.Tool]:
        return [
            offer.listing(
                tool_quote(customer=principal.customer, tool=offer.tool, price=offer.price)
            )
            for offer in offers
        ]

    return types.ListToolsResult(tools=await run_db(priced))


@_internal_errors_hidden
async def _call_tool(
    ctx: ServerRequestContext[GatewayState, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    principal = _principal(ctx)
    offer = (await catalog.offers()).get(params.name)
    if offer is None or not principal.allows_tool(params.name):
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
    try:
        arguments = offer.validate(params.arguments or {})
    except InvalidArguments as exc:
        raise MCPError(
            code=types.INVALID_PARAMS, message=f"Invalid arguments for {offer.name}: {exc}"
        ) from exc
    return await billed_call(
        principal=principal,
        offer=offer,
        arguments=arguments,
        idempotency_key=_idempotency_key(ctx.params),
        limiter=ctx.lifespan_context.limiter,
        upstreams=ctx.lifespan_context.upstreams,
        workers=ctx.lifespan_context.workers,
        database=ctx.lifespan_context.database,
        spares=ctx.lifespan_context.spares,
    )


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, else of ``X-API-Key``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip() or None


class GatewayApp:
    """Host/Origin checks and authentication in front of the SDK's app."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = request_refused(
            request,
            allowed_hosts=self.security.allowed_hosts,
            allowed_origins=self.security.allowed_origins,
        )
        if refused is not None:
            await refused(scope, receive, send)
            return
        token = bearer_token(request)
        if token is None:
            await unauthorized_response(None)(scope, receive, send)
            return
        try:
            scope[PRINCIPAL_SCOPE_KEY] = principal_recent(token=token) or await run_db(
                authenticate, token=token
            )
        except ApplicationError as exc:
            await unauthorized_response(exc)(scope, receive, send)
            return
        except Exception as exc:
            error = _internal_error(exc, "authentication")
            await internal_error_response(error.error.message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _version() -> str:
    try:
        return version("mcpbilling")
    except PackageNotFoundError:
        return "dev"


def gateway_app() -> ASGIApp:
    """A new ASGI app serving /mcp; mount it in the router (it needs lifespan)."""
    server: Server[GatewayState] = Server(
        "mcpbilling",
        version=_version(),
        title="MCP Billing",
        instructions="Every tool call is billed; prices are in each tool's _meta.",
        lifespan=_lifespan,
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
        get_tool_input_schema=catalog.input_schema,
    )
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.MCP_ALLOWED_HOSTS,
        allowed_origins=settings.MCP_ALLOWED_ORIGINS,
    )
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=security,
        max_request_body_size=settings.MCP_MAX_BODY_BYTES,
    )
    return GatewayApp(app, security)
