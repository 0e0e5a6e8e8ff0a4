"""Statements of the charge engine's hot path, without the ORM's per-statement work.

Each tool call writes a handful of rows. Through ``Model.objects.create`` and
``QuerySet.update`` every statement is compiled again, which costs several
times the database's own work (docs/benchmarks.md). Here an INSERT's SQL is
built once per model from its fields and reused; values still go through each
field's own preparation, so what is stored is what ``save()`` would store.
The SQL is plain enough for both PostgreSQL and SQLite (3.35+ for RETURNING).

Inside ``batch()`` statements are not sent one by one: on PostgreSQL they
wait until a result is first read (a ``Result``), an ORM statement runs or the
batch ends, and then go together as one query string, so a transaction's
writes cost one round trip and one parse of parameters instead of one each.
Read results after queueing every statement that does not depend on them. On
SQLite, an in-process library, every statement runs at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


class Result:
    """What one statement changed and returned; reading it sends its batch first."""

    __slots__ = ("_batch", "_rowcount", "_rows")

    def __init__(self, batch: _Batch | None = None) -> None:
        self._batch = batch  # set while the statement waits in a batch
        self._rowcount = 0
        self._rows: Sequence[tuple] = ()

    def _take(self, cursor) -> None:
        self._batch = None
        self._rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if cursor.description else ()

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


class _Batch:
    """Statements waiting to be sent as one query string (PostgreSQL's simple protocol)."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting: list[tuple[str, Sequence[Any], Result]] = []

    def send(self) -> None:
        """Send the waiting statements in one round trip and hand each its result."""
        waiting, self.waiting = self.waiting, []
        if not waiting:
            return
        sql = "; ".join(statement for statement, _, _ in waiting)
        params = [value for _, values, _ in waiting for value in values]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for position, (_, _, result) in enumerate(waiting):
                if position:
                    cursor.nextset()
                result._take(cursor)


_local = threading.local()  # .batch: this thread's open _Batch, or None


def execute(sql: str, params: Sequence[Any]) -> Result:
    """Run one hand-written statement, or in a batch queue it to be sent with the others."""
    open_batch = getattr(_local, "batch", None)
    if open_batch is not None:
        result = Result(open_batch)
        open_batch.waiting.append((sql, params, result))
        return result
    result = Result()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        result._take(cursor)
    return result


def _send_batch_first(execute_, sql, params, many, context):
    """Statements queued before this one (an ORM one, or the batch itself) go first."""
    open_batch = getattr(_local, "batch", None)
    if open_batch is not None and open_batch.waiting:
        open_batch.send()
    return execute_(sql, params, many, context)


@contextmanager
def batch() -> Iterator[None]:
    """Send the statements run inside in as few round trips as their results allow.

    Use it inside ``transaction.atomic()``: a check that fails after reading a
    ``Result`` raises, and the transaction rolls every statement back.
    """
    if connection.vendor != "postgresql" or getattr(_local, "batch", None) is not None:
        yield
        return
    _local.batch = _Batch()
    try:
        with connection.execute_wrapper(_send_batch_first):
            yield
            _local.batch.send()
    finally:
        _local.batch = None


def db_value(model: type[models.Model], field_name: str, value: Any) -> Any:
    """``value`` as the ORM would pass it for ``model.field_name`` (dates on SQLite are text)."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


def commit_unflushed() -> None:
    """Let this transaction's COMMIT return before its WAL is on disk (PostgreSQL only).

    For authorisations only (docs/decisions/0006): a crash of the database may
    lose the last ones, as if they had been rolled back. Queued in the batch.
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

    A primary key the database makes is read at once, so such an insert waits
    for its batch; one made in Python (a uuid) stays queued.
    """
    sql, fields, db_made_pk = _insert_plan(type(obj))
    result = execute(sql, field_values(obj, fields))
    if db_made_pk:
        obj.pk = result.row()[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj
