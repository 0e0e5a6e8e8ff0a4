"""Group commit of settles (``run_phase_grouped``, docs/decisions/0011).

Settles that become ready while another is in flight on the loop's shared
session go next, together, as one string and one commit. Each is charged once
whatever its neighbours do, and a group that fails is sent again one by one.
"""

from __future__ import annotations

import threading

import anyio
import pytest
from django.db import OperationalError, connection

from billing.models import Hold, LedgerEntry, UsageRecord
from billing.services.calls import call_authorize, call_capture, call_release
from mcpbilling.gateway.db import GROUP_MAX, LoopDatabase, run_db, run_phase, run_phase_grouped
from tests.factories import priced_tool
from tests.gateway.support import account_credits, funded_customer, on_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres(on_postgres):
    pass


def _priced(credits: int = 1):
    tool = priced_tool("echo", credits=credits)
    call_capture(hold=call_authorize(customer=funded_customer(5), tool=tool))  # the price is known
    return tool


async def _authorised(database: LoopDatabase, owner, tool, count: int) -> list[Hold]:
    """``count`` holds authorised on the loop, as the gateway makes them."""
    return [
        await run_phase(database, call_authorize, customer=owner, tool=tool) for _ in range(count)
    ]


async def _settle_together(database: LoopDatabase, holds: list[Hold]) -> list:
    """Every hold captured at once; the settlements, or the errors, in the holds' order."""
    settled: list = [None] * len(holds)

    async def one(index: int, hold: Hold) -> None:
        try:
            settled[index] = await run_phase_grouped(
                database, hold.customer_id, call_capture, hold=hold
            )
        except Exception as exc:  # the test reads what each got
            settled[index] = exc

    async with anyio.create_task_group() as group:
        for index, hold in enumerate(holds):
            group.start_soon(one, index, hold)
    return settled


def test_settles_that_finish_together_share_one_commit():
    owner, tool = funded_customer(30), _priced()

    async def work(database):
        return await _settle_together(database, await _authorised(database, owner, tool, 20))

    settled, database = on_loop(work)

    # The first goes alone; the 19 that queued behind it go as one string.
    assert (database.grouped_transactions, database.grouped_strings) == (20, 2)
    assert database.phases_on_thread == 0
    assert sorted(s.balance_credits for s in settled) == list(range(10, 30))
    assert account_credits(owner) == (10, 0)
    assert UsageRecord.objects.filter(customer=owner, charged=True).count() == 20
    assert LedgerEntry.objects.filter(account__customer=owner, kind="debit").count() == 20
    assert not Hold.objects.filter(customer=owner, status=Hold.Status.HELD).exists()


def test_a_string_carries_at_most_group_max_settles():
    owner, tool = funded_customer(200), _priced()
    count = 2 * GROUP_MAX + 2

    async def work(database):
        return await _settle_together(database, await _authorised(database, owner, tool, count))

    settled, database = on_loop(work)

    # One alone, then the rest in strings of at most GROUP_MAX.
    assert database.grouped_transactions == count
    assert database.grouped_strings == 1 + -(-(count - 1) // GROUP_MAX)
    assert account_credits(owner) == (200 - count, 0)
    assert len({s.usage.pk for s in settled}) == count


def test_a_settle_that_lost_its_hold_fails_alone_and_the_group_is_charged_once():
    owner, tool = funded_customer(30), _priced()

    async def work(database):
        holds = await _authorised(database, owner, tool, 8)
        # Two of them settled elsewhere first: one captured, one released.
        first = await run_db(call_capture, hold_id=holds[3].pk)
        await run_db(call_release, hold_id=holds[5].pk)
        return first, await _settle_together(database, holds), holds

    (first, settled, holds), database = on_loop(work)

    assert database.groups_split == 1  # the group's string failed on their checks
    assert settled[3].usage.pk == first.usage.pk  # the earlier capture, not a second one
    assert settled[5].usage.charged is False  # released stays released
    charged = [s for i, s in enumerate(settled) if i not in (3, 5)]
    assert all(s.usage.charged for s in charged)
    assert UsageRecord.objects.filter(customer=owner, charged=True).count() == 7
    assert LedgerEntry.objects.filter(account__customer=owner, kind="debit").count() == 7
    assert account_credits(owner) == (23, 0)
    statuses = dict(Hold.objects.filter(pk__in=[h.pk for h in holds]).values_list("pk", "status"))
    assert statuses.pop(holds[5].pk) == Hold.Status.RELEASED
    assert set(statuses.values()) == {Hold.Status.CAPTURED}


def test_a_broken_shared_session_fails_its_settles_and_is_replaced():
    owner, tool = funded_customer(30), _priced()

    def terminate(pid: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    async def work(database):
        holds = await _authorised(database, owner, tool, 6)
        await run_phase_grouped(database, owner.pk, call_capture, hold=holds[0])
        shared = database._idle[-1]
        await run_db(terminate, shared.raw.info.backend_pid)
        with pytest.raises(OperationalError):
            await run_phase_grouped(database, owner.pk, call_capture, hold=holds[1])
        return shared, await _settle_together(database, holds[2:])

    (broken, settled), _ = on_loop(work)

    assert broken.raw.closed
    assert all(s.usage.charged for s in settled)
    # The failed settle charged nothing; its hold waits for the stale sweep.
    assert account_credits(owner) == (25, 1)


def test_two_servers_grouping_the_same_customers_never_deadlock():
    """Each server's groups take the accounts in customer order, whatever order the
    calls finished in, so two servers' groups never wait on each other in a cycle."""
    tool = _priced()
    owners = [funded_customer(400) for _ in range(4)]
    rounds, per_owner = 20, 3
    results: list = []

    def server(reverse: bool) -> None:
        async def work(database):
            for _ in range(rounds):
                holds = []
                for owner in reversed(owners) if reverse else owners:
                    holds += await _authorised(database, owner, tool, per_owner)
                results.extend(await _settle_together(database, holds))
            return database.groups_split

        split, _ = on_loop(work)
        results.append(("split", split))

    threads = [threading.Thread(target=server, args=(reverse,)) for reverse in (False, True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r for r in results if isinstance(r, tuple)] == [("split", 0), ("split", 0)]
    settled = [r for r in results if not isinstance(r, tuple)]
    assert len(settled) == 2 * rounds * len(owners) * per_owner
    assert all(not isinstance(s, Exception) and s.usage.charged for s in settled)
    for owner in owners:
        assert account_credits(owner) == (400 - 2 * rounds * per_owner, 0)


def test_without_group_commit_each_settle_goes_alone():
    owner, tool = funded_customer(30), _priced()

    async def main():
        database = LoopDatabase(size=4, group_commit=False)
        try:
            holds = await _authorised(database, owner, tool, 10)
            return await _settle_together(database, holds), database
        finally:
            await database.aclose()

    settled, database = anyio.run(main)

    assert database.grouped_transactions == 0
    assert all(s.usage.charged for s in settled)
    assert account_credits(owner) == (20, 0)
