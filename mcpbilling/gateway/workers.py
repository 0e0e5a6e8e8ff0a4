"""Python tools run in worker processes, so that no tool can stall the server.

A tool's function running in the server's own process can hold the GIL inside
C code for minutes (``round(1, -10**8)`` did): no timeout fires, the event loop
stops, and every customer waits. So each call of a Python tool goes to one of a
pool of worker processes, one call at a time per worker:

- the call waits for an idle worker, then sends it the tool's name and its
  arguments (JSON) and waits for the result without blocking the loop;
- at the tool's timeout, or when the caller goes away, the worker is killed
  (SIGKILL reaches it whatever it is doing) and a new one takes its place; the
  gateway releases the call as a timeout or a cancellation;
- each worker runs under limits: its address space may grow by
  ``MCP_TOOL_MEMORY_MB`` (a tool that asks for more gets MemoryError, an error
  result), and a call may use as many CPU seconds as its timeout (past them
  the kernel ends the worker; the call is released as failed).

Workers are forked from multiprocessing's fork server, which imports Django and
the tool modules once, so a replacement starts in milliseconds. A tool that
declares itself I/O-bound (``@tool(io_bound=True)``) runs in the server as
before: on a worker thread, or on the event loop when it is async.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import anyio
import mcp_types as types
import pydantic_core
from anyio.abc import TaskGroup

from mcpbilling.gateway import worker_process
from mcpbilling.gateway.registry import error_result

logger = logging.getLogger(__name__)

# Workers fork from a server process that imported Django and the tools once.
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["mcpbilling.gateway.worker_preload"])


class WorkerStopped(Exception):
    """The worker ended during the call: a resource limit, or a crash of the interpreter."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__(f"worker exited with {exit_code}")
        self.exit_code = exit_code

    @property
    def reason(self) -> str:
        if self.exit_code == -signal.SIGXCPU:
            return "it used more CPU time than its limit"
        if self.exit_code == -signal.SIGKILL:
            return "it was stopped"
        return "its process ended"


@dataclass(eq=False)  # each worker is its own: compared and hashed by identity
class _Worker:
    process: multiprocessing.process.BaseProcess
    connection: Connection  # the server's end of the pipe

    async def exchange(self, request: bytes) -> bytes:
        """Send one request and wait, off the loop's thread, for its reply."""
        self.connection.send_bytes(request)
        await anyio.wait_readable(self.connection)
        return self.connection.recv_bytes()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()

    async def reap(self) -> int | None:
        """Wait for the process to end (after kill or EOF), close the pipe; the exit code."""
        await anyio.to_thread.run_sync(self.process.join, 5.0)
        self.connection.close()
        return self.process.exitcode


class ToolWorkers:
    """The pool of worker processes of one server process (its gateway's lifespan)."""

    def __init__(
        self, task_group: TaskGroup, *, size: int, modules: list[str], memory_mb: int
    ) -> None:
        self._task_group = task_group
        self._size = size
        self._modules = list(modules)
        self._memory_mb = memory_mb
        self._idle_send, self._idle = anyio.create_memory_object_stream[_Worker](size)
        self._all: set[_Worker] = set()
        self._closed = False

    async def _start_one(self) -> None:
        """Start a worker and put it in the idle pool once it has loaded the tools."""
        if self._closed:
            return
        ours, theirs = _context.Pipe(duplex=True)
        process = _context.Process(
            target=worker_process.worker_main,
            args=(theirs, self._modules, self._memory_mb),
            name="mcpbilling-tool-worker",
            daemon=True,
        )
        await anyio.to_thread.run_sync(process.start)
        theirs.close()
        worker = _Worker(process, ours)
        self._all.add(worker)
        try:
            await anyio.wait_readable(ours)
            ours.recv_bytes()  # "ready"
        except (EOFError, OSError):
            self._all.discard(worker)
            code = await worker.reap()
            logger.error("a tool worker failed to start (exit code %s)", code)
            return
        if self._closed:
            await self._retire(worker)
            return
        self._idle_send.send_nowait(worker)

    async def start(self) -> None:
        """Start every worker; returns when all are ready (or failed to start)."""
        async with anyio.create_task_group() as group:
            for _ in range(self._size):
                group.start_soon(self._start_one)

    async def _retire(self, worker: _Worker) -> int | None:
        worker.kill()
        self._all.discard(worker)
        return await worker.reap()

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` (whatever it is doing) and start another in its place."""
        worker.kill()

        async def replace() -> None:
            with anyio.CancelScope(shield=True):
                await self._retire(worker)
            await self._start_one()

        self._task_group.start_soon(replace)

    async def run(
        self, name: str, arguments: dict[str, Any], *, cpu_s: float
    ) -> types.CallToolResult:
        """Run the tool ``name`` with validated ``arguments`` in a worker.

        Cancellation (the caller's timeout, or the caller gone) kills the worker
        and propagates; a worker that ends mid-call gives an error result.
        """
        request = pydantic_core.to_json({"tool": name, "arguments": arguments, "cpu_s": cpu_s})
        worker = await self._idle.receive()
        try:
            reply = await worker.exchange(request)
        except (EOFError, OSError):
            self._all.discard(worker)
            stopped = WorkerStopped(await worker.reap())
            self._task_group.start_soon(self._start_one)
            logger.warning("tool %s: %s", name, stopped)
            return error_result(f"The tool {name} failed: {stopped.reason}.")
        except BaseException:
            self._replace(worker)
            raise
        self._idle_send.send_nowait(worker)
        return types.CallToolResult.model_validate_json(reply)

    async def close(self) -> None:
        """Stop every worker (calls still running in them are abandoned)."""
        self._closed = True
        for worker in list(self._all):
            await self._retire(worker)
        self._idle_send.close()


@asynccontextmanager
async def tool_workers(
    task_group: TaskGroup, *, size: int, modules: list[str], memory_mb: int
) -> AsyncIterator[ToolWorkers]:
    """A started pool of ``size`` workers serving the tools of ``modules``; stopped on exit."""
    workers = ToolWorkers(task_group, size=size, modules=modules, memory_mb=memory_mb)
    await workers.start()
    try:
        yield workers
    finally:
        with anyio.CancelScope(shield=True):
            await workers.close()
