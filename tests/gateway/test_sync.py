"""Python tools become Tool rows with a first price; an operator's price is never replaced."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import Tool, ToolPrice
from billing.services.pricing import tool_price_active, tool_price_set
from mcpbilling.gateway.registry import tool, tools_sync_python

pytestmark = pytest.mark.django_db


def test_creates_rows_with_the_default_price():
    tools_sync_python()
    calculate = Tool.objects.get(name="calculate")
    assert calculate.source == Tool.Source.PYTHON
    assert calculate.input_schema["required"] == ["expression"]
    price = tool_price_active(tool=calculate)
    assert (price.unit_amount_microcents, price.credits) == (1_000_000, 1)
    assert (
        tool_price_active(tool=Tool.objects.get(name="hash_text")).unit_amount_microcents == 50_000
    )
    date_calc = Tool.objects.get(name="date_calc")
    assert date_calc.is_free and not date_calc.prices.exists()


def test_never_replaces_an_operators_price_and_is_idempotent():
    tools_sync_python()
    calculate = Tool.objects.get(name="calculate")
    tool_price_set(tool=calculate, unit_amount_microcents=3_000_000, credits=3)
    Tool.objects.filter(pk=calculate.pk).update(enabled=False, timeout_s=9, description="old")
    tools_sync_python()
    calculate.refresh_from_db()
    assert tool_price_active(tool=calculate).credits == 3
    assert ToolPrice.objects.filter(tool=calculate).count() == 2
    assert not calculate.enabled and calculate.timeout_s == 9  # the operator's
    assert calculate.description.startswith("Evaluate")  # the code's


def test_leaves_a_name_held_by_an_upstream_tool_alone():
    Tool.objects.create(name="calculate", source=Tool.Source.UPSTREAM, upstream_name="calc")
    tools_sync_python()
    assert Tool.objects.get(name="calculate").source == Tool.Source.UPSTREAM
    assert not ToolPrice.objects.filter(tool__name="calculate").exists()


def test_only_modules_listed_in_settings_are_synced(settings):
    settings.MCP_TOOL_MODULES = ["mcpbilling.gateway.tools.calculate"]
    assert [row.name for row in tools_sync_python()] == ["calculate"]


def test_a_tool_needs_a_price_unless_free():
    with pytest.raises(ValueError, match="price"):
        tool()


def test_the_command_reports_what_it_synced():
    out = StringIO()
    call_command("sync_tools", "--no-upstream", stdout=out)
    assert "python   calculate" in out.getvalue()
    assert Tool.objects.filter(name="text_stats").exists()
