"""Python tools: registered in code with ``@tool``, offered once a ``Tool`` row exists.

A tool's name, description and input schema (from its type hints) come from
the code; its price from ``ToolPrice`` rows. ``tools_sync_python`` creates the
rows of the tools in ``MCP_TOOL_MODULES`` and gives a tool without any price its
default one; it never replaces a price an operator has set.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import mcp_types as types
from django.conf import settings
from django.db import transaction
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool as SdkTool

from billing.models import Tool
from billing.services.pricing import decimal_to_microcents, tool_price_set

if TYPE_CHECKING:
    from mcpbilling.gateway.workers import ToolWorkers

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class PythonTool:
    """A registered function with its default price (used only until an operator sets one)."""

    sdk_tool: SdkTool  # the SDK's view of the function: input schema, argument model
    module: str
    free: bool
    price_microcents: int
    credits: int | None
    timeout_s: float
    # Runs in the server (a thread, or the loop when async) instead of a worker process:
    # for tools that wait on the network or disk and need no protection from themselves.
    io_bound: bool = False

    @property
    def name(self) -> str:
        return self.sdk_tool.name

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments as the function takes them; raises pydantic's ValidationError."""
        return self.sdk_tool.fn_metadata.validate_arguments(arguments)

    def call(self, validated: dict[str, Any]) -> types.CallToolResult:
        """Call the function in this thread (an async one with ``asyncio.run``, so never
        on a running loop): what a worker process does."""
        fn = self.sdk_tool.fn
        try:
            return self._result(asyncio.run(fn(**validated)) if self.is_async else fn(**validated))
        except Exception as exc:
            return self._failure(exc)

    async def run(self, validated: dict[str, Any], *, workers: ToolWorkers) -> types.CallToolResult:
        """Call the function: in a worker process, or in the server when it is I/O-bound.

        An I/O-bound synchronous function runs on a worker thread that a timeout
        abandons; an I/O-bound async one on the event loop.
        """
        if not self.io_bound:
            return await workers.run(self.name, validated, cpu_s=self.timeout_s)
        if not self.is_async:
            return await anyio.to_thread.run_sync(self.call, validated, abandon_on_cancel=True)
        try:
            return self._result(await self.sdk_tool.fn(**validated))
        except Exception as exc:
            return self._failure(exc)

    @property
    def is_async(self) -> bool:
        return self.sdk_tool.is_async

    def _result(self, value: Any) -> types.CallToolResult:
        result = self.sdk_tool.fn_metadata.convert_result(value)
        assert isinstance(result, types.CallToolResult)
        return result

    def _failure(self, exc: Exception) -> types.CallToolResult:
        """A failed call as its caller sees it: ToolError's text, else nothing internal."""
        if isinstance(exc, ToolError):
            return error_result(str(exc))
        if isinstance(exc, MemoryError):
            return error_result(f"The tool {self.name} ran out of memory.")
        logger.error("tool %s raised", self.name, exc_info=exc)
        return error_result(f"The tool {self.name} failed.")


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


_REGISTRY: dict[str, PythonTool] = {}


def tool(
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    price_cents: Decimal | str | int | None = None,
    credits: int | None = None,
    free: bool = False,
    timeout_s: float = 30.0,
    io_bound: bool = False,
) -> Callable[[F], F]:
    """Register a function as a tool, with its default price per call.

    ``price_cents`` may be fractional ("0.25"); ``credits`` is what a call costs
    on a credits plan (None: not payable in credits). ``free`` tools need no price.
    Raise ``ToolError`` for a failure the caller should read. A tool runs in a
    worker process under the limits of ``workers``; ``io_bound`` runs it in the
    server instead (for tools that wait on the network, not the CPU).
    """
    if not free and price_cents is None:
        raise ValueError("a tool needs a default price_cents unless it is free")

    def register(fn: F) -> F:
        sdk_tool = SdkTool.from_function(fn, name=name, title=title, description=description)
        if sdk_tool.name in _REGISTRY:
            raise ValueError(f"a tool named {sdk_tool.name!r} is already registered")
        _REGISTRY[sdk_tool.name] = PythonTool(
            sdk_tool=sdk_tool,
            module=fn.__module__,
            free=free,
            price_microcents=0 if free else decimal_to_microcents(str(price_cents)),
            credits=None if free else credits,
            timeout_s=timeout_s,
            io_bound=io_bound,
        )
        return fn

    return register


def python_tools(modules: list[str] | None = None) -> dict[str, PythonTool]:
    """The registered tools of ``modules`` (default ``MCP_TOOL_MODULES``), by name."""
    modules = set(settings.MCP_TOOL_MODULES if modules is None else modules)
    for module in modules:
        importlib.import_module(module)
    return {name: entry for name, entry in _REGISTRY.items() if entry.module in modules}


def tools_sync_python() -> list[Tool]:
    """Create or update the rows of the Python tools; price a tool that has no price yet."""
    synced = []
    for entry in python_tools().values():
        with transaction.atomic():
            row = _tool_row_sync(entry)
            if row is None:
                continue
            if not entry.free and not row.prices.exists():
                tool_price_set(
                    tool=row, unit_amount_microcents=entry.price_microcents, credits=entry.credits
                )
            synced.append(row)
    return synced


def _tool_row_sync(entry: PythonTool) -> Tool | None:
    sdk_tool = entry.sdk_tool
    row = tool_row_sync(
        name=entry.name,
        synced={
            "title": sdk_tool.title or "",
            "description": sdk_tool.description,
            "input_schema": sdk_tool.parameters,
        },
        defaults={
            "source": Tool.Source.PYTHON,
            "is_free": entry.free,
            "timeout_s": entry.timeout_s,
        },
        owned=lambda row: row.source == Tool.Source.PYTHON,
    )
    if row is None:
        logger.warning("tool %s: the name belongs to an upstream tool; not synced", entry.name)
    return row


def tool_row_sync(
    *,
    name: str,
    synced: dict[str, Any],
    defaults: dict[str, Any],
    owned: Callable[[Tool], bool],
) -> Tool | None:
    """The row ``name``, locked, its ``synced`` fields as given; None when it is not ``owned``.

    ``defaults`` apply to a new row only: the operator's to change afterwards.
    Call inside a transaction.
    """
    row, _ = Tool.objects.get_or_create(name=name, defaults={**defaults, **synced})
    row = Tool.objects.select_for_update().get(pk=row.pk)
    if not owned(row):
        return None
    changed = [field for field, value in synced.items() if getattr(row, field) != value]
    for field in changed:
        setattr(row, field, synced[field])
    if changed:
        row.save(update_fields=changed)
    return row
