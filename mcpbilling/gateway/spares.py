"""Spare holds: calls authorised ahead, so that most billed calls cost one round trip.

A call that finds no spare is authorised as always, and its transaction also
reserves more holds like its own (``call_authorize_ahead``): none for the
first call of a key and tool, then 1, 2, 4... up to ``GATEWAY_SPARE_HOLDS``
while the key keeps calling. The next calls of the same key and tool in this
process take one of those instead of authorising: no database round trip
before the tool runs, only the settle after it (docs/decisions/0010).

A spare is a real hold, so the balance is never overdrawn and the settle is
the same as for any call. What this process must get right is that credits
sitting in its spares never refuse a call they could pay for:

- a spare is given only to a call the plan still admits, at the price the
  catalog offers, in the customer's current period, with time left to run;
- a call refused ``insufficient_credits`` waits for this customer's
  reservations and give-backs in flight, takes a spare if one fits, and
  otherwise gives back the customer's other spares and asks again, for as
  long as give-backs freed credits since it last asked; after a refusal no
  spares are reserved for the customer for ``PAUSE_S``;
- while a pool's spares are on their way, its calls wait for them instead
  of authorising on their own, unless its last fill brought none (another
  billing model, a tiered price, a budget, little left free): then its calls
  authorise alone, without asking, for ``PAUSE_S``;
- spares unused for ``GATEWAY_SPARE_HOLD_IDLE_S`` go back, as do all of them
  when the server stops. Another process's spares can refuse a call early
  only for that long; a crashed process's are returned by the stale-hold sweep.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import anyio
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections
from django.utils import timezone

from billing.models import Hold, UsageRecord
from billing.rows import refused, transaction_text
from billing.services.calls import (
    CreditsCapture,
    Settlement,
    call_admissible,
    call_authorize_ahead,
    capture_terms,
    credits_capture,
    spares_return,
)
from customers.authentication import Principal
from mcpbilling.errors import ApplicationError
from mcpbilling.gateway.catalog import Offer
from mcpbilling.gateway.db import LoopDatabase, run_phase

logger = logging.getLogger(__name__)
Outcome = UsageRecord.Outcome

# After a refusal, or a fill that brought no spares, none are asked for this long.
PAUSE_S = 10.0
# A refused call asks again only after give-backs freed credits; this bounds a storm.
_ASK_AT_MOST = 8
# Captures written ahead kept at most (one per key, tool and price in use, in practice).
_CAPTURES_KEPT = 1024
# A spare is given only to a call that can finish this long before the hold expires.
_SETTLE_MARGIN = timedelta(seconds=60)

PoolKey = tuple[int, int | None, int]  # customer, API key (None: a JWT), tool


@dataclass
class _Pool:
    holds: deque[Hold] = field(default_factory=deque)
    used_at: float = field(default_factory=time.monotonic)  # of the last take or ask
    asked: int = 0  # authorisations of the pool's key and tool since it was made
    filled: anyio.Event | None = None  # set once the spares asked for it came (or not)
    barren_until: float = float("-inf")  # a fill brought none: none are asked till then


@dataclass
class _Customer:
    calls: int = 0  # calls authorising
    busy: int = 0  # authorisations asking spares and give-backs, in flight
    settled: anyio.Event = field(default_factory=anyio.Event)  # set when busy drops to 0
    returned: int = 0  # give-backs finished
    refused_at: float = float("-inf")

    @asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """Around anything that changes what the customer has in spares here."""
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            if not self.busy:
                self.settled.set()
                self.settled = anyio.Event()

    async def quiet(self) -> None:
        while self.busy:
            await self.settled.wait()


def _key(principal: Principal, offer: Offer) -> PoolKey:
    api_key = principal.api_key
    return (principal.customer.pk, api_key.pk if api_key is not None else None, offer.tool.pk)


class SpareHolds:
    """This process's spare holds, by customer, API key and tool. Used on the event
    loop only (no locks): takes and fills happen between awaits."""

    def __init__(self, database: LoopDatabase | None, *, per_pool: int, idle_s: float) -> None:
        self.database = database
        self.per_pool = per_pool
        self.idle_s = idle_s
        self._pools: dict[PoolKey, _Pool] = {}
        self._customers: dict[int, _Customer] = {}
        self._stale: list[Hold] = []  # out of their pools, to be given back
        self._captures: dict[tuple, CreditsCapture] = {}  # by their terms

    def take(self, principal: Principal, offer: Offer) -> Hold | None:
        """A spare for this call, or None. Raises what ``call_admissible`` refuses."""
        pool = self._pools.get(_key(principal, offer))
        if pool is None or not pool.holds:
            return None
        customer, now = principal.customer, timezone.now()
        call_admissible(customer=customer, tool=offer.tool, api_key=principal.api_key)
        spare = pool.holds[0]
        fits = (
            offer.price is not None
            and spare.price_id == offer.price.pk
            and spare.plan_id == customer.plan_id
            and spare.period_start == customer.period_start
            and customer.period_end > now
            and spare.expires_at - now > timedelta(seconds=offer.timeout_s) + _SETTLE_MARGIN
        )
        if not fits:  # none of the pool fits any more: the idle sweep gives them back
            self._stale.extend(pool.holds)
            pool.holds.clear()
            return None
        pool.used_at = time.monotonic()
        return pool.holds.popleft()

    async def _reserve(
        self, principal: Principal, offer: Offer, spares: int
    ) -> tuple[Hold, list[Hold]]:
        return await run_phase(
            self.database,
            call_authorize_ahead,
            customer=principal.customer,
            tool=offer.tool,
            api_key=principal.api_key,
            spares=spares,
        )

    async def capture(self, hold: Hold, *, duration_ms: int) -> Settlement | None:
        """Capture the successful call a spare paid for, its statements written ahead
        for all spares of the same terms (docs/decisions/0012); None when the engine
        must settle it (a statement not yet prepared, a refusal: nothing was written).
        """
        if not Hold.tool.field.is_cached(hold):  # the description names the tool
            return None
        database = self.database
        captures = self._captures
        capture = captures.get(capture_terms(hold))
        if capture is None:
            if len(captures) >= _CAPTURES_KEPT:
                captures.clear()
            capture = database.run_sync(credits_capture, hold)
            captures[capture.terms] = capture
        now = timezone.now()
        values, usage = database.run_sync(
            capture.fill,
            hold,
            outcome=Outcome.SUCCESS,
            duration_ms=duration_ms,
            response=None,
            now=now,
        )
        statements = capture.statements
        try:
            sets = await database.send_written(
                hold.customer_id,
                lambda state: transaction_text(state, statements, values),
                len(statements),
            )
        except DatabaseError as exc:
            if refused(exc) or isinstance(exc, IntegrityError):  # undone: the engine decides
                return None
            raise
        if sets is None:
            return None
        hold.status, hold.settled_at = Hold.Status.CAPTURED, now
        ((_, balance),) = sets[0][1]
        return Settlement(usage=usage, balance_credits=balance)

    async def give_back(self, holds: list[Hold]) -> int:
        customers = [self._customer(i) for i in sorted({hold.customer_id for hold in holds})]
        async with AsyncExitStack() as changes:
            for customer in customers:
                await changes.enter_async_context(customer.changing())
            returned = await run_phase(self.database, spares_return, holds=holds)
            for customer in customers:
                customer.returned += 1
        return returned

    async def authorise(self, principal: Principal, offer: Offer) -> Hold:
        """Authorise the call, asking spares for the next calls of its key and tool when
        they have none left and none are on their way.

        A refusal ``insufficient_credits`` is final only once no credits can be
        in this process's spares for the customer: it waits for what is in
        flight, takes a spare of its own if one came, gives back the others and
        asks again while give-backs freed credits since it last asked.
        """
        customer = self._customer(principal.customer.pk)
        customer.calls += 1
        try:
            return await self._authorise(customer, principal, offer)
        finally:
            customer.calls -= 1

    async def _authorise(self, customer: _Customer, principal: Principal, offer: Offer) -> Hold:
        key = _key(principal, offer)
        for asked in range(1, _ASK_AT_MOST + 1):
            returned = customer.returned
            try:
                return await self._ask(customer, key, principal, offer)
            except ApplicationError as exc:
                if exc.code != "insufficient_credits":
                    raise
                customer.refused_at = time.monotonic()
                await customer.quiet()
                spare = self.take(principal, offer)
                if spare is not None:
                    return spare
                if asked == _ASK_AT_MOST:
                    raise
                others = self._drain(lambda pool_key: pool_key[0] == key[0], key[0])
                if others:
                    await self.give_back(others)
                elif customer.returned == returned:
                    raise
        raise AssertionError("unreachable: the last refusal is raised")

    async def _ask(
        self, customer: _Customer, key: PoolKey, principal: Principal, offer: Offer
    ) -> Hold:
        pool = self._pools.setdefault(key, _Pool())
        barren = time.monotonic() < pool.barren_until
        if pool.filled is not None and not barren:  # on their way: a round trip either way
            await pool.filled.wait()
            spare = self.take(principal, offer)
            if spare is not None:
                return spare
        # None for a key and tool's first call, then 1, 2, 4... up to per_pool: a key
        # calling now and then never has spares to give back.
        wanted = min(self.per_pool, 2 ** (pool.asked - 1)) if pool.asked else 0
        pool.asked += 1
        pool.used_at = time.monotonic()
        recently_refused = time.monotonic() - customer.refused_at <= PAUSE_S
        if not wanted or pool.holds or pool.filled is not None or recently_refused or barren:
            hold, _ = await self._reserve(principal, offer, 0)
            return hold
        filled = pool.filled = anyio.Event()
        try:
            async with customer.changing():
                hold, spares = await self._reserve(principal, offer, wanted)
                # To the key's pool as it is now (an idle one may have gone meanwhile).
                current = self._pools.setdefault(key, pool)
                current.holds.extend(spares)
                current.used_at = time.monotonic()
                if not spares:  # not this plan or price, or too little free: calls go alone
                    current.barren_until = current.used_at + PAUSE_S
        finally:
            pool.filled = None
            filled.set()
        return hold

    def idle(self) -> list[Hold]:
        """Take out the spares of pools unused for ``idle_s`` and those no call fits any
        more, to be given back; forget customers with nothing going on."""
        now = time.monotonic()

        def idle(key: PoolKey) -> bool:
            pool = self._pools[key]
            return pool.filled is None and pool.used_at <= now - self.idle_s

        holds = self._drain(idle)
        for customer_id, customer in list(self._customers.items()):
            quiet = not (customer.calls or customer.busy)
            if quiet and now - customer.refused_at > PAUSE_S:
                del self._customers[customer_id]
        return holds

    def drain_all(self) -> list[Hold]:
        return self._drain(lambda key: True)

    def _drain(
        self, which: Callable[[PoolKey], bool], customer_id: int | None = None
    ) -> list[Hold]:
        """Take out the spares of the pools ``which`` picks, and the stale spares (of
        ``customer_id`` only, when given)."""
        holds = [h for h in self._stale if customer_id in (None, h.customer_id)]
        self._stale = [h for h in self._stale if customer_id not in (None, h.customer_id)]
        for key in [key for key in self._pools if which(key)]:
            holds.extend(self._pools.pop(key).holds)
        return holds

    def _customer(self, customer_id: int) -> _Customer:
        return self._customers.setdefault(customer_id, _Customer())

    async def return_idle(self) -> None:
        """Give back idle spares every second, for as long as the server runs."""
        while True:
            await anyio.sleep(min(1.0, self.idle_s))
            await self._give_back_logged(self.idle())

    async def close(self) -> None:
        """Give back every spare: the server stops."""
        await self._give_back_logged(self.drain_all())

    async def _give_back_logged(self, holds: list[Hold]) -> None:
        if not holds:
            return
        try:
            with anyio.CancelScope(shield=True):  # a return once begun is finished
                await self.give_back(holds)
        except Exception:  # the stale-hold sweep returns them once they expire
            logger.exception("could not give back %d spare holds", len(holds))


def spare_holds(database: LoopDatabase | None) -> SpareHolds | None:
    """The process's spares, or None: turned off (``GATEWAY_SPARE_HOLDS`` 0), or the
    database is not PostgreSQL (SQLite's authorisation is no network round trip)."""
    if settings.GATEWAY_SPARE_HOLDS <= 0 or connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        return None
    return SpareHolds(
        database, per_pool=settings.GATEWAY_SPARE_HOLDS, idle_s=settings.GATEWAY_SPARE_HOLD_IDLE_S
    )
