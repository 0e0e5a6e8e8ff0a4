"""Spare holds through /mcp (docs/decisions/0010): one round trip for most calls, and no
credit left unusable in a spare when a call is refused."""

from __future__ import annotations

import time

import anyio
import pytest

from billing.models import CreditAccount, Hold, LedgerEntry, UsageRecord
from tests.factories import api_key
from tests.gateway.support import (
    balance,
    call,
    mcp_session,
    outcomes,
    refusal,
    serving,
    site_app,
)

pytestmark = pytest.mark.django_db(transaction=True)

CALC = ("calculate", {"expression": "6*7"})
COUNTED = ("counted", {"label": "x"})


def held(owner) -> int:
    return CreditAccount.objects.get(customer=owner).held_credits


def mixed_calls(calls: list[tuple[str, str, str, dict]]) -> list:
    """Each (site URL, token, tool, arguments) called at once, one client session each."""

    async def main() -> list:
        results = []

        async def one(url: str, token: str, name: str, arguments: dict) -> None:
            async with mcp_session(url, token) as client:
                results.append(await client.call_tool(name, arguments))

        async with anyio.create_task_group() as group:
            for url, token, name, arguments in calls:
                group.start_soon(one, url, token, name, arguments)
        return results

    return anyio.run(main)


def wait_until_nothing_held(owner, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while held(owner) and time.monotonic() < deadline:
        time.sleep(0.05)


def calls(url: str, key: str, count: int, tool=CALC) -> None:
    for _ in range(count):
        assert not call(url, key, *tool).is_error


def test_later_calls_of_a_key_and_tool_take_spares(on_postgres, site, funded):
    owner, key = funded(1000, rate_limit_per_minute=None)
    calls(site, key, 40)
    assert balance(owner) == 960
    # Authorisations ask 0, 1, 2, 4, 8, 16, 16 spares: 7 of 40 calls authorise.
    charged = Hold.objects.filter(status=Hold.Status.CAPTURED)
    assert charged.filter(spare=False).count() == 7
    assert charged.filter(spare=True).count() == 33
    assert held(owner) == 14  # the spares left of the last 16
    assert LedgerEntry.objects.filter(kind="debit").count() == 40


def test_a_key_calling_once_has_no_spares(on_postgres, site, funded):
    owner, key = funded(1000, rate_limit_per_minute=None)
    calls(site, key, 1)
    assert held(owner) == 0 and not Hold.objects.filter(spare=True).exists()


def test_unused_spares_go_back_when_idle(on_postgres, settings, funded, transactional_db):
    settings.GATEWAY_SPARE_HOLD_IDLE_S = 1.0  # long enough to see them held first
    owner, key = funded(1000, rate_limit_per_minute=None)
    with serving(site_app()) as url:
        calls(url, key, 4)
        assert held(owner) == 2
        wait_until_nothing_held(owner)
        assert held(owner) == 0
    assert balance(owner) == 996
    assert Hold.objects.filter(spare=True, status=Hold.Status.RETURNED).count() == 2
    assert UsageRecord.objects.count() == 4  # returned spares are no calls


def test_spares_go_back_when_the_server_stops(on_postgres, settings, funded, transactional_db):
    settings.GATEWAY_SPARE_HOLD_IDLE_S = 600
    owner, key = funded(1000, rate_limit_per_minute=None)
    with serving(site_app()) as url:
        calls(url, key, 4)
        assert held(owner) == 2
    assert held(owner) == 0 and balance(owner) == 996
    assert not Hold.objects.filter(status=Hold.Status.HELD).exists()


def test_spares_of_another_tool_do_not_refuse_a_call(on_postgres, site, funded):
    owner, key = funded(41, rate_limit_per_minute=None)
    calls(site, key, 4, tool=COUNTED)  # 2 spares of `counted` are left
    assert held(owner) == 2
    paid = 0
    while not (result := call(site, key, *CALC)).is_error:
        paid += 1
    assert refusal(result)["code"] == "insufficient_credits"
    assert paid == 37 and balance(owner) == 0 and held(owner) == 0


@pytest.mark.parametrize("idle_s", [2.0, 0.02], ids=["spares-kept", "spares-swept-meanwhile"])
def test_calls_of_two_keys_and_two_tools_at_once_charge_exactly_the_balance(
    on_postgres, settings, funded, transactional_db, idle_s
):
    settings.GATEWAY_SPARE_HOLD_IDLE_S = idle_s
    owner, first = funded(100, rate_limit_per_minute=None)
    second = api_key(owner).secret
    calls = [(token, *tool) for token in (first, second) for tool in (CALC, COUNTED)] * 50
    with serving(site_app()) as url:
        results = mixed_calls([(url, *call) for call in calls])
        assert held(owner) == 0  # no credit is left in a spare
    assert outcomes(results) == {"ok": 100, "insufficient_credits": 100}
    assert balance(owner) == 0
    assert UsageRecord.objects.filter(charged=True).count() == 100
    assert not Hold.objects.filter(status=Hold.Status.HELD).exists()


def test_two_servers_never_overdraw_and_free_their_spares(
    on_postgres, settings, funded, transactional_db
):
    """Across processes a call may be refused while the other holds spares (ADR 0010),
    never charged past the balance; once the spares go back the rest can be spent."""
    settings.GATEWAY_SPARE_HOLD_IDLE_S = 0.2
    owner, key = funded(100, rate_limit_per_minute=None)
    with serving(site_app()) as one, serving(site_app()) as two:
        first = outcomes(mixed_calls([(url, key, *CALC) for url in (one, two)] * 100))
        wait_until_nothing_held(owner)
        assert held(owner) == 0
        paid = first["ok"]
        assert paid <= 100 and balance(owner) == 100 - paid
        while not call(one, key, *CALC).is_error:
            paid += 1
    assert paid == 100 and balance(owner) == 0
    assert UsageRecord.objects.filter(charged=True).count() == 100
    assert not Hold.objects.filter(status=Hold.Status.HELD).exists()


def test_another_servers_idle_spares_refuse_early_until_given_back(
    on_postgres, settings, funded, transactional_db
):
    """The limit ADR 0010 accepts: credits in another process's spares are not free
    until it gives them back, at most GATEWAY_SPARE_HOLD_IDLE_S after its last call."""
    settings.GATEWAY_SPARE_HOLD_IDLE_S = 15  # longer than server two takes to spend the rest
    owner, key = funded(100, rate_limit_per_minute=None)
    with serving(site_app()) as one, serving(site_app()) as two:
        calls(one, key, 4)
        spared = held(owner)  # what server one keeps for its next calls
        assert spared == 2
        paid = 4
        while not (result := call(two, key, *CALC)).is_error:
            paid += 1
        assert refusal(result)["code"] == "insufficient_credits"
        assert paid == 100 - spared and held(owner) == spared
        wait_until_nothing_held(owner, timeout_s=30)
        while not call(two, key, *CALC).is_error:
            paid += 1
    assert paid == 100 and balance(owner) == 0


def test_with_spares_off_every_call_authorises(on_postgres, settings, funded, transactional_db):
    settings.GATEWAY_SPARE_HOLDS = 0
    owner, key = funded(1000, rate_limit_per_minute=None)
    with serving(site_app()) as url:
        for _ in range(3):
            assert not call(url, key, *CALC).is_error
    assert not Hold.objects.filter(spare=True).exists() and balance(owner) == 997
