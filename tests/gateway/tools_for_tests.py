"""Python tools for the gateway tests: ones that count, fail, hang, or misbehave in a worker.

``counted`` and ``hang`` record what they do in this process's memory, so they
run in the server (``io_bound``); the others run in the tool worker processes,
as every tool does by default.
"""

import os
import threading
import time

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from mcpbilling.gateway.registry import tool

runs: list[str] = []  # what `counted` was called with, in this process
hanging = threading.Event()  # set once `hang` runs


@tool(price_cents=1, credits=1, io_bound=True)
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


@tool(price_cents=2, credits=2, timeout_s=0.2, io_bound=True)
async def hang() -> str:
    """Never finish within the tool's timeout."""
    hanging.set()
    await anyio.sleep(30)
    return "late"


@tool(price_cents=1, credits=1)
def whoami() -> int:
    """The id of the process the tool runs in."""
    return os.getpid()


@tool(price_cents=1, credits=1, timeout_s=1.0)
def hog() -> int:
    """Hold the GIL inside C code for minutes, as round(1, -10**8) once did."""
    return (10 ** (10**8)).bit_length()


@tool(price_cents=1, credits=1, timeout_s=60.0)
def spin(seconds: float) -> float:
    """Use the CPU in Python for ``seconds``."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return seconds


@tool(price_cents=1, credits=1)
def allocate(megabytes: int) -> int:
    """Ask for ``megabytes`` of memory."""
    return len(bytearray(megabytes * 1024 * 1024))


@tool(price_cents=1, credits=1)
def die() -> str:
    """End the process the tool runs in, as a crash of the interpreter would."""
    os._exit(3)
