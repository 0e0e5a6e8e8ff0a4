"""Row writes of the charge engine's hot path, without the ORM's per-statement work.

Each tool call writes a handful of rows. Through ``Model.objects.create`` and
``QuerySet.update`` every statement is compiled again, which costs several
times the database's own work (docs/benchmarks.md). Here an INSERT's SQL is
built once per model from its fields and reused; values still go through each
field's own preparation, so what is stored is what ``save()`` would store.
The SQL is plain enough for both PostgreSQL and SQLite (3.35+ for RETURNING).
"""

from __future__ import annotations

from functools import cache
from typing import TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


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


def row_insert(obj: M) -> M:
    """INSERT ``obj`` as ``obj.save()`` would for a new row (``auto_now_add`` included)."""
    sql, fields, db_made_pk = _insert_plan(type(obj))
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if db_made_pk:
            obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


def rows_update(sql: str, params: list) -> int:
    """Run one hand-written UPDATE; returns how many rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
