"""A spare's capture written ahead (docs/decisions/0012): the engine's statements for all
spares of the same terms, filled and sent for each call without running a phase."""

from __future__ import annotations

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from billing import rows
from billing.models import CreditLot, Hold, LedgerEntry, UsageRecord
from billing.services.calls import (
    call_authorize_ahead,
    call_capture,
    credits_capture,
    spares_return,
)
from mcpbilling.errors import ApplicationError
from mcpbilling.gateway.db import run_phase, run_phase_grouped
from mcpbilling.gateway.spares import SpareHolds
from tests.factories import priced_tool
from tests.gateway.support import account_credits, funded_customer, on_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres(on_postgres):
    pass


def _spares(owner, tool, count):
    """A call's hold and ``count`` spares, authorised on the loop."""

    async def work(database):
        return await run_phase(
            database, call_authorize_ahead, customer=owner, tool=tool, api_key=None, spares=count
        )

    (hold, spares), _ = on_loop(work)
    return hold, spares


def _capture_both_ways(owner, tool):
    """A call's hold captured by the engine's phase, then four spares written ahead;
    returns (the hold, the spares, their settlements, the spares' holder)."""
    hold, spares = _spares(owner, tool, 4)

    async def work(database):
        holder = SpareHolds(database, per_pool=16, idle_s=60)
        await run_phase_grouped(database, owner.pk, call_capture, hold=hold)  # prepares
        phases = database.phases_on_loop
        settled = [await holder.capture(spare, duration_ms=5) for spare in spares]
        assert database.phases_on_loop == phases  # no phase ran for them
        return settled, holder

    (settled, holder), _ = on_loop(work)
    return hold, spares, settled, holder


def _row(model, pk, *varying) -> dict:
    return model_to_dict(model.objects.get(pk=pk), exclude=["id", *varying])


def test_spares_captured_ahead_write_what_the_engine_writes():
    owner, tool = funded_customer(100), priced_tool("echo", credits=3)
    hold, spares, settled, holder = _capture_both_ways(owner, tool)

    assert [s.balance_credits for s in settled] == [94, 91, 88, 85]
    assert account_credits(owner) == (85, 0)
    assert sum(CreditLot.objects.values_list("remaining_credits", flat=True)) == 85
    assert len(holder._captures) == 1  # one capture written for the four spares
    engine = UsageRecord.objects.get(hold_id=hold.pk)
    for spare, settlement in zip(spares, settled, strict=True):
        usage = UsageRecord.objects.get(pk=settlement.usage.pk)
        assert usage.hold_id == spare.pk and usage.duration_ms == 5
        varying = ("hold", "duration_ms")
        assert _row(UsageRecord, usage.pk, *varying) == _row(UsageRecord, engine.pk, *varying)
        assert model_to_dict(settlement.usage, exclude=["hold"]) == model_to_dict(
            usage, exclude=["hold"]
        )
        entry = LedgerEntry.objects.get(usage=usage)
        engine_entry = LedgerEntry.objects.get(usage=engine)
        assert entry.idempotency_key == f"call:{spare.pk}"
        assert entry.balance_after_credits == settlement.balance_credits
        varying = ("usage", "idempotency_key", "balance_after_credits")
        assert _row(LedgerEntry, entry.pk, *varying) == _row(LedgerEntry, engine_entry.pk, *varying)
        stored = Hold.objects.get(pk=spare.pk)
        assert stored.status == Hold.Status.CAPTURED == spare.status
        assert stored.settled_at == usage.created_at == entry.created_at == spare.settled_at


def test_a_spare_given_back_meanwhile_is_not_captured_ahead_and_the_engine_answers():
    owner, tool = funded_customer(100), priced_tool("echo", credits=3)
    hold, spares = _spares(owner, tool, 2)
    spares_return(holds=spares[:1])

    async def work(database):
        holder = SpareHolds(database, per_pool=16, idle_s=60)
        await run_phase_grouped(database, owner.pk, call_capture, hold=hold)  # prepares
        return await holder.capture(spares[0], duration_ms=1)

    settled, _ = on_loop(work)

    assert settled is None  # refused by the database's check: nothing was written
    with pytest.raises(ApplicationError) as info:
        call_capture(hold=spares[0])
    assert info.value.code == "hold_lost"
    assert account_credits(owner) == (97, 3)  # the other spare still held
    assert UsageRecord.objects.count() == 1


def test_a_session_that_has_not_prepared_the_statements_leaves_the_capture_to_the_engine():
    owner, tool = funded_customer(100), priced_tool("echo", credits=3)
    _, spares = _spares(owner, tool, 2)

    async def work(database):
        holder = SpareHolds(database, per_pool=16, idle_s=60)
        first = await holder.capture(spares[0], duration_ms=1)  # a new session
        await run_phase_grouped(database, owner.pk, call_capture, hold=spares[0])
        return first, await holder.capture(spares[1], duration_ms=1)

    (first, second), _ = on_loop(work)

    assert first is None and second.balance_credits == 94
    assert UsageRecord.objects.filter(hold__spare=True).count() == 2


def test_a_capture_written_ahead_is_the_string_a_batch_sends():
    owner, tool = funded_customer(100), priced_tool("echo", credits=3)
    hold, spares = _spares(owner, tool, 1)
    call_capture(hold=hold)  # prepares the statements in this session
    capture = credits_capture(spares[0])
    values, _ = capture.fill(
        spares[0], outcome="success", duration_ms=2, response=None, now=timezone.now()
    )
    connection.ensure_connection()
    state = rows._session_state(connection)
    written = rows.transaction_text(state, capture.statements, values)
    with rows.queries_sent() as sent, rows.atomic():
        rows.execute_filled(capture.statements, values)
    assert sent == [written.decode()]
    assert account_credits(owner) == (94, 0)
