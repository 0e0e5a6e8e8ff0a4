"""Statements of the charge engine's hot path, without the ORM's per-statement work.

Each tool call writes a handful of rows. Through ``Model.objects.create`` and
``QuerySet.update`` every statement is compiled again, which costs several
times the database's own work (docs/benchmarks.md). Here an INSERT's SQL is
built once per model from its fields and reused; values still go through each
field's own preparation, so what is stored is what ``save()`` would store.
The SQL is plain enough for both PostgreSQL and SQLite (3.35+ for RETURNING).

``atomic()`` is the engine's transaction (docs/decisions/0007): a
``transaction.atomic()`` block whose statements, on PostgreSQL, are not sent
one by one: they wait until a result is first read (a ``Result``), an ORM
statement runs or the block ends. psycopg opens the database transaction only
with the first statement it sends, so when nothing is read before the end the
statements go then as one query string with autocommit on, which PostgreSQL
runs as one implicit transaction: all of it or none, with no BEGIN or COMMIT
of its own to wait for. A condition the transaction depends on is a
*required* statement (``execute(..., required=error)``): PostgreSQL raises if
it returns no row, so a refusal rolls back what was sent with it, and
``error`` reaches the caller. Reading a result first sends what is queued
inside an ordinary transaction. SQLite, an in-process library, runs each
statement at once inside ``transaction.atomic()``.

On PostgreSQL each session prepares a statement the first time it sends it,
and the string carries ``EXECUTE name(values)`` (docs/decisions/0008): the
database no longer parses and plans the same statements on every call.

The gateway runs a call's two phases on its event loop (docs/decisions/0009):
there ``loop_session`` is set, ``atomic()`` only queues, and the block's end
hands the string to that session, which sends it as one implicit transaction
without blocking the loop. Anything else that would talk to the database
there (a result read before the end, a savepoint, an ORM query) raises
``NeedsThread`` or Django's ``SynchronousOnlyOperation`` before anything of
the block is sent, and the gateway runs the phase again on a worker thread.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, NamedTuple, Protocol, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, transaction
from psycopg.adapt import Transformer
from psycopg.pq import Trace, TransactionStatus

M = TypeVar("M", bound=models.Model)
logger = logging.getLogger(__name__)


def _db():
    """This thread's connection: ``django.db.connection`` looks it up again on every
    attribute read, which costs more than most of what the hot path does with it.
    Inside a batch, the one the batch looked up when it opened (the lookup goes
    through asgiref's context-local storage, a few microseconds each time)."""
    open_batch = _open_batch.get()
    return connections[DEFAULT_DB_ALIAS] if open_batch is None else open_batch.db


# What the PostgreSQL function ``mcpb_require`` (migration billing 0005) raises.
REQUIRED_MESSAGE = "mcpb_required"

# Each statement's (rowcount, rows), in the order the query string ran them.
ResultSets = list[tuple[int, Sequence[tuple]]]


class SessionState:
    """What a PostgreSQL session keeps for the batches: its prepared statements, and
    how values are written into a query string as that connection's literals."""

    __slots__ = ("literal", "prepared", "written")

    def __init__(self, connection) -> None:
        self.prepared: dict[str, str | None] = {}  # SQL -> name (None: not preparable)
        self.literal = _literal_writer(connection)
        # id of statements -> (them, their text with fixed values in, its slots in order)
        self.written: dict[int, tuple[tuple[Statement, ...], bytes, tuple[Slot, ...]]] = {}


def _literal_writer(connection) -> Callable[[Any], bytes]:
    """``value`` as ``connection``'s literal, exactly as psycopg writes it.

    The values of the hot path's rows (integers, booleans, text, aware
    datetimes, UUIDs, None) are written here directly, as psycopg's own
    dumpers write them (tests/billing/test_rows.py compares the two); psycopg
    looks up a dumper and quotes through libpq for each, several times the
    cost. Text with a backslash or NUL, naive datetimes, any other type and
    any session not in UTF-8 go to psycopg.
    """
    literal = Transformer.from_context(connection).as_literal
    if connection.info.encoding != "utf-8":
        return lambda value: b"NULL" if value is None else literal(value)

    def write(value: Any) -> bytes:
        kind = type(value)
        if kind is int:  # a space keeps "- -1" from reading as a comment, as psycopg does
            return str(value).encode() if value >= 0 else b" %d" % value
        if kind is str:
            if "\\" in value or "\0" in value:
                return literal(value)
            return b"'" + value.replace("'", "''").encode() + b"'"
        if value is None:
            return b"NULL"
        if kind is bool:
            return b"true" if value else b"false"
        if kind is datetime and value.tzinfo is not None:
            return b"'" + str(value).encode() + b"'::timestamptz"
        if kind is uuid.UUID:
            return b"'" + value.hex.encode() + b"'::uuid"
        return literal(value)

    return write


class LoopSession(Protocol):
    """A PostgreSQL session of the event loop that a phase sends its string through."""

    committed: bool  # a string it sent has committed: the phase can no longer start again

    @property
    def state(self) -> SessionState:
        """The state of the session the phase's strings go to."""

    def run(self, sql: str | bytes, statements: int | None) -> ResultSets:
        """Send ``sql`` with autocommit on (one implicit transaction) and wait for it.

        ``statements`` is how many statements the string of a whole transaction
        holds (a phase's block), None for a string of another kind (a PREPARE).
        Errors are Django's database errors, with the driver's as ``__cause__``.
        """


class NeedsThread(Exception):
    """The phase needs Django's connection: run it again on a worker thread.

    Raised before anything of its transaction was sent.
    """


# Set while the gateway runs a phase on its event loop (mcpbilling/gateway/db.py).
loop_session: ContextVar[LoopSession | None] = ContextVar("mcpb_loop_session", default=None)


class Result:
    """What one statement changed and returned; reading it sends its batch first."""

    __slots__ = ("_batch", "_ran", "_rowcount", "_rows", "_then")

    def __init__(self, batch: _Batch | None = None) -> None:
        self._batch = batch  # set while the statement waits in a batch
        self._ran = False
        self._rowcount = 0
        self._rows: Sequence[tuple] = ()
        self._then: Callable[[Result], None] | None = None

    def _take(self, rowcount: int, rows: Sequence[tuple]) -> None:
        self._batch = None
        self._ran = True
        self._rowcount, self._rows = rowcount, rows
        if self._then is not None:
            self._then(self)

    @property
    def ran(self) -> bool:
        """Whether the statement ran without error, even if a required statement after it
        refused and rolled its transaction back. Never sends its batch."""
        return self._ran

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

    def rows(self) -> Sequence[tuple]:
        """Every row it returned."""
        self._wait()
        return self._rows

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

    With a ``session`` (a phase on the event loop) the string goes only at the
    block's end, through that session.
    """

    __slots__ = ("db", "sending", "session", "waiting")

    def __init__(self, session: LoopSession | None = None) -> None:
        self.waiting: list[_Statement] = []
        self.sending = False
        self.session = session
        self.db = connections[DEFAULT_DB_ALIAS]  # Django's wrapper, for _db()

    def queue(self, sql: str, params: Sequence[Any], required: BaseException | None) -> Result:
        result = Result(self)
        if required is not None:
            sql, params = _required(sql, params, len(self.waiting))
        self.waiting.append(_Statement(sql, params, required, result))
        return result

    def before_statement(self) -> None:
        """Another statement is about to run: what is queued goes first (not our own send)."""
        if not self.sending:
            self.send()

    def end(self) -> None:
        """Send what is left of the outermost block's queue.

        When nothing has been sent in the transaction yet, psycopg has not
        opened it either (it sends BEGIN with the first statement): the string
        then goes with autocommit on, as one implicit transaction, and the
        COMMIT Django sends next is nothing to psycopg on an idle connection.
        """
        if not self.waiting:
            return
        if self.session is not None:
            self._send()
            self.session.committed = True
            return
        db = _db()
        if db.needs_rollback:  # Django rolls the block back: nothing of it may go
            self.waiting = []
            return
        db.ensure_connection()
        raw = db.connection
        if raw.info.transaction_status != TransactionStatus.IDLE:
            self._send()
            return
        raw.autocommit = True
        try:
            self._send()
        finally:
            raw.autocommit = False

    def send(self) -> None:
        """Send what waits now, inside the open transaction, and hand each its result."""
        if self.session is not None:  # its transaction is the string sent at the end
            raise NeedsThread("a result is read before the end of the transaction")
        self._send()

    def _send(self) -> None:
        waiting, self.waiting = self.waiting, []
        if not waiting:
            return
        self.sending = True
        session = self.session
        try:
            results = _run(session, _batch_text(session, waiting), len(waiting))
            for statement, (rowcount, rows) in zip(waiting, results, strict=True):
                statement.result._take(rowcount, rows)
        except DatabaseError as exc:
            refused = _required_refused(exc)
            if refused is None:
                raise
            for statement in waiting[:refused]:
                statement.result._ran = True
            _sound(session)  # a raised check leaves the connection sound
            raise waiting[refused].required from None
        finally:
            self.sending = False


def _run(
    session: LoopSession | None, sql: str | bytes, statements: int | None = None
) -> ResultSets:
    """Send ``sql`` through ``session``, or this thread's Django connection without one.

    ``statements``: see ``LoopSession.run`` (a loop session sends only whole
    transactions, so a batch's string through it always is one).
    """
    if session is not None:
        return session.run(sql, statements)
    with _db().cursor() as cursor:
        cursor.execute(sql)
        results = cursor.cursor  # psycopg's own: reading results raises nothing
        sets = []
        while True:
            sets.append((results.rowcount, results.fetchall() if results.description else ()))
            if not results.nextset():
                return sets


def _sound(session: LoopSession | None) -> None:
    """After an error handled here: Django need not check the connection before reuse."""
    if session is None:
        _db().errors_occurred = False


def refused(exc: DatabaseError) -> bool:
    """Whether ``exc`` is a required statement's refusal (its whole transaction undone)."""
    return _required_refused(exc) is not None


def _required_refused(exc: DatabaseError) -> int | None:
    """The position in its batch of the required statement whose check ``exc`` is, if any."""
    diag = getattr(exc.__cause__, "diag", None)
    if diag is None or diag.message_primary != REQUIRED_MESSAGE:
        return None
    return int(diag.message_detail)


def _required(sql: str, params: Sequence[Any], position: int) -> tuple[str, list[Any]]:
    """``sql`` and ``params`` as a required statement at ``position`` in its transaction:
    its rows, after a check PostgreSQL makes whatever they are (the outer join keeps the
    check's one row even when there are none). A refusal names the position
    (``_required_refused``)."""
    return _required_sql(sql), [*params, str(position)]


@lru_cache(maxsize=256)
def _required_sql(sql: str) -> str:
    return (
        f"WITH required AS ({sql}) SELECT required.* FROM "  # noqa: S608
        "(SELECT mcpb_require(EXISTS (SELECT FROM required), %s)) AS checked "
        "LEFT JOIN required ON true"
    )


# The block's open _Batch, or None (a context variable: phases on one event loop
# thread each have their own).
_open_batch: ContextVar[_Batch | None] = ContextVar("mcpb_open_batch", default=None)

# --- prepared statements (PostgreSQL) ---------------------------------------------
# Parsing and planning the engine's statements cost the database more than running
# them (docs/benchmarks.md). Each database session prepares each statement once
# (SQL's PREPARE, so they still travel in one query string) and a batch sends
# ``EXECUTE name(values)``. Prepared only while no transaction is open, in a round
# trip of its own, so a statement PostgreSQL cannot prepare (it cannot tell a
# parameter's type) is only left unprepared. A PREPARE in a failed transaction is
# rolled back with it, which is why none travels in a batch.
_PREPARABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
_PREPARED_PER_SESSION = 256  # statements built from input never exhaust the session
_DUPLICATE_PREPARED_STATEMENT = "42P05"


def _session_state(db) -> SessionState:
    """The state of this thread's session (a new session starts with none prepared)."""
    db.ensure_connection()
    raw = db.connection
    session = getattr(db, "_mcpb_session", None)
    if session is None or session[0] is not raw:
        session = db._mcpb_session = (raw, SessionState(raw))
    return session[1]


def _numbered(sql: str) -> str:
    """``%s`` placeholders as PostgreSQL's ``$1 .. $n``, ``%%`` as ``%``."""
    counter = itertools.count(1)
    return re.sub(r"%[s%]", lambda m: "%" if m[0] == "%%" else f"${next(counter)}", sql)


def _prepare(session: LoopSession | None, sql: str) -> str | None:
    """Prepare ``sql`` in the session (no transaction open); its name, or None."""
    name = "mcpb_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()
    try:
        _run(session, f"PREPARE {name} AS {_numbered(sql)}")
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != _DUPLICATE_PREPARED_STATEMENT:
            _sound(session)  # the session is sound: only PREPARE failed
            logger.warning("statement left unprepared (%s): %s", exc, sql)
            return None
    return name


@lru_cache(maxsize=1024)
def _format(template: str) -> bytes:
    """``template`` as a bytes format: each ``%s`` placeholder a ``%b``, ``%%`` a ``%%``
    (bytes' own escape), any other ``%`` escaped."""
    return re.sub(r"%%|%s|%", lambda m: {"%%": "%%", "%s": "%b"}.get(m[0], "%%"), template).encode()


@lru_cache(maxsize=1024)
def _execute_template(name: str, values: int) -> str:
    return f"EXECUTE {name}({', '.join(['%s'] * values)})" if values else f"EXECUTE {name}"


def _batch_text(session: LoopSession | None, waiting: list[_Statement]) -> bytes:
    """The batch as one query string, each value written in as the session's literal.

    Each statement is ``EXECUTE`` of its prepared form where there is one.
    Written here rather than by the driver, which would parse the whole
    string again on every call (it caches only short ones).
    """
    state = _session_state(_db()) if session is None else session.state
    literal = state.literal
    return b"; ".join(
        [
            _format(template) % tuple(map(literal, statement.params))
            for statement, template in zip(
                waiting, _templates(session, state, waiting), strict=True
            )
        ]
    )


def _templates(
    session: LoopSession | None, state: SessionState, waiting: list[_Statement]
) -> Iterator[str]:
    """Each statement's text with placeholders: ``EXECUTE`` of its prepared form, or its SQL.

    A loop session sends only whole transactions, so it is idle whenever a
    batch is about to go.
    """
    if not settings.DATABASE_PREPARED_STATEMENTS:
        yield from (statement.sql for statement in waiting)
        return
    prepared = state.prepared
    if session is None:
        raw = _db().connection
        may_prepare = raw.autocommit and raw.info.transaction_status == TransactionStatus.IDLE
    else:
        may_prepare = True
    for statement in waiting:
        sql = statement.sql
        if (
            sql not in prepared
            and may_prepare
            and sql.startswith(_PREPARABLE)
            and len(prepared) < _PREPARED_PER_SESSION
        ):
            prepared[sql] = _prepare(session, sql)
        name = prepared.get(sql)
        yield sql if name is None else _execute_template(name, len(statement.params))


# --- statements written ahead ----------------------------------------------------------
# A transaction that many calls repeat with a few values changed (the capture of a
# spare hold, docs/decisions/0012) is written once as ``Statement``s whose changing
# values are ``Slot``s, then filled for each call: run in a batch as any statements
# (``execute_filled``), or written straight into a loop session's string
# (``transaction_text``).


class Slot:
    """A value a ``Statement`` leaves open until it is filled."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


class Statement(NamedTuple):
    """One statement written ahead: its values as the database takes them, or ``Slot``s."""

    sql: str
    params: tuple[Any, ...]
    required: BaseException | None = None

    def filled(self, values: Mapping[Slot, Any]) -> list[Any]:
        return [values[value] if type(value) is Slot else value for value in self.params]


def execute_filled(statements: Sequence[Statement], values: Mapping[Slot, Any]) -> list[Result]:
    """``execute`` each statement, its slots filled from ``values`` (database values)."""
    return [execute(s.sql, s.filled(values), required=s.required) for s in statements]


def transaction_text(
    state: SessionState, statements: tuple[Statement, ...], values: Mapping[Slot, Any]
) -> bytes | None:
    """The statements filled from ``values`` as one string, one transaction of a loop
    session, as a batch would write it; None when one of them is not yet prepared in
    the session (a batch that runs them prepares them).

    The statements are written for the session once, their fixed values in place,
    so that each call writes only its slots' values.
    """
    written = state.written.get(id(statements))
    if written is None or written[0] is not statements:
        ahead = _written_ahead(state, statements)
        if ahead is None:
            return None
        if len(state.written) >= _WRITTEN_PER_SESSION:
            state.written.clear()
        written = state.written[id(statements)] = (statements, *ahead)
    _, text, slots = written
    literal = state.literal
    literals = {slot: literal(values[slot]) for slot in dict.fromkeys(slots)}  # a slot recurs
    return text % tuple([literals[slot] for slot in slots])


# Transactions written ahead that a session keeps (one per spare pool's terms in use).
_WRITTEN_PER_SESSION = 256


def _written_ahead(
    state: SessionState, statements: tuple[Statement, ...]
) -> tuple[bytes, tuple[Slot, ...]] | None:
    """The statements as a bytes format: fixed values written in, each slot a ``%b``
    (in the order of the returned slots); None if one is not prepared in the session."""
    texts, slots = [], []
    for position, statement in enumerate(statements):
        sql, params = statement.sql, statement.params
        if statement.required is not None:
            sql, params = _required(sql, params, position)
        if settings.DATABASE_PREPARED_STATEMENTS:
            name = state.prepared.get(sql)
            if name is None:
                return None
            sql = _execute_template(name, len(params))
        values = []
        for value in params:
            if type(value) is Slot:
                slots.append(value)
                values.append(b"%b")
            else:
                values.append(state.literal(value).replace(b"%", b"%%"))
        texts.append(_format(sql) % tuple(values))
    return b"; ".join(texts), tuple(slots)


def execute(sql: str, params: Sequence[Any], *, required: BaseException | None = None) -> Result:
    """Run one hand-written statement, or in a batch queue it to be sent with the others.

    With ``required``, the statement (a SELECT, or a write with RETURNING) must
    return a row, else ``required`` is raised and, inside ``atomic()``, all
    the transaction's statements roll back.
    """
    open_batch = _open_batch.get()
    if open_batch is not None:
        return open_batch.queue(sql, params, required)
    if loop_session.get() is not None:
        raise NeedsThread("a statement outside a transaction")
    result = Result()
    with _db().cursor() as cursor:
        cursor.execute(sql, params)
        result._take(cursor.rowcount, cursor.fetchall() if cursor.description else ())
    if required is not None and not result._rows:
        raise required
    return result


def _send_batch_first(execute_, sql, params, many, context):
    """Statements queued before this one (an ORM one, or the batch itself) go first."""
    open_batch = _open_batch.get()
    if open_batch is not None:
        open_batch.before_statement()
    return execute_(sql, params, many, context)


@contextmanager
def _batched(session: LoopSession | None = None) -> Iterator[_Batch]:
    queued = _Batch(session)
    token = _open_batch.set(queued)
    try:
        if session is not None:  # nothing goes through Django's connection
            yield queued
        else:
            with _db().execute_wrapper(_send_batch_first):
                yield queued
    finally:
        _open_batch.reset(token)


@contextmanager
def batch() -> Iterator[None]:
    """Inside an open transaction, send the statements run inside in as few round trips
    as their results allow (on PostgreSQL; elsewhere each runs at once).
    """
    if _open_batch.get() is not None or _db().vendor != "postgresql":
        yield
        return
    if loop_session.get() is not None:
        raise NeedsThread("statements outside a transaction")
    with _batched() as queued:
        yield
        queued.send()


@contextmanager
def atomic() -> Iterator[None]:
    """``transaction.atomic()`` whose statements go in as few round trips as their
    results allow: one, as an implicit transaction, when nothing is read before the end.

    Inside another transaction it is a savepoint, as ``transaction.atomic()``
    is, and statements are batched the same way. In a phase on the event loop
    it only queues, and the end sends the string through the loop's session.
    """
    session = loop_session.get()
    if session is not None:
        if _open_batch.get() is not None:
            raise NeedsThread("a savepoint")
        with _batched(session) as queued:
            yield
            queued.end()
        return
    db = _db()
    if db.vendor != "postgresql" or db.in_atomic_block or _open_batch.get() is not None:
        with transaction.atomic(), batch():
            yield
        return
    with transaction.atomic(), _batched() as queued:
        yield
        queued.end()


def db_value(model: type[models.Model], field_name: str, value: Any) -> Any:
    """``value`` as the ORM would pass it for ``model.field_name`` (dates on SQLite are
    text); a ``Slot`` as it is."""
    if type(value) is Slot:
        return value
    field, as_is = _field_plan(model, field_name, _on_postgresql())
    return value if _stored(as_is, value) else field.get_db_prep_value(value, _db())


@cache
def _on_postgresql() -> bool:
    """Whether the database is PostgreSQL (a backend's vendor never changes)."""
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


@cache
def _field_plan(
    model: type[models.Model], field_name: str, postgresql: bool
) -> tuple[models.Field, tuple[type, ...]]:
    field = model._meta.get_field(field_name)
    return field, _stored_as_is(field, postgresql)


def commit_unflushed() -> None:
    """Let this transaction's COMMIT return before its WAL is on disk (PostgreSQL only).

    For authorisations only (docs/decisions/0006): a crash of the database may
    lose the last ones, as if they had been rolled back. Queued in the batch;
    it applies to an implicit transaction (one query string) too.
    """
    if _db().vendor == "postgresql":
        execute("SET LOCAL synchronous_commit = off", ())


@cache
def insert_columns(model: type[models.Model]) -> tuple[str, tuple[models.Field, ...]]:
    """``INSERT INTO table (columns)`` of ``model`` and its fields in that column order,
    without a primary key the database makes."""
    meta = model._meta
    db_made_pk = isinstance(meta.pk, models.AutoField)  # Big and Small auto fields subclass it
    fields = tuple(f for f in meta.concrete_fields if not (db_made_pk and f.primary_key))
    quote = _db().ops.quote_name
    # Names come from the model, never from input.
    sql = "INSERT INTO {} ({})".format(
        quote(meta.db_table), ", ".join(quote(f.column) for f in fields)
    )
    return sql, fields


@cache
def _insert_plan(model: type[models.Model]) -> tuple[str, tuple[models.Field, ...], bool]:
    """(SQL, the fields in its column order, whether the database makes the primary key)."""
    meta = model._meta
    insert, fields = insert_columns(model)
    db_made_pk = meta.pk not in fields  # insert_columns leaves out a key the database makes
    sql = "{} VALUES ({})".format(insert, ", ".join(["%s"] * len(fields)))
    if db_made_pk:
        sql += f" RETURNING {_db().ops.quote_name(meta.pk.column)}"
    return sql, fields, db_made_pk


# Field classes whose preparation stores a value of these Python types unchanged (an
# integer is only wrapped for the driver's type hints, which a literal does not use).
_STORED_AS_IS: dict[type[models.Field], tuple[type, ...]] = {
    models.CharField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
    **dict.fromkeys(
        (
            models.AutoField,
            models.BigAutoField,
            models.SmallAutoField,
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
        ),
        (int,),
    ),
}
# Stored as they are only where the database has the type (PostgreSQL): SQLite's
# backend writes them as text. A naive datetime still goes through the field.
_STORED_AS_IS_ON_POSTGRESQL: dict[type[models.Field], tuple[type, ...]] = {
    models.DateTimeField: (datetime,),
    models.UUIDField: (uuid.UUID,),
}


def _stored_as_is(field: models.Field, postgresql: bool) -> tuple[type, ...]:
    """The Python types ``field`` stores unchanged (exact types, so no subclass of a
    field or of a value with preparation of its own is passed over)."""
    if isinstance(field, models.ForeignKey):  # OneToOneField too: the target's own
        field = field.target_field
    kind = type(field)
    return _STORED_AS_IS.get(kind) or (postgresql and _STORED_AS_IS_ON_POSTGRESQL.get(kind)) or ()


# (fields, on PostgreSQL) by the id of the fields' tuple -> each field with the types it
# stores as they are. Keyed by identity: hashing a tuple of fields costs more than the
# preparation it saves, and callers pass the tuples cached with their SQL.
_value_plans: dict[tuple[int, bool], tuple[tuple, tuple]] = {}


def _value_plan(
    fields: tuple[models.Field, ...], postgresql: bool
) -> tuple[tuple[models.Field, tuple[type, ...]], ...]:
    kept = _value_plans.get((id(fields), postgresql))
    if kept is None or kept[0] is not fields:
        plan = tuple((field, _stored_as_is(field, postgresql)) for field in fields)
        kept = _value_plans[id(fields), postgresql] = (fields, plan)
    return kept[1]


def insert_statement(model: type[models.Model], values: Mapping[str, Any]) -> Statement:
    """The INSERT of a new row of ``model`` given by attribute name (``values_of``)."""
    sql, fields, _ = _insert_plan(model)
    return Statement(sql, tuple(values_of(fields, values)))


def field_values(obj: models.Model, fields: tuple[models.Field, ...]) -> list:
    """The values ``save()`` would write for ``fields`` of a new ``obj``.

    A value of a type its field stores unchanged skips the field's preparation,
    which would return it as it is at several times the cost.
    """
    return [
        _prepared(field, as_is, field.pre_save(obj, True))
        for field, as_is in _value_plan(fields, _on_postgresql())
    ]


def values_of(fields: tuple[models.Field, ...], values: Mapping[str, Any]) -> list:
    """``field_values`` of a new row given by attribute name, without building it: a
    ``Slot`` is left as it is, a field not given takes its default. A creation time
    (``auto_now_add``) is not stamped: it must be given."""
    prepared = []
    for field, as_is in _value_plan(fields, _on_postgresql()):
        if field.attname in values:
            value = values[field.attname]
        elif getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
            raise TypeError(f"{field} is stamped on save: give its value")
        else:
            value = field.get_default()
        prepared.append(value if type(value) is Slot else _prepared(field, as_is, value))
    return prepared


def _prepared(field: models.Field, as_is: tuple[type, ...], value: Any) -> Any:
    if _stored(as_is, value) or (value is None and as_is):
        return value
    return field.get_db_prep_save(value, _db())


def _stored(as_is: tuple[type, ...], value: Any) -> bool:
    """Whether ``value`` is of a type its field stores as it is (an aware datetime only)."""
    kind = type(value)
    return kind in as_is and (kind is not datetime or value.tzinfo is not None)


@cache
def _positions(model: type[models.Model]) -> tuple[tuple[str, ...], tuple[Callable[[], Any], ...]]:
    """Each concrete field's attribute name and how it makes its default, in field order."""
    fields = model._meta.concrete_fields
    return tuple(f.attname for f in fields), tuple(f.get_default for f in fields)


def row_new(model: type[M], **values: Any) -> M:
    """``model(**values)`` for a row about to be inserted, built as the ORM builds rows it
    reads (by position): several times faster than by keyword.

    ``values`` are by attribute name (``customer_id``, not ``customer``); every
    other field takes its default. Related objects are not cached on the row.
    """
    names, defaults = _positions(model)
    row = model(
        *[
            values.pop(name) if name in values else default()
            for name, default in zip(names, defaults, strict=True)
        ]
    )
    if values:
        raise TypeError(f"{model.__name__} has no fields {', '.join(values)}")
    return row


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
    obj._state.db = DEFAULT_DB_ALIAS
    return obj


@contextmanager
def queries_sent() -> Iterator[list[str]]:
    """The query strings this thread's connection sends meanwhile, one per round trip.

    Read from libpq's own trace, so BEGIN and COMMIT appear only when they
    really go to the server (Django's query log lists them either way). For
    the probe and the tests; PostgreSQL only.
    """
    db = _db()
    sent: list[str] = []
    db.ensure_connection()
    pgconn = db.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            yield sent
        finally:
            pgconn.untrace()
            trace.seek(0)
            sent.extend(re.findall(r'^F\t\d+\tQuery\t "(.*)"$', trace.read(), re.MULTILINE))
