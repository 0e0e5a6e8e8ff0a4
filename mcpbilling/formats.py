"""How amounts read on the customer's pages: money from its minor units, counts, credits.

Money is stored as integers (cents, or microcents: a millionth of a cent; ADR 0001);
these turn them into text only, never into floats.
"""

from __future__ import annotations

from decimal import Decimal

MICROCENTS_PER_CENT = 1_000_000
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$", "jpy": "¥"}
# Currencies whose minor unit is the whole unit (Stripe's zero-decimal currencies we sell in).
ZERO_DECIMAL = {"jpy", "krw"}


def _major(cents: Decimal, currency: str) -> Decimal:
    return cents if currency in ZERO_DECIMAL else cents / 100


def money_text(cents: Decimal | int, currency: str = "usd") -> str:
    """An amount in the currency's minor unit as a customer reads it: "$12.50", "$0.001".

    Whole cents show two decimals; a sub-cent amount shows the decimals it needs.
    """
    currency = (currency or "usd").lower()
    value = _major(Decimal(cents), currency)
    sign = "-" if value < 0 else ""
    value = abs(value)
    places = 0 if currency in ZERO_DECIMAL else 2
    text = f"{value:,.{places}f}"
    if Decimal(text.replace(",", "")) != value:  # finer than a cent: keep what it has
        text = f"{value.normalize():,f}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


def microcents_text(microcents: int | None, currency: str = "usd") -> str:
    """Microcents as money text; "" for None."""
    if microcents is None:
        return ""
    return money_text(Decimal(microcents) / MICROCENTS_PER_CENT, currency)


def money_to_microcents(amount: Decimal, currency: str = "usd") -> int:
    """An amount in the currency's major unit (dollars), as typed in a form, in microcents."""
    cents = amount if currency.lower() in ZERO_DECIMAL else amount * 100
    return int(cents * MICROCENTS_PER_CENT)


def microcents_to_money(microcents: int, currency: str = "usd") -> Decimal:
    """Microcents in the currency's major unit (dollars), for a form's initial value."""
    cents = Decimal(microcents) / MICROCENTS_PER_CENT
    return _major(cents, currency.lower()).normalize()
