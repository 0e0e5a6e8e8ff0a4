"""DRF fields and filters of the API's conventions: money kept in microcents is a string of
cents, ids are whole numbers in query strings, Stripe's Unix times are ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import django_filters
from django import forms
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
        "whole": 'Write whole cents here, e.g. "1000".',
    }

    def __init__(self, *, stored_in_cents: bool = False, **kwargs):
        """``stored_in_cents``: the field keeps whole cents (a plan's price), not microcents."""
        self.stored_in_cents = stored_in_cents
        super().__init__(**kwargs)

    def to_representation(self, value: int) -> str:
        return str(value) if self.stored_in_cents else microcents_to_decimal(value)

    def to_internal_value(self, data) -> int:
        if isinstance(data, int) and not isinstance(data, bool):
            data = str(data)
        if not isinstance(data, str) or not re.fullmatch(CENTS_PATTERN, data):
            self.fail("invalid")
        microcents = int(Decimal(data) * MICROCENTS_PER_CENT)
        if not self.stored_in_cents:
            return microcents
        if microcents % MICROCENTS_PER_CENT:
            self.fail("whole")
        return microcents // MICROCENTS_PER_CENT


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^-?[0-9]{1,13}(\.[0-9]{1,6})?$",
        "example": "-0.25",
        "description": "Cents, signed (read only).",
    }
)
class SignedCentsDecimalField(CentsDecimalField):
    """A signed amount of microcents (a difference), shown as cents; read only."""

    def to_internal_value(self, data):
        raise NotImplementedError("a read-only field")


class IdFilter(django_filters.NumberFilter):
    """A database id in a query string (``?customer=42``): whole, and small enough for a column."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 10**18 - 1)
        super().__init__(*args, **kwargs)


class UnixTimeField(serializers.DateTimeField):
    """A time Stripe writes as Unix seconds, in the API as ISO 8601 UTC."""

    def to_representation(self, value):
        if value is None:
            return None
        return super().to_representation(datetime.fromtimestamp(int(value), tz=UTC))


class SlugLookupField(serializers.SlugRelatedField):
    """An object named by its slug; text that cannot be a slug is refused before any query
    (a NUL byte would reach PostgreSQL otherwise)."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(r"[-a-zA-Z0-9_]{1,50}", data):
            self.fail("does_not_exist", slug_name=self.slug_field, value="(not a slug)")
        return super().to_internal_value(data)
