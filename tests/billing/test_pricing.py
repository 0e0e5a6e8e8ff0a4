"""Prices: microcents, versions and volume tiers."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.models import ToolPrice
from billing.services.pricing import (
    decimal_to_microcents,
    microcents_to_decimal,
    price_at_position,
    tiers_validate,
    tool_price_set,
)
from mcpbilling.errors import ApplicationError
from tests.factories import ToolFactory


@pytest.mark.parametrize(
    ("microcents", "text"),
    [(1_000_000, "1"), (250_000, "0.25"), (1, "0.000001"), (0, "0"), (123_000_000, "123")],
)
def test_microcents_read_as_stripe_unit_amount_decimal(microcents, text):
    assert microcents_to_decimal(microcents) == text
    assert decimal_to_microcents(text) == microcents


@given(st.integers(min_value=0, max_value=10**15))
def test_decimal_round_trip(microcents):
    assert decimal_to_microcents(microcents_to_decimal(microcents)) == microcents


@pytest.mark.parametrize("text", ["0.0000001", "-1"])
def test_finer_than_a_microcent_or_negative_is_refused(text):
    with pytest.raises(ApplicationError):
        decimal_to_microcents(text)


@pytest.mark.django_db
def test_a_new_price_is_a_new_version_and_the_old_one_stays():
    tool = ToolFactory()
    first = tool_price_set(tool=tool, unit_amount_microcents=100, credits=1)
    second = tool_price_set(tool=tool, unit_amount_microcents=200, credits=2)
    assert (first.version, second.version) == (1, 2)
    first.refresh_from_db()
    assert first.unit_amount_microcents == 100
    assert ToolPrice.objects.filter(tool=tool).count() == 2


@pytest.mark.parametrize(
    "tiers",
    [
        [{"up_to": 10, "unit_amount_microcents": 5}],  # last tier must be open
        [
            {"up_to": None, "unit_amount_microcents": 5},
            {"up_to": None, "unit_amount_microcents": 1},
        ],
        [
            {"up_to": 10, "unit_amount_microcents": 5},
            {"up_to": 5, "unit_amount_microcents": 1},
            {"up_to": None, "unit_amount_microcents": 1},
        ],
        [{"up_to": None, "unit_amount_microcents": -1}],
        [{"up_to": None, "unit_amount_microcents": 1.5}],
        [{"up_to": None, "unit_amount_microcents": 1, "credits": -2}],
    ],
)
def test_bad_tiers_are_refused(tiers):
    with pytest.raises(ApplicationError) as info:
        tiers_validate(tiers)
    assert info.value.code == "invalid_tiers"


def test_tier_boundaries_are_inclusive():
    price = ToolPrice(
        unit_amount_microcents=9,
        credits=9,
        tiers=tiers_validate(
            [
                {"up_to": 100, "unit_amount_microcents": 10, "credits": 3},
                {"up_to": None, "unit_amount_microcents": 5},
            ]
        ),
    )
    assert price_at_position(price, 100) == (10, 3, 0)
    assert price_at_position(price, 101) == (5, 9, 1)  # the tier's credits fall back to the price's
