"""The gateway's error mapper: ApplicationError to MCP results and HTTP answers.

Refusals of a tool call (billing, limits) are results with ``isError: true``,
a text the model can read and ``structuredContent.error`` a client can act on,
with an ``action_url`` where the customer buys credits, subscribes or adds a card.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import mcp_types as types
from django.conf import settings
from starlette.responses import JSONResponse

from billing.services import calls
from mcpbilling.errors import ApplicationError

# Where each action of the charge engine's refusals leads (served by the Stripe pages).
ACTION_PATHS = {
    calls.BUY_CREDITS: "/billing/credits/",
    calls.SUBSCRIBE: "/billing/plans/",
    calls.UPGRADE: "/billing/plans/",
    calls.ADD_PAYMENT_METHOD: "/billing/payment-method/",
    calls.UPDATE_PAYMENT_METHOD: "/billing/payment-method/",
}
PLAN_ACTIONS = {calls.SUBSCRIBE, calls.UPGRADE}


def action_url(action: str | None, *, plan: str | None = None) -> str | None:
    """The page where the customer can take ``action``; None for no action."""
    path = ACTION_PATHS.get(action or "")
    if path is None:
        return None
    query = f"?{urlencode({'plan': plan})}" if plan and action in PLAN_ACTIONS else ""
    return f"{settings.SITE_URL.rstrip('/')}{path}{query}"


def refusal_result(exc: ApplicationError) -> types.CallToolResult:
    """A refused call as the model and the client see it; nothing was charged."""
    extra: dict[str, Any] = {key: value for key, value in exc.extra.items() if key != "action"}
    url = action_url(exc.extra.get("action"), plan=extra.get("plan") or extra.get("upgrade_plan"))
    text = exc.message if url is None else f"{exc.message} Go to {url}"
    error = {"code": exc.code, "message": exc.message, "action_url": url, **extra}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={"error": error},
        is_error=True,
    )


def resource_metadata_url() -> str:
    """Where the RFC 9728 protected-resource metadata of /mcp is served."""
    return f"{settings.SITE_URL.rstrip('/')}/.well-known/oauth-protected-resource/mcp"


def unauthorized_response(exc: ApplicationError | None) -> JSONResponse:
    """HTTP 401 with the Bearer challenge; ``exc`` None when no credentials were sent."""
    challenge = f'Bearer resource_metadata="{resource_metadata_url()}"'
    if exc is None:
        body = {
            "error": "unauthorized",
            "error_description": "Send an API key or JWT: Authorization: Bearer <token>.",
        }
    else:
        challenge += ', error="invalid_token"'
        body = {"error": exc.code, "error_description": exc.message}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})


def internal_error_response(message: str) -> JSONResponse:
    """HTTP 500 carrying a JSON-RPC internal error (-32603) with a generic ``message``."""
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": types.INTERNAL_ERROR, "message": message},
    }
    return JSONResponse(body, status_code=500)
