"""What runs in a tool worker process (see ``workers``): load the tools, serve calls."""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import resource
import signal
from multiprocessing.connection import Connection

from mcpbilling.gateway.registry import error_result, python_tools

logger = logging.getLogger(__name__)


def preload(modules: list[str]) -> None:
    """Import tool modules ahead, in the fork server, so workers start with them loaded."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # the worker imports it again, and reports the failure then
            logger.exception("tool module %s could not be imported", module)


def _limit_memory(memory_mb: int) -> None:
    """Let the address space grow by ``memory_mb`` from what the loaded tools use now."""
    if memory_mb <= 0:
        return
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    limit = pages * os.sysconf("SC_PAGE_SIZE") + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))


def _limit_cpu(cpu_s: float) -> None:
    """Allow this call ``cpu_s`` more CPU seconds; past them the kernel sends SIGXCPU."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = math.ceil(used + max(cpu_s, 1.0))
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))


def worker_main(connection: Connection, modules: list[str], memory_mb: int) -> None:
    """A worker's life: load the tools, then run one call per request until the pipe closes."""
    # The server decides when workers stop: Ctrl-C at a terminal reaches the whole
    # process group, and a worker must not die (or print) in the middle of a call.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tools = python_tools(modules)
    _limit_memory(memory_mb)
    connection.send_bytes(b'{"ready": true}')
    while True:
        try:
            request = json.loads(connection.recv_bytes())
        except EOFError:
            return
        tool = tools.get(request["tool"])
        if tool is None:
            result = error_result(f"Unknown tool: {request['tool']}")
        else:
            _limit_cpu(request["cpu_s"])
            result = tool.call(tool.validate(request["arguments"]))
        connection.send_bytes(result.model_dump_json(by_alias=True, exclude_none=True).encode())
