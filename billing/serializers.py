"""DRF fields for billing's units: money kept in microcents, in the API a string of cents."""

from __future__ import annotations

import re
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import MICROCENTS_PER_CENT
from billing.services.pricing import microcents_to_decimal

CENTS_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,6})?$"


@extend_schema_field(
    {
        "type": "string",
        "pattern": CENTS_PATTERN,
        "example": "0.25",
        "description": "Cents, as Stripe's *_decimal fields write them (6 decimals at most).",
    }
)
class CentsDecimalField(serializers.Field):
    """Money stored in microcents (ADR 0001), in the API a string of cents: "0.25" is a
    quarter of a cent. Up to 10^12 cents, exact to the microcent."""

    default_error_messages = {
        "invalid": 'Write cents as a string of digits with at most 6 decimals, e.g. "0.25".',
    }

    def to_representation(self, value: int) -> str:
        return microcents_to_decimal(value)

    def to_internal_value(self, data) -> int:
        if isinstance(data, int) and not isinstance(data, bool):
            data = str(data)
        if not isinstance(data, str) or not re.fullmatch(CENTS_PATTERN, data):
            self.fail("invalid")
        return int(Decimal(data) * MICROCENTS_PER_CENT)


def id_string(value) -> str | None:
    """An id as the API writes ids: a string (None stays None)."""
    return None if value is None else str(value)
