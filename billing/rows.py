"""Statements of the charge engine's hot path, without the ORM's per-statement work.

Each tool call writes a handful of rows. Through ``Model.objects.create`` and
``QuerySet.update`` every statement is compiled again, which costs several
times the database's own work (docs/benchmarks.md). Here an INSERT's SQL is
built once per model from its fields and reused; values still go through each
field's own preparation, so what is stored is what ``save()`` would store.
The SQL is plain enough for both PostgreSQL and SQLite (3.35+ for RETURNING).

``atomic()`` is the engine's transaction (docs/decisions/0007). On
PostgreSQL its statements are not sent one by one: they wait until a result
is first read (a ``Result``), an ORM statement runs or the block ends. When
nothing is read before the end, they go then as one query string, which
PostgreSQL runs as one implicit transaction: all of it or none, with no BEGIN
or COMMIT of its own to wait for. A condition the transaction depends on is a
*required* statement (``execute(..., required=error)``): PostgreSQL raises if
it returns no row, so a refusal rolls back what was sent with it, and
``error`` reaches the caller. Reading a result first opens a transaction as
``transaction.atomic()`` does and sends what is queued. SQLite, an
in-process library, runs each statement at once inside ``transaction.atomic()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import cache
from typing import Any, TypeVar

from django.db import DatabaseError, connection, models, transaction

M = TypeVar("M", bound=models.Model)

# What the PostgreSQL function ``mcpb_require`` (migration billing 0005) raises.
REQUIRED_MESSAGE = "mcpb_required"


class Result:
    """What one statement changed and returned; reading it sends its batch first."""

    __slots__ = ("_batch", "_rowcount", "_rows", "_then")

    def __init__(self, batch: _Batch | None = None) -> None:
        self._batch = batch  # set while the statement waits in a batch
        self._rowcount = 0
        self._rows: Sequence[tuple] = ()
        self._then: Callable[[Result], None] | None = None

    def _take(self, cursor) -> None:
        self._batch = None
        self._rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if cursor.description else ()
        if self._then is not None:
            self._then(self)

    def _wait(self) -> None:
        if self._batch is not None:
            self._batch.send()

    @property
    def rowcount(self) -> int:
        self._wait()
        return self._rowcount

    def row(self) -> tuple | None:
        """The first row it returned, or None."""
        self._wait()
        return self._rows[0] if self._rows else None

    def then(self, fn: Callable[[Result], None]) -> None:
        """Call ``fn(self)`` once the statement has run, without sending its batch for it."""
        if self._batch is None:
            fn(self)
        else:
            self._then = fn


class _Statement:
    __slots__ = ("params", "required", "result", "sql")

    def __init__(self, sql: str, params: Sequence[Any], required, result: Result) -> None:
        self.sql, self.params, self.required, self.result = sql, params, required, result


class _Batch:
    """Statements waiting to be sent as one query string (PostgreSQL's simple protocol).

    ``begin`` opens the transaction the first time statements must go before
    the end; until then, none is open and the end sends everything at once.
    """

    __slots__ = ("begin", "sending", "waiting")

    def __init__(self, begin: Callable[[], None] | None = None) -> None:
        self.waiting: list[_Statement] = []
        self.begin = begin
        self.sending = False

    def queue(self, sql: str, params: Sequence[Any], required: BaseException | None) -> Result:
        result = Result(self)
        if required is not None:
            # The statement's rows, after a check PostgreSQL makes whatever they are:
            # the outer join keeps the check's one row even when there are none.
            sql = (
                f"WITH required AS ({sql}) SELECT required.* FROM "  # noqa: S608
                "(SELECT mcpb_require(EXISTS (SELECT FROM required), %s)) AS checked "
                "LEFT JOIN required ON true"
            )
            params = [*params, str(len(self.waiting))]
        self.waiting.append(_Statement(sql, params, required, result))
        return result

    def send(self) -> None:
        """A result is wanted now: open the transaction if it is still to open, send the queue."""
        if self.begin is not None:
            begin, self.begin = self.begin, None
            begin()
        self._send()

    def before_statement(self) -> None:
        """Another statement is about to run: what is queued goes first (not our own send)."""
        if not self.sending:
            self.send()

    def end(self) -> None:
        """Send what is left; with no transaction opened, as one implicit transaction."""
        self.begin = None
        self._send()

    def _send(self) -> None:
        """Send the waiting statements in one round trip and hand each its result."""
        waiting, self.waiting = self.waiting, []
        if not waiting:
            return
        sql = "; ".join(statement.sql for statement in waiting)
        params = [value for statement in waiting for value in statement.params]
        self.sending = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                for position, statement in enumerate(waiting):
                    if position:
                        cursor.nextset()
                    statement.result._take(cursor)
        except DatabaseError as exc:
            refusal = _required_refusal(exc, waiting)
            if refusal is None:
                raise
            connection.errors_occurred = False  # a raised check leaves the connection sound
            raise refusal from None
        finally:
            self.sending = False


def _required_refusal(exc: DatabaseError, waiting: list[_Statement]) -> BaseException | None:
    """The error of the required statement whose check ``exc`` is, if it is one."""
    diag = getattr(exc.__cause__, "diag", None)
    if diag is None or diag.message_primary != REQUIRED_MESSAGE:
        return None
    return waiting[int(diag.message_detail)].required


_local = threading.local()  # .batch: this thread's open _Batch, or None


def execute(sql: str, params: Sequence[Any], *, required: BaseException | None = None) -> Result:
    """Run one hand-written statement, or in a batch queue it to be sent with the others.

    With ``required``, the statement (a SELECT, or a write with RETURNING) must
    return a row, else ``required`` is raised and, inside ``atomic()``, all
    the transaction's statements roll back.
    """
    open_batch = getattr(_local, "batch", None)
    if open_batch is not None:
        return open_batch.queue(sql, params, required)
    result = Result()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        result._take(cursor)
    if required is not None and not result._rows:
        raise required
    return result


def _send_batch_first(execute_, sql, params, many, context):
    """Statements queued before this one (an ORM one, or the batch itself) go first."""
    open_batch = getattr(_local, "batch", None)
    if open_batch is not None:
        open_batch.before_statement()
    return execute_(sql, params, many, context)


@contextmanager
def _batched(begin: Callable[[], None] | None = None) -> Iterator[_Batch]:
    _local.batch = _Batch(begin)
    try:
        with connection.execute_wrapper(_send_batch_first):
            yield _local.batch
    finally:
        _local.batch = None


@contextmanager
def batch() -> Iterator[None]:
    """Inside an open transaction, send the statements run inside in as few round trips
    as their results allow (on PostgreSQL; elsewhere each runs at once).
    """
    if connection.vendor != "postgresql" or getattr(_local, "batch", None) is not None:
        yield
        return
    with _batched() as queued:
        yield
        queued.send()


@contextmanager
def atomic() -> Iterator[None]:
    """One transaction whose statements go in as few round trips as their results allow.

    Inside another transaction it is a savepoint, as ``transaction.atomic()``
    is, and statements are batched the same way.
    """
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or getattr(_local, "batch", None) is not None
    ):
        with transaction.atomic(), batch():
            yield
        return
    with ExitStack() as opened, _batched(lambda: opened.enter_context(transaction.atomic())) as q:
        yield
        q.end()


def db_value(model: type[models.Model], field_name: str, value: Any) -> Any:
    """``value`` as the ORM would pass it for ``model.field_name`` (dates on SQLite are text)."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


def commit_unflushed() -> None:
    """Let this transaction's COMMIT return before its WAL is on disk (PostgreSQL only).

    For authorisations only (docs/decisions/0006): a crash of the database may
    lose the last ones, as if they had been rolled back. Queued in the batch;
    it applies to an implicit transaction (one query string) too.
    """
    if connection.vendor == "postgresql":
        execute("SET LOCAL synchronous_commit = off", ())


@cache
def _insert_plan(model: type[models.Model]) -> tuple[str, tuple[models.Field, ...], bool]:
    """(SQL, the fields in its column order, whether the database makes the primary key)."""
    meta = model._meta
    db_made_pk = isinstance(meta.pk, models.AutoField)  # Big and Small auto fields subclass it
    fields = tuple(f for f in meta.concrete_fields if not (db_made_pk and f.primary_key))
    quote = connection.ops.quote_name
    # Names come from the model, never from input; values are parameters.
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        quote(meta.db_table),
        ", ".join(quote(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    if db_made_pk:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields, db_made_pk


def field_values(obj: models.Model, fields: tuple[models.Field, ...]) -> list:
    """The values ``save()`` would write for ``fields`` of a new ``obj``."""
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def row_insert(obj: M) -> M:
    """INSERT ``obj`` as ``obj.save()`` would for a new row (``auto_now_add`` included).

    In a batch the insert stays queued; a primary key the database makes is
    set on ``obj`` once the batch is sent (one made in Python is there at once).
    """
    sql, fields, db_made_pk = _insert_plan(type(obj))
    result = execute(sql, field_values(obj, fields))
    if db_made_pk:
        result.then(lambda inserted: setattr(obj, "pk", inserted.row()[0]))
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj
