"""Tool prices: versioned, never edited in place; quotes for a customer."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max

from billing.models import MICROCENTS_PER_CENT, Tool, ToolPeriodCounter, ToolPrice
from billing.rows import Result, execute
from mcpbilling.errors import ApplicationError


@dataclass(frozen=True)
class Quote:
    """What one call of a tool costs a customer now."""

    tool: Tool
    price: ToolPrice | None  # None: a free tool
    unit_amount_microcents: int
    credits: int | None
    currency: str
    tier: int | None = None  # index into price.tiers, when tiers decided it

    @property
    def unit_amount_decimal(self) -> str:
        return microcents_to_decimal(self.unit_amount_microcents)


def microcents_to_decimal(microcents: int) -> str:
    """Cents as Stripe's ``unit_amount_decimal`` writes them: "1", "0.25", "0.000001"."""
    value = Decimal(microcents) / MICROCENTS_PER_CENT
    text = format(value.normalize(), "f")
    return text


def decimal_to_microcents(value: str | Decimal) -> int:
    """Stripe's ``unit_amount_decimal`` (cents) in microcents; refuses finer than a microcent."""
    amount = Decimal(value) * MICROCENTS_PER_CENT
    if amount != amount.to_integral_value() or amount < 0:
        raise ApplicationError(
            "invalid_amount", f"{value} cents is not a whole number of microcents."
        )
    return int(amount)


def tiers_validate(tiers: list[dict]) -> list[dict]:
    """Normalise volume tiers: ascending ``up_to``, the last one open (None)."""
    if not tiers:
        return []
    clean, last = [], 0
    for position, tier in enumerate(tiers):
        up_to = tier.get("up_to")
        amount = tier.get("unit_amount_microcents")
        credits = tier.get("credits")
        is_last = position == len(tiers) - 1
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise ApplicationError("invalid_tiers", "Each tier needs unit_amount_microcents >= 0.")
        if credits is not None and (not isinstance(credits, int) or credits < 0):
            raise ApplicationError("invalid_tiers", "A tier's credits must be a whole number >= 0.")
        if is_last and up_to is not None:
            raise ApplicationError("invalid_tiers", "The last tier must have up_to null.")
        if not is_last and (not isinstance(up_to, int) or up_to <= last):
            raise ApplicationError("invalid_tiers", "up_to must be whole numbers, ascending.")
        clean.append({"up_to": up_to, "unit_amount_microcents": amount, "credits": credits})
        last = up_to or last
    return clean


def tool_price_set(
    *,
    tool: Tool,
    unit_amount_microcents: int,
    credits: int | None = None,
    currency: str = "usd",
    tiers: list[dict] | None = None,
    charge_failed_calls: bool = False,
) -> ToolPrice:
    """Give a tool a new price: a new version; the previous ones stay as they were."""
    if unit_amount_microcents < 0 or (credits is not None and credits < 0):
        raise ApplicationError("invalid_amount", "Prices cannot be negative.")
    clean_tiers = tiers_validate(tiers or [])
    for _ in range(5):
        version = (tool.prices.aggregate(v=Max("version"))["v"] or 0) + 1
        try:
            with transaction.atomic():
                return ToolPrice.objects.create(
                    tool=tool,
                    version=version,
                    currency=currency.lower(),
                    unit_amount_microcents=unit_amount_microcents,
                    credits=credits,
                    tiers=clean_tiers,
                    charge_failed_calls=charge_failed_calls,
                )
        except IntegrityError:  # another version was written at the same moment
            continue
    raise ApplicationError("price_conflict", "Could not write the new price version.", status=409)


# Price versions read so far. A version is never edited (a change is a new version),
# so it is kept for the life of the process; which version is active is read on every
# call. The key has the creation time too: an id a rolled-back transaction used may be
# given to another row.
_versions: dict[tuple, ToolPrice] = {}
_VERSIONS_KEPT = 10_000
# The key of the version last seen active, per tool id: what a call expects to find.
_last_active: dict[int, tuple] = {}


def _active_read(tool: Tool) -> Result:
    """The active version's key (id, created_at): the newest version, one indexed read."""
    return execute(
        f"SELECT id, created_at FROM {ToolPrice._meta.db_table} "  # noqa: S608
        "WHERE tool_id = %s ORDER BY version DESC LIMIT 1",
        [tool.pk],
    )


def _version(key: tuple | None) -> ToolPrice | None:
    if key is None:
        return None
    price = _versions.get(key)
    if price is None:
        price = ToolPrice.objects.get(pk=key[0])
        if len(_versions) >= _VERSIONS_KEPT:
            _versions.clear()
        _versions[key] = price
    return price


def _active_key(tool: Tool, read: Result) -> tuple | None:
    """The key ``read`` (an ``_active_read``) returned, remembered as the tool's active one."""
    row = read.row()
    key = tuple(row) if row is not None else None
    _last_active[tool.pk] = key
    return key


def tool_price_active(*, tool: Tool) -> ToolPrice | None:
    """The tool's current price: its newest version."""
    return _version(_active_key(tool, _active_read(tool)))


class PriceChanged(Exception):
    """Raised in a transaction that expected a price version no longer active: roll back."""


@dataclass(frozen=True)
class PriceCheck:
    """The version a call expects to be active; ``confirm`` checks it in the call's batch."""

    tool: Tool
    key: tuple | None  # the expected version's (id, created_at), as the active read returns it
    expected: ToolPrice | None

    def confirm(self) -> Result:
        """Queue the check that the expected version is still the newest one.

        A required statement: when a newer version came in meanwhile, the
        caller's transaction rolls back with ``PriceChanged`` (ask again with
        ``fresh=True``). Costs no round trip when the batch is sent anyway.
        Once its result ``ran``, what the transaction decided after it was
        decided at this price.
        """
        return execute(
            f"SELECT 1 FROM (SELECT id, created_at FROM {ToolPrice._meta.db_table} "  # noqa: S608
            "WHERE tool_id = %s ORDER BY version DESC LIMIT 1) AS active "
            "WHERE id = %s AND created_at = %s",
            [self.tool.pk, *self.key],
            required=PriceChanged(),
        )

    def still_active(self) -> bool:
        """Whether the expected version is the active one now (a read of its own)."""
        return _active_key(self.tool, _active_read(self.tool)) == self.key


def tool_price_expect(*, tool: Tool, fresh: bool = False) -> PriceCheck:
    """The tool's price as last seen active in this process (read when unknown or ``fresh``).

    ``expected`` is None when the tool has no price.
    """
    key = _last_active.get(tool.pk)
    if key is None or fresh:  # never read, or unpriced when last read
        key = _active_key(tool, _active_read(tool))
    return PriceCheck(tool, key, _version(key))


def price_at_position(price: ToolPrice, position: int) -> tuple[int, int | None, int | None]:
    """(microcents, credits, tier index) of the ``position``-th call (1-based) in a period."""
    for index, tier in enumerate(price.tiers):
        if tier["up_to"] is None or position <= tier["up_to"]:
            credits = tier["credits"] if tier["credits"] is not None else price.credits
            return tier["unit_amount_microcents"], credits, index
    return price.unit_amount_microcents, price.credits, None


def tool_quote(*, customer, tool: Tool, price: ToolPrice | None = None) -> Quote:
    """The price of the customer's next call of ``tool`` (its tier by this period's calls)."""
    if tool.is_free:
        return Quote(tool, None, 0, 0, customer.plan.currency if customer.plan else "usd")
    price = price or tool_price_active(tool=tool)
    if price is None:
        raise ApplicationError("tool_not_priced", f"Tool {tool.name!r} has no price.", status=404)
    position = 1
    if price.tiers:
        counted = (
            ToolPeriodCounter.objects.filter(
                customer=customer, tool=tool, period_start=customer.period_start
            )
            .values_list("calls", flat=True)
            .first()
        )
        position = (counted or 0) + 1
    amount, credits, tier = price_at_position(price, position)
    return Quote(tool, price, amount, credits, price.currency, tier)
