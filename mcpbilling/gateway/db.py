"""ORM work from the event loop: on worker threads, with connections tidied as a request would."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")


def connections_tidy() -> None:
    """Close this thread's connections that broke or outlived ``CONN_MAX_AGE``.

    What ``close_old_connections`` does at the end of a Django request, without
    re-arming ``CONN_HEALTH_CHECKS`` on healthy connections: a tool call makes
    several trips to a worker thread, and a ``SELECT 1`` before each would
    double the round trips of the hot path.
    """
    for connection in connections.all(initialized_only=True):
        expired = connection.close_at is not None and time.monotonic() >= connection.close_at
        if connection.errors_occurred or expired:
            connection.close_if_unusable_or_obsolete()


def _tidied(fn: Callable[P, R]) -> Callable[P, R]:
    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            connections_tidy()

    return run


async def run_db(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn`` on a thread of the event loop's executor, with the caller's context.

    Calls run in parallel, each thread with its own connections. What
    ``sync_to_async(thread_sensitive=False)`` does, without its machinery for
    thread-sensitive code and asgiref locals, which costs as much again as the
    hop itself (docs/benchmarks.md); nothing here is thread-sensitive. A
    cancelled caller stops waiting while ``fn`` finishes on its thread, so
    work that must be seen through (a hold, a settle) is awaited shielded.
    """
    call = functools.partial(contextvars.copy_context().run, _tidied(fn), *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(None, call)
