"""billed_call in process: a cancelled call leaves nothing reserved and charges nothing."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from django.conf import settings

from billing.models import Hold, UsageRecord
from customers.authentication import authenticate
from mcpbilling.gateway import billing
from mcpbilling.gateway.catalog import offers_load
from mcpbilling.gateway.ratelimit import MemoryCounters, RateLimiter
from mcpbilling.gateway.registry import tools_sync_python
from mcpbilling.gateway.upstream import UpstreamPool
from mcpbilling.gateway.workers import tool_workers
from tests.gateway import tools_for_tests
from tests.gateway.support import balance

# Worker threads write the rows: they must see committed data.
pytestmark = pytest.mark.django_db(transaction=True)


def cancelled_once(started: threading.Event, principal, offer, arguments) -> None:
    """Start a billed call and cancel it as soon as ``started`` is set."""

    async def main() -> None:
        async with (
            anyio.create_task_group() as group,
            tool_workers(group, size=1, modules=settings.MCP_TOOL_MODULES, memory_mb=0) as workers,
        ):
            group.start_soon(
                lambda: billing.billed_call(
                    principal=principal,
                    offer=offer,
                    arguments=arguments,
                    idempotency_key=None,
                    limiter=RateLimiter(MemoryCounters()),
                    upstreams=UpstreamPool(group),
                    workers=workers,
                )
            )
            while not started.is_set():
                await anyio.sleep(0.005)
            group.cancel_scope.cancel()

    anyio.run(main)


@pytest.fixture
def prepared(funded):
    tools_sync_python()
    owner, key = funded(10)
    return owner, authenticate(token=key), offers_load()


def test_a_call_cancelled_while_the_tool_runs_is_released(prepared):
    owner, principal, offers = prepared
    tools_for_tests.hanging.clear()
    cancelled_once(tools_for_tests.hanging, principal, offers["hang"], {})
    hold = Hold.objects.get()
    assert hold.status == Hold.Status.RELEASED
    assert UsageRecord.objects.get().outcome == UsageRecord.Outcome.CANCELLED
    assert balance(owner) == 10


def test_a_call_cancelled_while_it_is_authorised_is_released(prepared, monkeypatch):
    owner, principal, offers = prepared
    authorised = threading.Event()
    call_begin = billing.call_begin

    def slow_begin(**kwargs):
        begun = call_begin(**kwargs)
        authorised.set()
        time.sleep(0.2)  # the caller is cancelled while the hold is being written
        return begun

    monkeypatch.setattr(billing, "call_begin", slow_begin)
    cancelled_once(authorised, principal, offers["calculate"], {"expression": "1"})
    assert Hold.objects.get().status == Hold.Status.RELEASED
    assert balance(owner) == 10
