"""Gateway test support: the site in uvicorn, the official MCP client over HTTP, balances,
and the loop's own database sessions for the engine's phases.

Tests are synchronous (the ORM is not called from an event loop); each client
helper runs its work with ``anyio.run``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp

from billing.models import CreditAccount
from billing.services.ledger import credit_grant
from customers.models import Customer
from mcpbilling.gateway.db import LoopDatabase
from tests.factories import customer

T = TypeVar("T")


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn (lifespan on) in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start (see its log)")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def site_app() -> ASGIApp:
    """The project's ASGI app: Django behind the router, the gateway mounted at /mcp.

    Built here rather than imported from mcpbilling.asgi because a gateway's
    session manager runs once: each server needs a fresh one.
    """
    from mcpbilling.asgi import django_application
    from mcpbilling.gateway.server import gateway_app
    from mcpbilling.router import Router

    return Router(django_application, mounts={"/mcp": gateway_app()})


def balance(owner: Customer) -> int:
    return CreditAccount.objects.get(customer=owner).balance_credits


@asynccontextmanager
async def mcp_session(
    url: str, token: str | None, *, mode: str = "auto", headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    """A connected client of ``url``/mcp, sending ``token`` as a bearer token."""
    sent = dict(headers or {})
    if token is not None:
        sent.setdefault("Authorization", f"Bearer {token}")
    async with httpx2.AsyncClient(headers=sent, timeout=60) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:
            yield client


def run(url: str, token: str | None, work: Callable[[Client], Awaitable[T]], **options) -> T:
    """Open a client session, run ``work`` with it, return its result."""

    async def main() -> T:
        async with mcp_session(url, token, **options) as client:
            return await work(client)

    return anyio.run(main)


def call(
    url: str,
    token: str,
    name: str,
    arguments: dict[str, Any] | None = None,
    *,
    meta=None,
    **options,
) -> types.CallToolResult:
    return run(
        url, token, lambda client: client.call_tool(name, arguments or {}, meta=meta), **options
    )


def call_error(
    url: str,
    token: str,
    name: str,
    arguments: dict[str, Any] | None = None,
    *,
    meta=None,
    **options,
) -> MCPError:
    """The JSON-RPC error a call gets (fails the test when it gets a result)."""

    async def work(client: Client) -> MCPError:
        try:
            await client.call_tool(name, arguments or {}, meta=meta)
        except MCPError as exc:
            return exc
        raise AssertionError(f"{name} returned a result, not a JSON-RPC error")

    return run(url, token, work, **options)


def list_tools(url: str, token: str, **options) -> dict[str, types.Tool]:
    listed = run(url, token, lambda client: client.list_tools(), **options)
    return {tool.name: tool for tool in listed.tools}


def concurrent_calls(
    url: str, token: str, name: str, arguments: dict[str, Any], *, calls: int, clients: int = 10
) -> list[types.CallToolResult]:
    """``calls`` calls at once, spread over ``clients`` client sessions."""

    async def main() -> list[types.CallToolResult]:
        results: list[types.CallToolResult] = []

        async def one_client(share: int) -> None:
            async with mcp_session(url, token) as client, anyio.create_task_group() as group:
                for _ in range(share):

                    async def one() -> None:
                        results.append(await client.call_tool(name, arguments))

                    group.start_soon(one)

        async with anyio.create_task_group() as group:
            for index in range(clients):
                group.start_soon(one_client, calls // clients + (index < calls % clients))
        return results

    return anyio.run(main)


def refusal(result: types.CallToolResult) -> dict[str, Any]:
    """The ``structuredContent.error`` of a refused call."""
    assert result.is_error, result
    assert result.structured_content is not None, result
    return result.structured_content["error"]


def outcomes(results: list[types.CallToolResult]) -> dict[str, int]:
    """How many calls succeeded ("ok") and how many got each refusal code."""
    counted: dict[str, int] = {}
    for result in results:
        code = refusal(result)["code"] if result.is_error else "ok"
        counted[code] = counted.get(code, 0) + 1
    return counted


def funded_customer(credits: int) -> Customer:
    """A new customer granted ``credits``."""
    owner = customer()
    credit_grant(customer_id=owner.pk, credits=credits, idempotency_key=f"grant:{owner.pk}")
    return owner


def account_credits(owner: Customer) -> tuple[int, int]:
    """The customer's (balance, held) credits."""
    account = CreditAccount.objects.get(customer=owner)
    return account.balance_credits, account.held_credits


def on_loop(work, *, size: int = 4):
    """``work(database)`` on a new event loop with its own sessions, closed after;
    returns (what ``work`` returned, the database)."""

    async def main():
        database = LoopDatabase(size=size)
        try:
            return await work(database), database
        finally:
            await database.aclose()

    return anyio.run(main)
