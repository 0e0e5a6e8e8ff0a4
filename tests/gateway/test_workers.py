"""Python tools run in worker processes: no tool can stall the server or other customers.

Through the real endpoint: a tool that holds the GIL in C code for minutes is
killed at its timeout and released, while another customer's calls keep
answering; a tool that asks for too much memory, or whose process dies, is an
error result that charges nothing; the pool carries on with new workers.
"""

from __future__ import annotations

import os
import threading
import time

import anyio
import pytest
from django.conf import settings

from billing.models import Hold, UsageRecord
from mcpbilling.gateway.workers import tool_workers
from tests.gateway.support import balance, call

pytestmark = pytest.mark.django_db(transaction=True)

TEST_MODULES = [*settings.MCP_TOOL_MODULES, "tests.gateway.tools_for_tests"]
# What "answering normally" allows while the hog runs: calls take milliseconds; a
# server whose loop is stalled answers none until the hog ends (minutes).
RESPONSIVE_S = 2.0


def _answers_while(site: str, key: str, busy: threading.Event) -> list[float]:
    """Call ``calculate`` again and again while ``busy`` is set; each call's seconds."""
    seconds = []
    while busy.is_set() or not seconds:
        started = time.perf_counter()
        result = call(site, key, "calculate", {"expression": "6 * 7"})
        seconds.append(time.perf_counter() - started)
        assert result.structured_content == {"result": 42}
    return seconds


def test_python_tools_run_outside_the_server_process(site, funded):
    _, key = funded(10)
    result = call(site, key, "whoami")
    assert not result.is_error
    assert result.structured_content["result"] != os.getpid()


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("hog", {}),  # C code holding the GIL for minutes; killed at its 1 s timeout
        ("calculate", {"expression": "round(1, -10**8)"}),  # bounded: answers at once
    ],
)
def test_a_cpu_hog_never_stalls_another_customers_calls(site, funded, tool, arguments):
    hogger, hogger_key = funded(10)
    other, other_key = funded(100)
    busy = threading.Event()
    busy.set()
    outcome: dict = {}

    def hog() -> None:
        try:
            outcome["result"] = call(site, hogger_key, tool, arguments)
        finally:
            busy.clear()

    thread = threading.Thread(target=hog)
    thread.start()
    seconds = _answers_while(site, other_key, busy)
    thread.join(timeout=60)

    assert max(seconds) < RESPONSIVE_S, seconds
    result = outcome["result"]
    if tool == "hog":
        assert result.is_error and "did not finish within 1 s" in result.content[0].text
        usage = UsageRecord.objects.select_related("hold").get(customer=hogger)
        assert usage.outcome == "timeout" and usage.hold.status == Hold.Status.RELEASED
        assert balance(hogger) == 10
    else:
        assert result.structured_content == {"result": 0}
    assert balance(other) == 100 - len(seconds)
    # The pool goes on: the killed worker was replaced.
    assert call(site, hogger_key, "calculate", {"expression": "1 + 1"}).structured_content == {
        "result": 2
    }


def test_a_tool_asking_for_too_much_memory_is_an_error_and_charges_nothing(site, funded, settings):
    owner, key = funded(10)
    result = call(site, key, "allocate", {"megabytes": settings.MCP_TOOL_MEMORY_MB + 256})
    assert result.is_error and "ran out of memory" in result.content[0].text
    assert balance(owner) == 10
    assert call(site, key, "allocate", {"megabytes": 1}).structured_content == {
        "result": 1024 * 1024
    }
    assert balance(owner) == 9


def test_a_worker_that_dies_mid_call_is_an_error_and_is_replaced(site, funded):
    owner, key = funded(10)
    result = call(site, key, "die")
    assert result.is_error and "failed" in result.content[0].text
    assert UsageRecord.objects.get(customer=owner).hold.status == Hold.Status.RELEASED
    assert balance(owner) == 10
    for _ in range(settings.MCP_TOOL_WORKERS + 1):  # every worker answers again
        assert not call(site, key, "whoami").is_error


def _pool_run(work):
    async def main():
        async with (
            anyio.create_task_group() as group,
            tool_workers(group, size=1, modules=TEST_MODULES, memory_mb=0) as workers,
        ):
            return await work(workers)

    return anyio.run(main)


def test_a_call_past_its_cpu_seconds_ends_its_worker():
    async def work(workers):
        result = await workers.run("spin", {"seconds": 5.0}, cpu_s=1.0)
        after = await workers.run("spin", {"seconds": 0.01}, cpu_s=1.0)
        return result, after

    result, after = _pool_run(work)
    assert result.is_error and "more CPU time than its limit" in result.content[0].text
    assert after.structured_content == {"result": 0.01}


def test_a_cancelled_call_kills_its_worker_and_a_new_one_serves_the_next():
    async def work(workers):
        first = (await workers.run("whoami", {}, cpu_s=1.0)).structured_content["result"]
        with anyio.move_on_after(0.5):
            await workers.run("spin", {"seconds": 30.0}, cpu_s=60.0)
        second = (await workers.run("whoami", {}, cpu_s=1.0)).structured_content["result"]
        return first, second

    first, second = _pool_run(work)
    assert first != second
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # the cancelled call's worker is gone
