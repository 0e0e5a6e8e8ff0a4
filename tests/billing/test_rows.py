"""The hot path's statements: rows stored as ``save()`` stores them, batches sent together,
required statements that roll their whole transaction back."""

import warnings
from contextlib import contextmanager
from datetime import UTC, timedelta
from datetime import timezone as timezone_of

import pytest
from django.db import IntegrityError, connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg.adapt import Transformer
from psycopg.pq import TransactionStatus

from billing import rows
from billing.models import CreditAccount, Hold, LedgerEntry, PaymentPath, UsageRecord
from billing.rows import batch, execute, row_insert
from billing.services.calls import call_authorize, call_capture
from billing.services.ledger import ACCOUNTS_TABLE, credit_grant
from billing.services.pricing import tool_price_active, tool_price_set
from tests.factories import customer, priced_tool

pytestmark = pytest.mark.django_db


NOW = timezone.now()
HOLD_MORE = f"UPDATE {ACCOUNTS_TABLE} SET held_credits = held_credits + %s WHERE customer_id = %s"


def _hold(owner, tool, **fields):
    now = NOW
    return Hold(
        customer=owner,
        tool=tool,
        price=tool_price_active(tool=tool),
        plan=owner.plan,
        path=PaymentPath.CREDITS,
        credits=2,
        amount_microcents=1_234_567,
        period_start=owner.period_start,
        budget_day=now.date(),
        expires_at=now + timedelta(minutes=5),
        **fields,
    )


def _usage(hold, **fields):
    """The charged usage row of ``hold`` (2 credits)."""
    return UsageRecord(
        hold=hold,
        customer=hold.customer,
        tool=hold.tool,
        path=hold.path,
        outcome=UsageRecord.Outcome.SUCCESS,
        charged=True,
        amount_microcents=hold.amount_microcents,
        credits=2,
        period_start=hold.period_start,
        **fields,
    )


def _stored(model, pk) -> dict:
    row = model.objects.get(pk=pk)
    return {**model_to_dict(row), "created_at": row.created_at}


def test_rows_match_what_save_writes():
    owner, tool = customer(), priced_tool("echo", credits=2)
    by_orm = _hold(owner, tool, idempotency_key="a")
    by_orm.save()
    fast = row_insert(_hold(owner, tool, idempotency_key="b"))

    assert fast.pk and fast.pk != by_orm.pk and not fast._state.adding
    orm_row, fast_row = _stored(Hold, by_orm.pk), _stored(Hold, fast.pk)
    assert abs(orm_row.pop("created_at") - fast_row.pop("created_at")) < timedelta(seconds=5)
    assert {**orm_row, "id": fast.pk, "idempotency_key": "b"} == fast_row
    assert fast.created_at == Hold.objects.get(pk=fast.pk).created_at

    usage = row_insert(
        _usage(fast, response={"content": [{"type": "text", "text": "ünïcode"}], "n": [1, None]})
    )
    stored = UsageRecord.objects.get(pk=usage.pk)  # a uuid7 made by the model, not the database
    assert stored.response == {"content": [{"type": "text", "text": "ünïcode"}], "n": [1, None]}
    assert (stored.hold_id, stored.api_key_id, stored.credits) == (fast.pk, None, 2)


@pytest.mark.django_db(transaction=True)
def test_values_written_into_a_batch_string_are_stored_as_given():
    """On PostgreSQL a batch's values are written into its query string as literals."""
    owner, tool = customer(), priced_tool("echo", credits=2)
    key = "it's 100%s %% ; DROP TABLE x; -- ünï\\code"
    response = {"text": "a 'quoted' %s \"value\"", "n": [1, None, 2.5], "e": "😀"}
    with rows.atomic():
        hold = row_insert(_hold(owner, tool, idempotency_key=key))
    with rows.atomic():  # a usage row names its hold: the hold's id is known once sent
        usage = row_insert(_usage(hold, idempotency_key=key, response=response))
        found = execute(
            f"SELECT count(*) FROM {Hold._meta.db_table} WHERE idempotency_key = %s "
            "AND id IS NOT NULL AND %s IS NULL",
            [key, None],
        )
    stored = UsageRecord.objects.get(pk=usage.pk)
    assert (stored.idempotency_key, stored.response) == (key, response)
    assert Hold.objects.get(pk=hold.pk).idempotency_key == key
    assert found.row() == (1,)


def test_a_database_error_reaches_the_caller_and_writes_nothing():
    owner, tool = customer(), priced_tool("echo")
    row_insert(_hold(owner, tool, idempotency_key="same"))
    with pytest.raises(IntegrityError), transaction.atomic():
        row_insert(_hold(owner, tool, idempotency_key="same"))
    assert Hold.objects.filter(idempotency_key="same").count() == 1
    assert not LedgerEntry.objects.exists()


def test_a_new_price_version_applies_to_the_next_read():
    tool = priced_tool("echo", cents=1)
    first = tool_price_active(tool=tool)
    assert tool_price_active(tool=tool) is first  # read once, then kept

    tool_price_set(tool=tool, unit_amount_microcents=7_000_000, credits=7)

    current = tool_price_active(tool=tool)
    assert (current.version, current.unit_amount_microcents) == (first.version + 1, 7_000_000)


def test_a_batch_sends_queued_statements_together_and_before_any_orm_statement():
    owner = customer()
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="grant")
    with transaction.atomic(), batch(), CaptureQueriesContext(connection) as sent:
        raised = execute(HOLD_MORE, [3, owner.pk])
        missed = execute(HOLD_MORE, [1, -1])
        returned = execute(HOLD_MORE + " RETURNING held_credits", [1, owner.pk])
        assert returned.row() == (4,)
        assert (raised.rowcount, missed.rowcount) == (1, 0)
        queued_at_once = len(sent.captured_queries)
        execute(HOLD_MORE, [2, owner.pk])
        # The ORM sees the queued statement: it is sent first.
        assert CreditAccount.objects.get(customer=owner).held_credits == 6
    assert queued_at_once == (1 if connection.vendor == "postgresql" else 3)


def test_a_failed_statement_in_a_batch_raises_and_its_transaction_writes_nothing():
    owner, tool = customer(), priced_tool("echo")
    row_insert(_hold(owner, tool, idempotency_key="same"))
    with pytest.raises(IntegrityError), transaction.atomic(), batch():
        execute(f"UPDATE {ACCOUNTS_TABLE} SET held_credits = 0 WHERE customer_id = %s", [owner.pk])
        row_insert(_hold(owner, tool, idempotency_key="same"))
    assert Hold.objects.filter(idempotency_key="same").count() == 1


# --- rows.atomic(): one transaction, one round trip when nothing is read first ----------


class Refused(Exception):
    pass


def _funded(credits=10):
    owner = customer()
    credit_grant(customer_id=owner.pk, credits=credits, idempotency_key=f"grant:{owner.pk}")
    return owner


def _held(owner) -> int:
    return CreditAccount.objects.get(customer=owner).held_credits


@contextmanager
def _sent():
    """What reaches PostgreSQL, one string per round trip (nothing on SQLite)."""
    if connection.vendor != "postgresql":
        yield []
        return
    with rows.queries_sent() as sent:
        yield sent


def _transaction_open() -> bool:
    """Whether psycopg has opened a transaction on the database (sent BEGIN)."""
    return connection.connection.info.transaction_status != TransactionStatus.IDLE


def _require_no_row(owner):
    """A required statement that finds nothing: the refusal."""
    return execute(
        f"SELECT 1 FROM {ACCOUNTS_TABLE} WHERE customer_id = %s AND balance_credits < 0",
        [owner.pk],
        required=Refused("no row"),
    )


@pytest.mark.django_db(transaction=True)
def test_an_atomic_block_that_reads_nothing_first_is_one_round_trip():
    owner = _funded()
    new_hold = _hold(owner, priced_tool("echo"), idempotency_key="one-trip")
    on_postgres = connection.vendor == "postgresql"
    with _sent() as sent:
        with rows.atomic():
            execute(HOLD_MORE, [2, owner.pk])
            held = execute(HOLD_MORE + " RETURNING held_credits", [1, owner.pk], required=Refused())
            hold = row_insert(new_hold)
            # On PostgreSQL nothing has been sent, not even BEGIN: the string is one.
            assert not on_postgres or not _transaction_open()
        # The database made the hold's id; it is set once the statements went.
        assert hold.pk == Hold.objects.get(idempotency_key="one-trip").pk
        assert held.row() == (3,)
    if on_postgres:
        # The session prepares each new statement first, in round trips of its own;
        # then one string, no BEGIN or COMMIT, and the read after the block.
        sql = [query for query in sent if not query.startswith("PREPARE")]
        assert len(sql) == 2 and sql[0].count("; ") == 2
    assert _held(owner) == 3


@pytest.mark.django_db(transaction=True)
def test_a_refused_required_statement_rolls_back_what_was_sent_with_it():
    owner = _funded()
    with pytest.raises(Refused), rows.atomic():
        execute(HOLD_MORE, [3, owner.pk])
        _require_no_row(owner)
        execute(HOLD_MORE, [4, owner.pk])
    assert _held(owner) == 0
    assert not connection.errors_occurred  # the connection stays in use, no health check
    with rows.atomic():  # and the next transaction goes through
        execute(HOLD_MORE, [1, owner.pk])
    assert _held(owner) == 1


@pytest.mark.django_db(transaction=True)
def test_reading_a_result_first_opens_a_transaction_that_an_error_rolls_back():
    owner = _funded()
    with pytest.raises(ValueError), rows.atomic():
        raised = execute(HOLD_MORE + " RETURNING held_credits", [3, owner.pk])
        assert raised.row() == (3,)  # sent now, inside a transaction
        assert connection.vendor != "postgresql" or _transaction_open()
        execute(HOLD_MORE, [4, owner.pk])
        raise ValueError("after the read")
    assert _held(owner) == 0


@pytest.mark.django_db(transaction=True)
def test_an_orm_statement_runs_inside_the_transaction_and_rolls_back_with_it():
    owner = _funded()
    with pytest.raises(Refused), rows.atomic():
        CreditAccount.objects.filter(customer=owner).update(held_credits=5)
        execute(HOLD_MORE, [1, owner.pk])
        _require_no_row(owner)
    assert _held(owner) == 0


@pytest.mark.django_db(transaction=True)
def test_an_error_before_anything_was_sent_sends_nothing():
    owner = _funded()
    with _sent() as sent, pytest.raises(ValueError), rows.atomic():
        execute(HOLD_MORE, [3, owner.pk])
        raise ValueError("a refusal made in Python")
    assert not sent
    assert _held(owner) == 0


@pytest.mark.django_db(transaction=True)
def test_a_transaction_nested_before_any_statement_commits_with_the_block():
    owner = _funded()
    committed = []
    with pytest.raises(Refused), rows.atomic():
        with transaction.atomic():  # a savepoint, not a commit of its own
            CreditAccount.objects.filter(customer=owner).update(held_credits=5)
        transaction.on_commit(lambda: committed.append("refused"))
        _require_no_row(owner)
    assert _held(owner) == 0 and committed == []
    with rows.atomic():
        execute(HOLD_MORE, [1, owner.pk])
        # Runs once the string has committed, and sees what it wrote.
        transaction.on_commit(lambda: committed.append(_held(owner)))
    assert committed == [1]


@pytest.mark.django_db(transaction=True)
def test_a_block_marked_for_rollback_writes_nothing():
    owner = _funded()
    with rows.atomic():
        execute(HOLD_MORE, [2, owner.pk])
        transaction.set_rollback(True)
    assert _held(owner) == 0


def test_inside_another_transaction_a_refusal_rolls_back_to_its_savepoint():
    owner = _funded()
    with transaction.atomic():
        execute(HOLD_MORE, [1, owner.pk])
        with pytest.raises(Refused), rows.atomic():
            execute(HOLD_MORE, [3, owner.pk])
            _require_no_row(owner)
        assert _held(owner) == 1


@pytest.mark.django_db(transaction=True)
def test_a_credits_call_is_two_round_trips_on_postgresql(on_postgres):
    owner, tool = _funded(), priced_tool("echo", credits=2)
    call_capture(hold=call_authorize(customer=owner, tool=tool))  # the price is known from now
    with rows.queries_sent() as sent:
        settlement = call_capture(hold=call_authorize(customer=owner, tool=tool))
    assert len(sent) == 2 and not {"BEGIN", "COMMIT"} & set(sent)
    assert (settlement.balance_credits, settlement.usage.credits) == (6, 2)
    assert (_held(owner), LedgerEntry.objects.filter(kind="debit").count()) == (0, 2)


# --- prepared statements (PostgreSQL) ------------------------------------------------


def _prepared_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'mcpb_%%'")
        return {name for (name,) in cursor.fetchall()}


def _hold_more_twice(owner) -> list[str]:
    """Run two statements in a block; what was sent."""
    with _sent() as sent, rows.atomic():
        execute(HOLD_MORE, [1, owner.pk])
        execute(HOLD_MORE + " RETURNING held_credits", [1, owner.pk], required=Refused())
    return sent


@pytest.mark.django_db(transaction=True)
def test_a_session_prepares_each_statement_once_then_executes_it(on_postgres):
    owner = _funded()
    connection.close()  # a new session: nothing prepared yet
    first = _hold_more_twice(owner)
    prepares = [sql for sql in first if sql.startswith("PREPARE")]
    assert len(prepares) == 2 and "$1" in prepares[0] and "%s" not in prepares[0]
    second = _hold_more_twice(owner)
    assert len(second) == 1 and second[0].startswith("EXECUTE mcpb_")
    assert second[0].count("EXECUTE") == 2
    assert len(_prepared_names()) >= 2
    assert _held(owner) == 4

    connection.close()  # the database forgets them with the session; so does the engine
    assert len([sql for sql in _hold_more_twice(owner) if sql.startswith("PREPARE")]) == 2
    assert _held(owner) == 6


@pytest.mark.django_db(transaction=True)
def test_a_prepared_required_statement_still_refuses_with_its_error(on_postgres):
    owner = _funded()
    _hold_more_twice(owner)
    for _ in range(2):  # prepared by the first block, executed by the second
        with pytest.raises(Refused), rows.atomic():
            execute(HOLD_MORE, [3, owner.pk])
            _require_no_row(owner)
    assert _held(owner) == 2 and not connection.errors_occurred


@pytest.mark.django_db(transaction=True)
def test_a_statement_postgresql_cannot_prepare_runs_unprepared(on_postgres, caplog):
    untyped = "SELECT 1 WHERE %s IS NULL"  # no context tells the parameter's type
    for _ in range(2):
        with _sent() as sent, rows.atomic():
            found = execute(untyped, [None])
        assert found.row() == (1,)
        assert sent[-1] == "SELECT 1 WHERE NULL IS NULL"
    assert caplog.text.count("left unprepared") == 1  # tried once per session
    assert not connection.errors_occurred


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_nothing_new_is_prepared(on_postgres):
    owner = _funded()
    connection.close()
    with _sent() as sent, transaction.atomic(), rows.atomic():
        execute(HOLD_MORE, [1, owner.pk])
    assert sent[0] == "BEGIN" and not [sql for sql in sent if sql.startswith("PREPARE")]
    assert _held(owner) == 1


@pytest.mark.django_db(transaction=True)
def test_prepared_statements_can_be_turned_off(on_postgres, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    owner = _funded()
    connection.close()
    sent = _hold_more_twice(owner) + _hold_more_twice(owner)
    assert not [sql for sql in sent if "PREPARE" in sql or "EXECUTE" in sql]
    assert _held(owner) == 4


# --- values written as they are stored ---------------------------------------------------


def _psycopg_literal():
    """psycopg's own literal of a value, on this test's PostgreSQL session."""
    connection.ensure_connection()
    return Transformer.from_context(connection.connection).as_literal


_LITERALS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone_of(timedelta(hours=-5, minutes=-30))])),
    st.datetimes(),  # naive: psycopg's own dumper writes it
    st.uuids(),
    st.dates(),
)


@given(value=_LITERALS)
@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_values_are_written_as_psycopg_writes_them(on_postgres, value):
    connection.ensure_connection()
    ours = rows.SessionState(connection.connection).literal
    theirs = _psycopg_literal()
    try:
        expected = b"NULL" if value is None else theirs(value)
    except Exception as exc:  # NUL in text: psycopg refuses it, and so must we
        with pytest.raises(type(exc)):
            ours(value)
        return
    assert ours(value) == expected


@given(
    value=st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
)
@hypothesis_settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_text_written_into_a_string_reads_back_as_given(on_postgres, value):
    connection.ensure_connection()
    literal = rows.SessionState(connection.connection).literal(value)
    with connection.cursor() as cursor:
        cursor.execute(b"SELECT " + literal)
        assert cursor.fetchone()[0] == value


def test_a_query_template_becomes_a_bytes_format():
    template = "SELECT 1 WHERE a LIKE 'x%%' AND b = %s AND c = '100%' AND d = %s"
    assert rows._format(template) % (b"1", b"'%s'") == (
        b"SELECT 1 WHERE a LIKE 'x%' AND b = 1 AND c = '100%' AND d = '%s'"
    )


def _kind(value) -> type:
    return int if isinstance(value, int) and not isinstance(value, bool) else type(value)


def _django_values(obj, fields):
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _unstamped(values, fields) -> list:
    """``values`` without the creation times ``pre_save`` stamps anew on every call, JSON
    wrappers (which do not compare) as what they wrap."""
    return [
        getattr(value, "obj", value)
        for value, field in zip(values, fields, strict=True)
        if not getattr(field, "auto_now_add", False)
    ]


def test_row_values_are_those_django_prepares():
    owner, tool = customer(), priced_tool("echo", credits=2)
    hold = row_insert(_hold(owner, tool, idempotency_key="k"))
    usage = _usage(hold, idempotency_key="it's", response={"a": [1, None]}, duration_ms=7)
    naive = _usage(hold)
    naive.period_start = NOW.replace(tzinfo=None)
    for obj in (hold, usage, naive):
        _, fields = rows.insert_columns(type(obj))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the naive datetime, both ways
            ours, django = rows.field_values(obj, fields), _django_values(obj, fields)
        # Equal, and of the same type but for Django's wrappers of integers (Int8...).
        assert list(map(_kind, ours)) == list(map(_kind, django))
        assert _unstamped(ours, fields) == _unstamped(django, fields)
    for field_name, value in (("settled_at", NOW), ("settled_at", None), ("credits", 3)):
        field = Hold._meta.get_field(field_name)
        assert rows.db_value(Hold, field_name, value) == field.get_db_prep_value(value, connection)


def test_a_row_built_by_position_is_the_row_built_by_keyword():
    owner, tool = customer(), priced_tool("echo", credits=2)
    hold = row_insert(_hold(owner, tool, idempotency_key="k"))
    given = {
        "hold_id": hold.pk,
        "customer_id": owner.pk,
        "tool_id": tool.pk,
        "path": hold.path,
        "outcome": UsageRecord.Outcome.SUCCESS,
        "charged": True,
        "credits": 2,
        "period_start": hold.period_start,
    }
    by_position = rows.row_new(UsageRecord, **given)
    by_keyword = UsageRecord(**given)
    assert by_position.pk != by_keyword.pk  # each its own uuid7, made by the model
    assert model_to_dict(by_position, exclude=["id"]) == model_to_dict(by_keyword, exclude=["id"])
    assert by_position._state.adding and by_position.currency == "usd"
    with pytest.raises(TypeError, match="no fields hold"):
        rows.row_new(UsageRecord, hold=hold)
