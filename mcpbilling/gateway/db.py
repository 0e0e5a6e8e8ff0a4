"""Database work from the event loop.

``run_db`` runs ORM work on worker threads, with connections tidied as a
request would. ``run_phase`` runs the charge engine's two phases of a call on
the loop itself, their query strings sent on the loop's own sessions;
``run_phase_grouped`` runs a settle so that the settles of calls finishing
together go to PostgreSQL as one string and one commit (group commit).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

import psycopg
from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DEFAULT_DB_ALIAS, connections
from greenlet import greenlet
from psycopg.adapt import Transformer
from psycopg.pq import ExecStatus, TransactionStatus

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

    __slots__ = ("_loader", "close_at", "raw", "state")

    def __init__(self, raw: psycopg.AsyncConnection, max_age: float | None) -> None:
        self.raw = raw
        self.state = rows.SessionState(raw)
        self.close_at = None if max_age is None else time.monotonic() + max_age
        self._loader = Transformer(raw)  # reads values as the session's cursors would

    def result_set(self, result: psycopg.pq.abc.PGresult) -> tuple[int, Sequence[tuple]]:
        """One statement's (row count, rows), as a cursor gives them; its error raised."""
        status = result.status
        if status == ExecStatus.TUPLES_OK:
            loader = self._loader
            loader.set_pgresult(result)
            return result.ntuples, loader.load_rows(0, result.ntuples, tuple)
        if status == ExecStatus.COMMAND_OK or status == ExecStatus.EMPTY_QUERY:
            count = result.command_tuples
            return (-1 if count is None else count), ()
        raise psycopg.errors.error_from_result(result, encoding=self.raw.info.encoding)

    def sound(self) -> bool:
        """Open, not broken, and younger than ``CONN_MAX_AGE``."""
        expired = self.close_at is not None and time.monotonic() >= self.close_at
        return not (expired or self.raw.closed or self.raw.broken)

    def reusable(self) -> bool:
        """Sound, and not left in a transaction."""
        return self.sound() and self.raw.info.transaction_status == TransactionStatus.IDLE


class LoopDatabase:
    """PostgreSQL sessions of the event loop, for the phases ``run_phase`` runs on it.

    Autocommit sessions with the driver's client-side binding, as Django's
    own, so the engine's query strings go unchanged. At most ``size`` are
    open; a phase waits for one when all are busy. A session that broke, was
    left in a transaction or outlived ``CONN_MAX_AGE`` is closed, not reused.
    """

    def __init__(self, *, size: int, group_commit: bool = True) -> None:
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(size)
        self.group_commit = group_commit
        self._shared: _Shared | None = None  # the session grouped phases use now
        self._sharing = asyncio.Lock()
        # Django's wrapper the phases see as ``connections["default"]``: for its
        # operations and value preparation only, it never connects (on the loop
        # Django refuses to). One for all: a new context would build one per phase.
        self.django = connections.create_connection(DEFAULT_DB_ALIAS)
        self.phases_on_loop = 0  # phases finished on the loop (the tests read these)
        self.phases_on_thread = 0  # phases that went to a worker thread instead
        self.grouped_strings = 0  # strings that carried grouped transactions
        self.grouped_transactions = 0  # the grouped transactions they carried
        self.groups_split = 0  # groups whose string failed, each then sent alone

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
            if connection.reusable():
                self._idle.append(connection)
            else:
                await connection.raw.close()
        finally:
            self._slots.release()

    async def share(self) -> _Shared:
        """The session grouped phases share now; ``unshare`` it when done with it.

        A shared session that broke or outlived ``CONN_MAX_AGE`` takes no new
        phases (under steady load it might never be left idle to be closed):
        they share a new one, and the old one closes when its last phase leaves.
        """
        shared = self._shared
        if shared is None or self._sharing.locked() or not shared.connection.sound():
            async with self._sharing:  # phases arriving while it connects share it too
                shared = self._shared
                if shared is None or not shared.connection.sound():
                    shared = self._shared = _Shared(self, await self.acquire())
        shared.users += 1
        return shared

    async def unshare(self, shared: _Shared) -> None:
        """Done with ``shared``: the last phase to leave it gives its connection back."""
        shared.users -= 1
        if shared.users == 0:
            if self._shared is shared:
                self._shared = None
            await self.release(shared.connection)

    def run_sync(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` here, on the loop, seeing the loop's Django wrapper as its connection
        (for value preparation: it never connects), as a phase on the loop does."""
        context = contextvars.copy_context()
        context.run(connections.__setitem__, DEFAULT_DB_ALIAS, self.django)
        return context.run(fn, *args, **kwargs)

    async def send_written(
        self, order: int, write: Callable[[rows.SessionState], bytes | None], statements: int
    ) -> rows.ResultSets | None:
        """Send one transaction's string, written by ``write`` for the session it goes
        on, grouped with the settles going then (``run_phase_grouped``); its result sets,
        or None when ``write`` wrote none. Errors are Django's, as a phase's are."""
        with self.django.wrap_database_errors:
            shared = await self.share()
        try:
            sql = write(shared.connection.state)
            return None if sql is None else await shared.send(sql, statements, order)
        finally:
            await self.unshare(shared)

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

    def run(self, sql: str | bytes, statements: int | None) -> rows.ResultSets:
        return greenlet.getcurrent().parent.switch(self._run(sql))

    async def connect(self) -> None:
        if self._connection is None:
            # Driver errors become Django's, as Django's own connect and cursors raise them.
            with self.database.django.wrap_database_errors:
                self._connection = await self.database.acquire()

    async def _run(self, sql: str | bytes) -> rows.ResultSets:
        await self.connect()
        return await _query(self.database, self._connection, sql)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self.database.release(connection)


async def _query(
    database: LoopDatabase, connection: _Connection, sql: str | bytes
) -> rows.ResultSets:
    """Send ``sql`` on ``connection``; each statement's (row count, rows), in order.

    Strings from several phases may share a connection: its lock sends one at
    a time. Errors are Django's, with psycopg's as ``__cause__``.
    """
    raw = connection.raw
    async with raw.lock:
        with database.django.wrap_database_errors:
            results = await _exchange(raw.pgconn, sql if isinstance(sql, bytes) else sql.encode())
            return [connection.result_set(result) for result in results]


async def _exchange(pgconn: psycopg.pq.abc.PGconn, sql: bytes) -> list[psycopg.pq.abc.PGresult]:
    """Send ``sql`` (simple query protocol) and wait for all its results, on libpq itself.

    What psycopg's cursor does around the same libpq calls (its statement
    cache, a timer per wait, result descriptions) cost 0.18 ms of CPU a settle
    (docs/benchmarks.md, VM 10). A failure of the connection raises psycopg's
    ``OperationalError`` and leaves libpq's status bad. Left waiting (cancelled),
    the session is still busy, so it is not reused (``_Connection.reusable``).
    """
    loop = asyncio.get_running_loop()
    socket = pgconn.socket
    pgconn.send_query(sql)
    while pgconn.flush():  # a long string the socket did not take at once
        await _ready(loop, socket, loop.add_writer, loop.remove_writer)
        pgconn.consume_input()
    results = []
    while True:
        while pgconn.is_busy():
            await _ready(loop, socket, loop.add_reader, loop.remove_reader)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            return results
        results.append(result)


async def _ready(loop: asyncio.AbstractEventLoop, socket: int, add, remove) -> None:
    """Until ``socket`` is ready as ``add`` (the loop's add_reader or add_writer) asks."""
    ready = loop.create_future()
    add(socket, ready.set_result, None)
    try:
        await ready
    finally:
        remove(socket)


# --- group commit (docs/decisions/0011) ---------------------------------------------

# Most transactions one grouped string carries: a group holds the row locks of all
# its transactions until its one commit, so it stays short.
GROUP_MAX = 32


class _Waiting:
    """A phase's whole transaction waiting to go with a group, and its answer."""

    __slots__ = ("answer", "order", "sql", "statements")

    def __init__(self, sql: bytes, statements: int, order: int) -> None:
        self.sql = sql
        self.statements = statements
        self.order = order
        self.answer: asyncio.Future[rows.ResultSets] = asyncio.get_running_loop().create_future()


class _Shared:
    """A session of the loop that grouped phases share, and what waits to go on it.

    A phase's transaction goes at once when nothing is in flight on the
    session; those that become ready while a string is in flight wait, and go
    next, together, as one string: PostgreSQL runs it as one implicit
    transaction, with one commit for all of them. In the string they go in
    the order of their ``order`` (the customer whose account each locks), so
    the groups of two server processes lock accounts in the same order and do
    not deadlock each other.
    """

    __slots__ = ("_database", "_sending", "_waiting", "connection", "users")

    def __init__(self, database: LoopDatabase, connection: _Connection) -> None:
        self._database = database
        self.connection = connection
        self.users = 0  # phases using the session (building or awaiting their string)
        self._waiting: list[_Waiting] = []
        self._sending: asyncio.Task | None = None

    async def send(self, sql: bytes, statements: int, order: int) -> rows.ResultSets:
        """Send a phase's whole transaction, with the others waiting then; its result sets."""
        waiting = _Waiting(sql, statements, order)
        self._waiting.append(waiting)
        if self._sending is None:
            self.users += 1  # the connection stays ours while strings are in flight
            self._sending = asyncio.ensure_future(self._send_waiting())
        return await waiting.answer

    async def _send_waiting(self) -> None:
        group: list[_Waiting] = []
        try:
            while self._waiting:
                group = sorted(self._waiting[:GROUP_MAX], key=lambda waiting: waiting.order)
                del self._waiting[:GROUP_MAX]
                await self._send_group(group)
        except BaseException:  # cancelled (the loop is closing): nothing more goes
            for waiting in [*group, *self._waiting]:
                waiting.answer.cancel()
            raise
        finally:
            self._sending = None
            await self._database.unshare(self)

    async def _send_group(self, group: list[_Waiting]) -> None:
        """One string for the group; if it fails, each transaction again on its own.

        A string that fails has had no effect: PostgreSQL rolled all of it back.
        (If the connection broke instead, whether it committed is unknown, as for
        any string; sent again on the broken connection, each fails at once.)
        Sent alone, each phase then gets the answer its own string gets: a
        refusal (a settle that lost a race) only the phase it concerns.
        """
        database = self._database
        if len(group) > 1:
            try:
                sets = await _query(database, self.connection, b"; ".join(w.sql for w in group))
            except Exception:  # each is sent again alone below
                database.groups_split += 1
            else:
                database.grouped_strings += 1
                database.grouped_transactions += len(group)
                start = 0
                for waiting in group:
                    _answer(waiting.answer, sets[start : start + waiting.statements])
                    start += waiting.statements
                return
        for waiting in group:
            try:
                sets = await _query(database, self.connection, waiting.sql)
            except Exception as exc:
                _answer(waiting.answer, exc)
            else:
                database.grouped_strings += 1
                database.grouped_transactions += 1
                _answer(waiting.answer, sets)


def _answer(answer: asyncio.Future, outcome: rows.ResultSets | Exception) -> None:
    if answer.done():  # its phase is gone (cancelled): nothing waits for the answer
        return
    if isinstance(outcome, Exception):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)


class _GroupedSession(_LoopSession):
    """``_LoopSession`` whose whole transaction goes on the shared session, grouped."""

    __slots__ = ("_shared", "order")

    def __init__(self, database: LoopDatabase, order: int) -> None:
        super().__init__(database)
        self.order = order
        self._shared: _Shared | None = None

    def run(self, sql: str | bytes, statements: int | None) -> rows.ResultSets:
        if statements is None:  # a PREPARE: alone, on the same session
            return super().run(sql, statements)
        return greenlet.getcurrent().parent.switch(self._send(sql, statements))

    async def _send(self, sql: bytes, statements: int) -> rows.ResultSets:
        await self.connect()
        return await self._shared.send(sql, statements, self.order)

    async def connect(self) -> None:
        if self._shared is None:
            with self.database.django.wrap_database_errors:
                self._shared = await self.database.share()
            self._connection = self._shared.connection

    async def close(self) -> None:
        shared, self._shared, self._connection = self._shared, None, None
        if shared is not None:
            await self.database.unshare(shared)


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
    session = None if database is None else _LoopSession(database)
    return await _run_phase(session, functools.partial(fn, *args, **kwargs))


async def run_phase_grouped(
    database: LoopDatabase | None,
    order: int,
    fn: Callable[P, R],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """``run_phase`` for a settle: its transaction goes with those of the calls that
    settle at the same moment, in one string and one commit (docs/decisions/0011).

    ``order`` is the customer whose account the transaction locks: a group's
    transactions go in that order. A group that fails is rolled back whole and
    each of its transactions is sent again alone, so a phase whose own string
    fails gets the error it would get without grouping.
    """
    session = None
    if database is not None:
        session = (
            _GroupedSession(database, order) if database.group_commit else _LoopSession(database)
        )
    return await _run_phase(session, functools.partial(fn, *args, **kwargs))


async def _run_phase(session: _LoopSession | None, phase: Callable[[], R]) -> R:
    if session is not None:
        database = session.database
        try:
            result = await _drive(session, phase)
        except (rows.NeedsThread, SynchronousOnlyOperation):
            if session.committed:  # a write went: running it again would repeat it
                raise
        else:
            database.phases_on_loop += 1
            return result
        finally:
            await session.close()
        database.phases_on_thread += 1
    return await run_db(phase)


@asynccontextmanager
async def loop_database() -> AsyncIterator[LoopDatabase | None]:
    """The loop's sessions for as long as the server runs, where they apply.

    PostgreSQL only (SQLite is an in-process library: nothing to await), and
    unless ``GATEWAY_DB_ON_LOOP`` is off; None means every phase uses ``run_db``.
    """
    if not settings.GATEWAY_DB_ON_LOOP or connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        yield None
        return
    database = LoopDatabase(
        size=settings.GATEWAY_DB_LOOP_SESSIONS, group_commit=settings.GATEWAY_GROUP_COMMIT
    )
    try:
        yield database
    finally:
        await database.aclose()
