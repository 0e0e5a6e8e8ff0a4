"""The charge engine's phases on the event loop (``run_phase``, docs/decisions/0009).

On PostgreSQL a phase's Python runs in a greenlet on the loop and its one query
string goes out on the loop's own session; a phase that needs Django's
connection starts again on a worker thread, unless something it wrote has
already committed.
"""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import OperationalError, connection

from billing.models import Hold, LedgerEntry, UsageRecord
from billing.rows import atomic, execute
from billing.services.calls import call_authorize, call_capture
from billing.services.ledger import ACCOUNTS_TABLE
from customers.models import Customer
from mcpbilling.errors import ApplicationError
from mcpbilling.gateway.db import LoopDatabase, loop_database, run_db, run_phase
from tests.factories import priced_tool
from tests.gateway.support import account_credits, funded_customer, on_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres(on_postgres):
    pass


def test_a_credits_call_runs_both_phases_on_the_loop():
    owner, tool = funded_customer(10), priced_tool("echo", credits=3)
    call_capture(hold=call_authorize(customer=owner, tool=tool))  # the price is known from now
    worker_threads = set()

    def authorize():
        worker_threads.add(threading.current_thread())
        return call_authorize(customer=owner, tool=tool, idempotency_key="k1")

    async def work(database):
        hold = await run_phase(database, authorize)
        settlement = await run_phase(database, call_capture, hold=hold)
        return hold, settlement

    (hold, settlement), database = on_loop(work)

    assert worker_threads == {threading.main_thread()}  # the loop's thread, no worker
    assert (database.phases_on_loop, database.phases_on_thread) == (2, 0)
    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.CAPTURED
    assert (settlement.balance_credits, settlement.usage.credits) == (4, 3)
    assert account_credits(owner) == (4, 0)
    usage = UsageRecord.objects.get(pk=settlement.usage.pk)
    assert (usage.idempotency_key, usage.credits, usage.charged) == ("k1", 3, True)
    assert LedgerEntry.objects.filter(usage=usage, amount_credits=-3).count() == 1


def test_a_refusal_on_the_loop_reserves_nothing():
    owner, tool = funded_customer(2), priced_tool("echo", credits=3)
    call_authorize(customer=funded_customer(5), tool=tool)  # the price is known from now

    async def work(database):
        with pytest.raises(ApplicationError) as refused:
            await run_phase(database, call_authorize, customer=owner, tool=tool)
        return refused.value

    refusal, database = on_loop(work)

    assert refusal.code == "insufficient_credits"
    assert database.phases_on_thread == 0
    assert account_credits(owner) == (2, 0)
    assert not Hold.objects.filter(customer=owner).exists()


def test_a_phase_that_needs_the_orm_runs_again_on_a_thread():
    owner, tool = (
        funded_customer(10),
        priced_tool("echo", credits=3),
    )  # price never read: an ORM read

    async def work(database):
        hold = await run_phase(database, call_authorize, customer=owner, tool=tool)
        return await run_phase(database, call_capture, hold=hold)

    settlement, database = on_loop(work)

    assert (database.phases_on_loop, database.phases_on_thread) == (1, 1)
    assert Hold.objects.filter(customer=owner).count() == 1  # the first attempt sent nothing
    assert settlement.balance_credits == 7 and account_credits(owner) == (7, 0)


def test_a_phase_that_committed_is_never_run_twice():
    owner = funded_customer(10)
    runs = []

    def hold_then_read():
        runs.append(1)
        with atomic():
            execute(
                f"UPDATE {ACCOUNTS_TABLE} SET held_credits = held_credits + 1 "
                "WHERE customer_id = %s",
                [owner.pk],
            )
        return Customer.objects.get(pk=owner.pk)  # an ORM read after the commit

    async def work(database):
        with pytest.raises(SynchronousOnlyOperation):
            await run_phase(database, hold_then_read)

    on_loop(work)

    assert len(runs) == 1 and account_credits(owner) == (10, 1)


def test_concurrent_phases_share_at_most_size_sessions_and_never_overspend():
    owner, tool = funded_customer(12), priced_tool("echo", credits=1)
    call_capture(hold=call_authorize(customer=funded_customer(1), tool=tool))  # price known
    outcomes = []

    async def work(database):
        async def one():
            try:
                hold = await run_phase(database, call_authorize, customer=owner, tool=tool)
                outcomes.append(await run_phase(database, call_capture, hold=hold))
            except ApplicationError as exc:
                outcomes.append(exc.code)

        async with anyio.create_task_group() as group:
            for _ in range(30):
                group.start_soon(one)
        return len(database._idle)

    sessions, database = on_loop(work, size=3)

    assert sessions <= 3
    assert database.phases_on_thread == 0
    assert outcomes.count("insufficient_credits") == 18
    assert sorted(o.balance_credits for o in outcomes if not isinstance(o, str)) == list(range(12))
    assert account_credits(owner) == (0, 0)


def test_the_loop_sessions_are_closed_with_the_database():
    owner, tool = funded_customer(5), priced_tool("echo", credits=1)
    call_authorize(customer=owner, tool=tool)

    async def work(database):
        await run_phase(database, call_authorize, customer=owner, tool=tool)
        (session,) = database._idle
        return session.raw, session.raw.info.backend_pid

    (raw, pid), _ = on_loop(work)

    assert raw.closed
    # The server ends a backend shortly after its client closes: wait for it, a while.
    deadline = time.monotonic() + 10
    while _backend_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _backend_alive(pid)


def _backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] > 0


def _terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_broken_session_fails_its_phase_and_is_replaced():
    owner, tool = funded_customer(5), priced_tool("echo", credits=1)
    call_authorize(customer=owner, tool=tool)  # the price is known from now

    async def work(database):
        await run_phase(database, call_authorize, customer=owner, tool=tool)
        (session,) = database._idle
        await run_db(_terminate, session.raw.info.backend_pid)  # the database ends it
        with pytest.raises(OperationalError):
            await run_phase(database, call_authorize, customer=owner, tool=tool)
        await run_phase(database, call_authorize, customer=owner, tool=tool)
        (replacement,) = database._idle
        return session.raw, replacement.raw

    (broken, replacement), database = on_loop(work)

    assert broken.closed and broken is not replacement
    assert database.phases_on_thread == 0
    assert account_credits(owner) == (5, 3)  # the first authorisation, then two on the loop


@pytest.mark.parametrize("on_loop_setting", [True, False])
def test_the_setting_decides_whether_the_loop_has_sessions(settings, on_loop_setting):
    settings.GATEWAY_DB_ON_LOOP = on_loop_setting

    async def main():
        async with loop_database() as database:
            return database

    database = anyio.run(main)

    assert isinstance(database, LoopDatabase) is on_loop_setting


def test_a_string_longer_than_the_socket_takes_at_once_goes_whole():
    text = "é" * 32_000_000  # 64 MB: more than the socket takes before the server reads

    def phase():
        with atomic():
            read = execute("SELECT length(%s::text)", [text])
        return read.row()[0]

    length, database = on_loop(lambda database: run_phase(database, phase))

    assert length == 32_000_000
    assert (database.phases_on_loop, database.phases_on_thread) == (1, 0)
