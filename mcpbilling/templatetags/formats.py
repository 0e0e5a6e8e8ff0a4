"""Template filters for amounts: ``{{ usage.amount_microcents|microcents:usage.currency }}``."""

from __future__ import annotations

from django import template

from mcpbilling.formats import microcents_text, money_text

register = template.Library()


@register.filter
def microcents(value: int | None, currency: str = "usd") -> str:
    """Microcents as money text: 1000000 -> "$0.01"."""
    return microcents_text(value, currency or "usd")


@register.filter
def cents(value: int | None, currency: str = "usd") -> str:
    """Cents (Stripe's amounts) as money text: 1250 -> "$12.50"."""
    return "" if value is None else money_text(value, currency or "usd")
