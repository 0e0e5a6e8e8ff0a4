"""ORM work from the event loop: on worker threads, with connections tidied as a request would."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
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
    """Run ``fn`` on a worker thread; calls run in parallel (not serialised on one thread)."""
    return await sync_to_async(_tidied(fn), thread_sensitive=False)(*args, **kwargs)
