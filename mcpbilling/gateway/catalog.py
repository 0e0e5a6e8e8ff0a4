"""What the endpoint offers: enabled tools, priced or free, from code or upstream servers.

The catalog is a per-process snapshot of the tool rows, their active prices
and upstream servers, reloaded when older than ``MCP_CATALOG_TTL_S``: listing
and calling tools read no tool or price rows. What a call is charged is
decided by the charge engine from the price rows themselves, so a new price
applies at once; the listing and the set of offered tools follow within the TTL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import mcp_types as types
from django.conf import settings
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from pydantic import ValidationError

from billing.models import Tool, ToolPrice
from billing.services.pricing import Quote
from mcpbilling.gateway.db import run_db
from mcpbilling.gateway.registry import PythonTool, python_tools
from mcpbilling.gateway.upstream import UpstreamPool
from mcpbilling.gateway.workers import ToolWorkers

PRICE_META_KEY = "mcpbilling/price"
MAX_ERRORS_REPORTED = 5


class InvalidArguments(Exception):
    """The arguments do not fit the tool's input schema; the message says how."""


@dataclass(frozen=True)
class Offer:
    """A tool as offered: its row, its active price (None when free) and what runs it."""

    tool: Tool
    price: ToolPrice | None
    python: PythonTool | None = None  # a Python tool's function

    @property
    def name(self) -> str:
        return self.tool.name

    @property
    def timeout_s(self) -> float:
        if self.tool.upstream is not None:
            return min(self.tool.timeout_s, self.tool.upstream.timeout_s)
        return self.tool.timeout_s

    @property
    def input_schema(self) -> dict[str, Any]:
        if self.python is not None:
            return self.python.sdk_tool.parameters
        return self.tool.input_schema or {"type": "object"}

    @cached_property
    def _schema_validator(self) -> Validator | None:
        try:
            validator_class = validator_for(self.input_schema)
            validator_class.check_schema(self.input_schema)
        except SchemaError:
            return None  # the upstream's schema is broken: it validates for itself
        return validator_class(self.input_schema)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments to run the tool with, or InvalidArguments."""
        if self.python is not None:
            try:
                return self.python.validate(arguments)
            except ValidationError as exc:
                problems = [
                    f"{'.'.join(map(str, error['loc'])) or 'arguments'}: {error['msg']}"
                    for error in exc.errors()[:MAX_ERRORS_REPORTED]
                ]
                raise InvalidArguments("; ".join(problems)) from exc
        validator = self._schema_validator
        if validator is not None:
            problems = [
                f"{'.'.join(map(str, error.absolute_path)) or 'arguments'}: {error.message[:200]}"
                for error in list(validator.iter_errors(arguments))[:MAX_ERRORS_REPORTED]
            ]
            if problems:
                raise InvalidArguments("; ".join(problems))
        return arguments

    async def run(
        self, arguments: dict[str, Any], *, upstreams: UpstreamPool, workers: ToolWorkers
    ) -> types.CallToolResult:
        """Execute the tool with validated arguments (no timeout here: the caller sets it)."""
        if self.python is not None:
            return await self.python.run(arguments, workers=workers)
        upstream = self.tool.upstream
        assert upstream is not None
        return await upstreams.call(
            upstream, self.tool.upstream_name, arguments, timeout_s=self.timeout_s + 5
        )

    def listing(self, quote: Quote) -> types.Tool:
        """The tool as tools/list shows it, with its price for this customer."""
        price = {
            "currency": quote.currency,
            "unit_amount_decimal": quote.unit_amount_decimal,
            "credits": quote.credits,
        }
        return types.Tool(
            name=self.name,
            title=self.tool.title or None,
            description=self.tool.description or None,
            input_schema=self.input_schema,
            _meta={PRICE_META_KEY: price},
        )


def offers_load() -> dict[str, Offer]:
    """Every tool that can be called now, by name."""
    registered = python_tools()
    tools = list(Tool.objects.filter(enabled=True).select_related("upstream"))
    active: dict[int, ToolPrice] = {}
    for price in ToolPrice.objects.filter(tool__in=tools).order_by("tool_id", "-version"):
        active.setdefault(price.tool_id, price)
    offers = {}
    for tool in tools:
        price = None if tool.is_free else active.get(tool.pk)
        if price is None and not tool.is_free:
            continue
        if tool.source == Tool.Source.PYTHON:
            if tool.name in registered:
                offers[tool.name] = Offer(tool, price, python=registered[tool.name])
        elif (
            (upstream := tool.upstream) and upstream.enabled and upstream.offers(tool.upstream_name)
        ):
            offers[tool.name] = Offer(tool, price)
    return offers


class Catalog:
    """The per-process snapshot of offers; safe to share between event loops and threads."""

    def __init__(self) -> None:
        self._offers: dict[str, Offer] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._loaded_at < settings.MCP_CATALOG_TTL_S

    def _reload_if_stale(self) -> None:
        with self._lock:  # one reload at a time; the others then find it fresh
            if not self._fresh():
                self._offers = offers_load()
                self._loaded_at = time.monotonic()

    async def offers(self) -> dict[str, Offer]:
        if not self._fresh():
            await run_db(self._reload_if_stale)
        return self._offers

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """For the SDK's header checks; reads only the snapshot (never the database)."""
        offer = self._offers.get(name)
        return None if offer is None else offer.input_schema

    def invalidate(self) -> None:
        """Forget the snapshot: the next call reloads it (after tools or prices change)."""
        self._loaded_at = float("-inf")


catalog = Catalog()
