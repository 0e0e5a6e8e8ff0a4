"""Rate limits per key and per key and tool: sliding windows, refused calls not counted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest

from billing.models import BillingModel
from customers.authentication import Principal
from mcpbilling.errors import ApplicationError
from mcpbilling.gateway.ratelimit import MemoryCounters, RateLimiter, rate_limiter
from tests.factories import PlanFactory, api_key, customer

pytestmark = pytest.mark.django_db

T0 = 1_800_000_000.0


def principal(**plan_fields) -> Principal:
    owner = customer(plan=PlanFactory(billing_model=BillingModel.CREDITS, **plan_fields))
    return Principal(customer=owner, api_key=api_key(owner).api_key)


def take(limiter: RateLimiter, who: Principal, tool: str = "calculate", *, now: float = T0):
    """None when the call may go on, else the refusal."""
    try:
        anyio.run(lambda: limiter.take(who, tool, now=now))
    except ApplicationError as exc:
        return exc
    return None


def test_the_call_past_the_limit_is_refused_with_a_retry_time():
    limiter, who = RateLimiter(MemoryCounters()), principal(rate_limit_per_minute=3)
    assert [take(limiter, who, now=T0 + i) for i in range(3)] == [None, None, None]
    refused = take(limiter, who, now=T0 + 10)
    assert refused.code == "rate_limited" and refused.status == 429
    assert refused.extra["retry_after_s"] == 50  # the first call leaves the window at T0 + 60
    assert take(limiter, who, now=T0 + 60) is None


def test_the_window_slides_so_no_edge_doubles_the_limit():
    limiter, who = RateLimiter(MemoryCounters()), principal(rate_limit_per_minute=2)
    assert take(limiter, who, now=T0 + 59) is None
    assert take(limiter, who, now=T0 + 59.5) is None
    assert take(limiter, who, now=T0 + 61) is not None  # a fixed window would have reset


def test_the_per_tool_limit_counts_each_tool_apart():
    limiter = RateLimiter(MemoryCounters())
    who = principal(rate_limit_per_minute=10, tool_rate_limit_per_minute=1)
    assert take(limiter, who, "calculate") is None
    assert "calculate" in take(limiter, who, "calculate").message
    assert take(limiter, who, "hash_text") is None


def test_a_refused_call_is_not_counted():
    limiter = RateLimiter(MemoryCounters())
    who = principal(rate_limit_per_minute=2, tool_rate_limit_per_minute=1)
    assert take(limiter, who, "calculate") is None
    assert take(limiter, who, "calculate") is not None  # tool limit; the key's count stays 1
    assert take(limiter, who, "hash_text") is None
    assert take(limiter, who, "json_query") is not None  # now the key's limit


def test_keys_are_limited_apart_and_no_limit_means_none():
    limiter = RateLimiter(MemoryCounters())
    first, second = principal(rate_limit_per_minute=1), principal(rate_limit_per_minute=1)
    assert take(limiter, first) is None and take(limiter, second) is None
    unlimited = principal(rate_limit_per_minute=None)
    assert all(take(limiter, unlimited) is None for _ in range(50))


def test_memory_counters_let_at_most_the_limit_through_from_many_threads():
    limiter, who = RateLimiter(MemoryCounters()), principal(rate_limit_per_minute=100)
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(lambda _: take(limiter, who), range(300)))
    assert sum(outcome is None for outcome in outcomes) == 100


def test_redis_counters_refuse_past_the_limit(on_redis):
    who = principal(rate_limit_per_minute=2)

    async def main():
        async with rate_limiter() as limiter:
            await limiter.take(who, "calculate", now=T0)
            await limiter.take(who, "calculate", now=T0 + 1)
            with pytest.raises(ApplicationError) as refused:
                await limiter.take(who, "calculate", now=T0 + 30)
            await limiter.take(who, "calculate", now=T0 + 60.5)
            return refused.value

    refused = anyio.run(main)
    assert refused.code == "rate_limited" and refused.extra["retry_after_s"] == 30
