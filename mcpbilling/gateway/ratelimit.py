"""Calls per minute per API key, and per key and tool, as the customer's plan sets them.

Sliding windows: a call is let through when fewer than the limit were let
through in the 60 seconds before it, so no burst at a window's edge ever
doubles the limit. With ``REDIS_URL`` each counter is a sorted set of call
times in Redis and one Lua script checks every limit and records the call
only if all of them allow it, atomically across processes. Without Redis the
same log lives in this process's memory under a lock (the local-memory cache
is per process too, and its API has no atomic list operation). A refused
call is not recorded.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import redis.asyncio as aioredis
from django.conf import settings

from customers.authentication import Principal
from mcpbilling.errors import ApplicationError

WINDOW_S = 60

# KEYS: the counters; ARGV: now (ms), window (ms), this call's id, then each KEYS[i]'s limit.
# Returns {0, 0} when the call is recorded, else {i, ms until KEYS[i] has room}.
TAKE_SCRIPT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {i, math.max(0, tonumber(oldest[2]) + window - now)}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return {0, 0}
"""


class Counters(Protocol):
    async def take(self, limits: list[tuple[str, int]], now: float) -> tuple[int, float]:
        """Record a call against every (counter, limit) if all allow it.

        Returns (0, 0), or (position of the first limit reached, 1-based;
        seconds until it lets a call through).
        """


class RedisCounters:
    def __init__(self, client: aioredis.Redis) -> None:
        self._script = client.register_script(TAKE_SCRIPT)

    async def take(self, limits: list[tuple[str, int]], now: float) -> tuple[int, float]:
        args = [int(now * 1000), WINDOW_S * 1000, uuid.uuid4().hex, *(n for _, n in limits)]
        reached, wait_ms = await self._script(keys=[key for key, _ in limits], args=args)
        return int(reached), int(wait_ms) / 1000


class MemoryCounters:
    """The same sliding log in this process's memory."""

    def __init__(self) -> None:
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept_at = 0.0

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def _recent(self, key: str, now: float) -> deque[float]:
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - WINDOW_S:
            calls.popleft()
        return calls

    def _sweep(self, now: float) -> None:
        """Forget counters with no call in the window (once a window)."""
        if now - self._swept_at < WINDOW_S:
            return
        self._swept_at = now
        for key in [
            key for key, calls in self._calls.items() if not calls or calls[-1] <= now - WINDOW_S
        ]:
            del self._calls[key]

    async def take(self, limits: list[tuple[str, int]], now: float) -> tuple[int, float]:
        with self._lock:
            self._sweep(now)
            logs = [self._recent(key, now) for key, _ in limits]
            for position, (log, (_, limit)) in enumerate(zip(logs, limits, strict=True), start=1):
                if len(log) >= limit:
                    return position, (log[0] + WINDOW_S - now) if log else WINDOW_S
            for log in logs:
                log.append(now)
            return 0, 0.0


class RateLimiter:
    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    async def take(self, principal: Principal, tool_name: str, *, now: float | None = None) -> None:
        """Record a call of ``tool_name``, or raise ``rate_limited`` with ``retry_after_s``."""
        plan = principal.customer.plan
        if plan is None:
            return
        prefix = f"mcpb:rl:{principal.rate_key}"
        limits: list[tuple[str, int, str]] = []  # (counter, limit, what it counts)
        if plan.rate_limit_per_minute is not None:
            limits.append((prefix, plan.rate_limit_per_minute, "calls per minute"))
        if plan.tool_rate_limit_per_minute is not None:
            counted = f"calls of {tool_name} per minute"
            limits.append((f"{prefix}:{tool_name}", plan.tool_rate_limit_per_minute, counted))
        if not limits:
            return
        now = time.time() if now is None else now
        reached, wait_s = await self.counters.take([(key, n) for key, n, _ in limits], now)
        if reached:
            _, limit, counted = limits[reached - 1]
            retry_after_s = max(1, math.ceil(wait_s))
            raise ApplicationError(
                "rate_limited",
                f"At most {limit} {counted}; retry in {retry_after_s} s.",
                status=429,
                retry_after_s=retry_after_s,
            )


memory_counters = MemoryCounters()  # shared by every server of this process, as Redis would be


@asynccontextmanager
async def rate_limiter() -> AsyncIterator[RateLimiter]:
    """The limiter for this event loop: Redis when ``REDIS_URL`` is set, else memory."""
    if not settings.REDIS_URL:
        yield RateLimiter(memory_counters)
        return
    # A bounded pool that makes a call wait for a free connection: redis-py's default
    # pool raises "Too many connections" past 100 in flight instead of waiting.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=settings.REDIS_POOL_TIMEOUT_S,
    )
    client = aioredis.Redis(connection_pool=pool)
    try:
        yield RateLimiter(RedisCounters(client))
    finally:
        await client.aclose()
        await pool.aclose()
