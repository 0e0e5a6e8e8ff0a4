"""Upstream MCP servers: their tools listed into ``Tool`` rows, and calls proxied to them.

An ``UpstreamServer`` is reached over Streamable HTTP (its URL and headers) or
stdio (a command the gateway starts). Values written ``${NAME}`` are read from
the environment, so secrets stay out of the database.

``upstream_tools_sync`` lists a server's tools and creates or updates their rows
(``source=upstream``, named ``<tool_prefix><upstream name>``, without a price:
an operator prices them, or marks them free, before they are offered); tools
the server no longer lists are disabled. ``UpstreamPool`` keeps one open client
per server configuration for the calls.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskGroup
from django.db import transaction
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from billing.models import Tool, UpstreamServer
from billing.services.catalog import ENV_REFERENCE, env_reference_allowed
from mcpbilling.errors import ApplicationError
from mcpbilling.gateway.db import run_db
from mcpbilling.gateway.registry import tool_row_sync

logger = logging.getLogger(__name__)

MAX_LIST_PAGES = 100


class UpstreamUnavailable(Exception):
    """The upstream server could not be reached or its connection broke."""


def env_expanded(value: str) -> str:
    """``value`` with each ``${NAME}`` replaced by the environment variable NAME.

    A name the configuration may not read (``env_reference_allowed``) reads as
    empty, whoever wrote the row.
    """

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if not env_reference_allowed(name):
            logger.warning("upstream configuration names ${%s}, which it may not read", name)
            return ""
        if name not in os.environ:
            logger.warning("upstream configuration names ${%s}, which is not set", name)
        return os.environ.get(name, "")

    return ENV_REFERENCE.sub(lookup, value)


@asynccontextmanager
async def upstream_client(server: UpstreamServer) -> AsyncIterator[Client]:
    """An open MCP client session with ``server``."""
    if server.transport == UpstreamServer.Transport.HTTP:
        headers = {name: env_expanded(str(value)) for name, value in server.headers.items()}
        timeout = httpx2.Timeout(server.timeout_s, read=max(server.timeout_s, 30.0))
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
            transport = streamable_http_client(server.url, http_client=http)
            async with Client(transport, cache=None) as client:
                yield client
        return
    parameters = StdioServerParameters(
        command=env_expanded(server.command),
        args=[env_expanded(str(arg)) for arg in server.args],
        env={name: env_expanded(str(value)) for name, value in server.env.items()},
    )
    async with Client(parameters, cache=None) as client:
        yield client


# --- listing ----------------------------------------------------------------


async def upstream_tools_list(server: UpstreamServer) -> list[types.Tool]:
    """Every tool ``server`` lists, across pages."""
    listed: list[types.Tool] = []
    async with upstream_client(server) as client:
        cursor = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
    return listed


async def upstream_tools_sync(server: UpstreamServer) -> list[Tool]:
    """List ``server``'s tools and bring their rows up to date; returns the rows."""
    listed = await upstream_tools_list(server)
    return await run_db(upstream_rows_sync, server=server, listed=listed)


@transaction.atomic
def upstream_rows_sync(*, server: UpstreamServer, listed: list[types.Tool]) -> list[Tool]:
    """Create or update the rows of ``listed``; disable those the server stopped listing.

    Prices, ``is_free``, ``enabled`` of listed tools and timeouts stay as the operator set them.
    """
    rows = []
    for upstream_tool in listed:
        row = tool_row_sync(
            name=f"{server.tool_prefix}{upstream_tool.name}",
            synced={
                "title": upstream_tool.title or "",
                "description": upstream_tool.description or "",
                "input_schema": upstream_tool.input_schema,
            },
            defaults={
                "source": Tool.Source.UPSTREAM,
                "upstream": server,
                "upstream_name": upstream_tool.name,
                "timeout_s": server.timeout_s,
            },
            owned=lambda row, name=upstream_tool.name: (
                row.upstream_id == server.pk and row.upstream_name == name
            ),
        )
        if row is None:
            logger.warning(
                "upstream %s: the name of %s is taken; not synced", server.name, upstream_tool.name
            )
            continue
        rows.append(row)
    gone = Tool.objects.filter(upstream=server, enabled=True).exclude(
        upstream_name__in=[upstream_tool.name for upstream_tool in listed]
    )
    for name in gone.values_list("name", flat=True):
        logger.warning("upstream %s no longer lists %s; disabled", server.name, name)
    gone.update(enabled=False)
    return rows


def upstream_refresh(*, server: UpstreamServer) -> list[Tool]:
    """List ``server``'s tools now and bring their rows up to date (from synchronous code:
    the API, a command); an unreachable or failing server is an ``upstream_unreachable``."""
    try:
        return anyio.run(upstream_tools_sync, server)
    except Exception as exc:  # any failure of the server or the link: reported, nothing changed
        logger.warning("upstream %s: refresh failed: %r", server.name, exc)
        raise ApplicationError(
            "upstream_unreachable",
            f"The upstream server {server.name} could not be listed "
            f"({type(exc).__name__}); check its address or command and refresh again.",
        ) from exc


# --- calls ------------------------------------------------------------------


class _Link:
    """One open client connection, held open by its own task until closed."""

    def __init__(self) -> None:
        self.ready = anyio.Event()
        self.closed = anyio.Event()
        self.client: Client | None = None
        self.error: BaseException | None = None


class UpstreamPool:
    """Open connections to upstream servers, one per server configuration, shared by calls.

    A connection opens on the first call, reopens after it breaks, and is
    replaced when the server's configuration changes (``updated_at``).
    """

    def __init__(
        self,
        task_group: TaskGroup,
        connect: Callable[[UpstreamServer], AbstractAsyncContextManager[Client]] = upstream_client,
    ) -> None:
        self._task_group = task_group
        self._connect = connect
        self._links: dict[tuple[int, Any], _Link] = {}

    async def call(
        self, server: UpstreamServer, name: str, arguments: dict[str, Any], *, timeout_s: float
    ) -> types.CallToolResult:
        """Call the upstream tool ``name``; MCPError for its JSON-RPC errors.

        ``timeout_s`` is a backstop: the caller's own, shorter timeout decides.
        """
        link = await self._link(server)
        client = link.client
        if client is None:
            raise UpstreamUnavailable(f"{server.name}: the connection closed")
        try:
            return await client.call_tool(name, arguments, read_timeout_seconds=timeout_s)
        except MCPError:
            raise
        except Exception as exc:
            self._close((server.pk, server.updated_at), link)
            raise UpstreamUnavailable(f"{server.name}: {type(exc).__name__}: {exc}") from exc

    async def _link(self, server: UpstreamServer) -> _Link:
        key = (server.pk, server.updated_at)
        link = self._links.get(key)
        if link is None:
            for stale_key in [k for k in self._links if k[0] == server.pk]:
                self._close(stale_key, self._links[stale_key])
            link = self._links[key] = _Link()
            self._task_group.start_soon(self._hold, key, server, link)
        await link.ready.wait()
        if link.client is None:
            raise UpstreamUnavailable(f"{server.name}: {link.error}")
        return link

    async def _hold(self, key: tuple[int, Any], server: UpstreamServer, link: _Link) -> None:
        try:
            async with self._connect(server) as client:
                link.client = client
                link.ready.set()
                await link.closed.wait()
        except Exception as exc:
            logger.warning("upstream %s: connection failed or broke: %r", server.name, exc)
            link.error = exc
        finally:
            link.client = None
            link.ready.set()
            self._close(key, link)

    def _close(self, key: tuple[int, Any], link: _Link) -> None:
        if self._links.get(key) is link:
            del self._links[key]
        link.closed.set()
