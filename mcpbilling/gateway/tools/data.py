"""``json_query``: pick values out of a JSON document by a path."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mcpbilling.gateway.registry import tool

MAX_DOCUMENT_CHARS = 200_000
STEP = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+|\*)\]")


class QueryResult(BaseModel):
    value: Any


def path_steps(path: str) -> list[str | int]:
    """``$.items[0].name`` -> ["items", 0, "name"]; ``[*]`` is every element ("*")."""
    rest = path.strip().removeprefix("$")
    steps: list[str | int] = []
    while rest:
        match = STEP.match(rest)
        if match is None:
            raise ToolError(f"Cannot read the path at {rest!r}; write e.g. $.items[0].name.")
        key, index = match.groups()
        steps.append(key if key is not None else ("*" if index == "*" else int(index)))
        rest = rest[match.end() :]
    return steps


def select(value: Any, steps: list[str | int]) -> Any:
    for position, step in enumerate(steps):
        if step == "*":
            if not isinstance(value, list):
                raise ToolError("[*] applies to an array.")
            return [select(item, steps[position + 1 :]) for item in value]
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                raise ToolError(f"No element [{step}] here.")
            value = value[step]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            raise ToolError(f"No key {step!r} here.")
    return value


@tool(price_cents="0.1", credits=1, timeout_s=5.0)
def json_query(
    document: Annotated[str, Field(max_length=MAX_DOCUMENT_CHARS, description="JSON text")],
    path: Annotated[str, Field(max_length=500, description="e.g. $.items[0].name or items[*].id")],
) -> QueryResult:
    """Parse a JSON document and return the value at a path ($ is the whole document)."""
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise ToolError(f"The document is not valid JSON: {exc}.") from exc
    return QueryResult(value=select(parsed, path_steps(path)))
