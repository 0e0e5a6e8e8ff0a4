"""Python tools for the gateway tests: one that counts its runs, ones that fail or hang."""

import threading

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from mcpbilling.gateway.registry import tool

runs: list[str] = []  # what `counted` was called with, in this process
hanging = threading.Event()  # set once `hang` runs


@tool(price_cents=1, credits=1)
def counted(label: str) -> str:
    """Record a run and echo the label."""
    runs.append(label)
    return label


@tool(price_cents=2, credits=2)
def explode(message: str = "boom") -> str:
    """Fail as a tool does: an error the caller reads."""
    raise ToolError(message)


@tool(price_cents=2, credits=2)
def crash() -> str:
    """Fail as a bug does."""
    raise RuntimeError("internal detail that must not leak")


@tool(price_cents=2, credits=2, timeout_s=0.2)
async def hang() -> str:
    """Never finish within the tool's timeout."""
    hanging.set()
    await anyio.sleep(30)
    return "late"
