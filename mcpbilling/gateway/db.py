"""Database work from the event loop.

``run_db`` runs ORM work on worker threads, with connections tidied as a
request would. ``run_phase`` runs the charge engine's two phases of a call on
the loop itself, their query strings sent on the loop's own sessions.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import psycopg
from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DEFAULT_DB_ALIAS, connections
from greenlet import greenlet
from psycopg.pq import TransactionStatus

from billing import rows

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


# --- the hot phases on the event loop (docs/decisions/0009) ----------------------


class _Connection:
    """One of the loop's PostgreSQL sessions and what it keeps for the batches."""

    __slots__ = ("close_at", "raw", "state")

    def __init__(self, raw: psycopg.AsyncConnection, max_age: float | None) -> None:
        self.raw = raw
        self.state = rows.SessionState(raw)
        self.close_at = None if max_age is None else time.monotonic() + max_age


class LoopDatabase:
    """PostgreSQL sessions of the event loop, for the phases ``run_phase`` runs on it.

    Autocommit sessions with the driver's client-side binding, as Django's
    own, so the engine's query strings go unchanged. At most ``size`` are
    open; a phase waits for one when all are busy. A session that broke, was
    left in a transaction or outlived ``CONN_MAX_AGE`` is closed, not reused.
    """

    def __init__(self, *, size: int) -> None:
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(size)
        # Django's wrapper the phases see as ``connections["default"]``: for its
        # operations and value preparation only, it never connects (on the loop
        # Django refuses to). One for all: a new context would build one per phase.
        self.django = connections.create_connection(DEFAULT_DB_ALIAS)
        self.phases_on_loop = 0  # phases finished on the loop (the tests read these)
        self.phases_on_thread = 0  # phases that went to a worker thread instead

    async def _connect(self) -> _Connection:
        db = self.django
        params = {**db.get_connection_params(), "autocommit": True}
        params["cursor_factory"] = psycopg.AsyncClientCursor
        raw = await psycopg.AsyncConnection.connect(**params)
        # Django sets the session's time zone the same way (DatabaseWrapper.ensure_timezone).
        await raw.execute("SELECT set_config('TimeZone', %s, false)", [db.timezone_name])
        return _Connection(raw, db.settings_dict["CONN_MAX_AGE"])

    async def acquire(self) -> _Connection:
        await self._slots.acquire()
        try:
            return self._idle.pop() if self._idle else await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: _Connection) -> None:
        try:
            raw = connection.raw
            expired = connection.close_at is not None and time.monotonic() >= connection.close_at
            if expired or raw.closed or raw.info.transaction_status != TransactionStatus.IDLE:
                await raw.close()
            else:
                self._idle.append(connection)
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.raw.close()


class _LoopSession:
    """``billing.rows.LoopSession`` for one phase: its string goes out from the loop.

    ``run`` is called inside the phase's greenlet; it hands the query to the
    loop (the greenlet's parent), which awaits it and switches back with the
    result sets or the error.
    """

    __slots__ = ("_connection", "committed", "database")

    def __init__(self, database: LoopDatabase) -> None:
        self.database = database
        self._connection: _Connection | None = None
        self.committed = False

    @property
    def state(self) -> rows.SessionState:
        if self._connection is None:  # asked just before the first string goes
            greenlet.getcurrent().parent.switch(self.connect())
        return self._connection.state

    def run(self, sql: str, params: Sequence[Any] | None) -> rows.ResultSets:
        return greenlet.getcurrent().parent.switch(self._run(sql, params))

    async def connect(self) -> None:
        if self._connection is None:
            # Driver errors become Django's, as Django's own connect and cursors raise them.
            with self.database.django.wrap_database_errors:
                self._connection = await self.database.acquire()

    async def _run(self, sql: str, params: Sequence[Any] | None) -> rows.ResultSets:
        await self.connect()
        cursor = self._connection.raw.cursor()
        try:
            with self.database.django.wrap_database_errors:
                await cursor.execute(sql, params)
                sets = []
                while True:
                    fetched = await cursor.fetchall() if cursor.description else ()
                    sets.append((cursor.rowcount, fetched))
                    if not cursor.nextset():
                        return sets
        finally:
            await cursor.close()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self.database.release(connection)


async def _drive(session: _LoopSession, fn: Callable[[], R]) -> R:
    """Run ``fn`` in a greenlet on this thread, awaiting each query it hands over."""
    phase = greenlet(fn)
    phase.gr_context = context = contextvars.copy_context()
    context.run(rows.loop_session.set, session)
    context.run(connections.__setitem__, DEFAULT_DB_ALIAS, session.database.django)
    step = phase.switch()
    while not phase.dead:
        try:
            value = await step
        except BaseException as exc:  # the phase sees the error where it sent the query
            step = phase.throw(exc)
        else:
            step = phase.switch(value)
    return step


async def run_phase(
    database: LoopDatabase | None, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run a phase of the charge engine on the event loop, or on a worker thread.

    On the loop (with ``database``) the phase's Python runs as it would on a
    thread, and its one query string is awaited on a loop session: no thread
    hop, no transaction machinery of Django's. A phase that needs Django's
    connection (a read before the end, an ORM query: the uncommon paths)
    stops before anything of it is sent and runs again with ``run_db``.
    """
    if database is not None:
        session = _LoopSession(database)
        try:
            result = await _drive(session, functools.partial(fn, *args, **kwargs))
        except (rows.NeedsThread, SynchronousOnlyOperation):
            if session.committed:  # a write went: running it again would repeat it
                raise
        else:
            database.phases_on_loop += 1
            return result
        finally:
            await session.close()
        database.phases_on_thread += 1
    return await run_db(fn, *args, **kwargs)


@asynccontextmanager
async def loop_database() -> AsyncIterator[LoopDatabase | None]:
    """The loop's sessions for as long as the server runs, where they apply.

    PostgreSQL only (SQLite is an in-process library: nothing to await), and
    unless ``GATEWAY_DB_ON_LOOP`` is off; None means every phase uses ``run_db``.
    """
    if not settings.GATEWAY_DB_ON_LOOP or connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        yield None
        return
    database = LoopDatabase(size=settings.GATEWAY_DB_LOOP_SESSIONS)
    try:
        yield database
    finally:
        await database.aclose()
