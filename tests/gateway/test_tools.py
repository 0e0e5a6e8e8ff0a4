"""The demo tools: right answers, and safe refusals of what they must not do."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest
from django.conf import settings
from mcp.server.mcpserver.exceptions import ToolError

from mcpbilling.gateway.registry import python_tools
from mcpbilling.gateway.tools.calculate import evaluate
from mcpbilling.gateway.tools.data import path_steps, select
from mcpbilling.gateway.tools.dates import business_days
from mcpbilling.gateway.tools.units import convert


def run_tool(name: str, **arguments):
    registered = python_tools()[name]
    return registered.call(registered.validate(arguments))


class TestCalculate:
    @pytest.mark.parametrize(
        ("expression", "value"),
        [
            ("1 + 2 * 3", 7),
            ("(2 + 3) * sqrt(16) / 2^3", 2.5),
            ("2 ** 10", 1024),
            ("-3 ** 2", -9),
            ("17 // 5 + 17 % 5", 5),
            ("round(pi, 4)", 3.1416),
            ("max(1, 7, 3) - min(4, 2)", 5),
            ("factorial(10)", 3628800),
            ("log10(1000) + log(e)", 4.0),
            ("round(1234567, -3)", 1235000),
            ("round(1, -100000000)", 0),  # was 227 s of CPU holding the GIL
            ("round(10 ** 1200, -1300)", 0),
            ("round(2.5, 100000000)", 2.5),
            ("round(-1e308, -400)", 0.0),
        ],
    )
    def test_arithmetic(self, expression, value):
        assert evaluate(expression) == value

    @pytest.mark.parametrize(
        "expression",
        [
            "__import__('os').system('true')",
            "().__class__.__bases__[0].__subclasses__()",
            "open('/etc/passwd')",
            "x",
            "lambda: 1",
            "[1, 2]",
            "'a' * 3",
            "1 if 1 else 2",
            "sqrt(x=4)",
            "f'{1}'",
            "atan2(1, 1) * 4 == pi",
            "True + 1",
            "2 << 100",
        ],
    )
    def test_anything_but_arithmetic_is_refused(self, expression):
        with pytest.raises(ToolError):
            evaluate(expression)

    @pytest.mark.parametrize(
        "expression",
        [
            "9 ** 9 ** 9",
            "2 ** 5000",
            "10 ** 1000 * 10 ** 1000 * 10 ** 1000",
            "factorial(100000)",
            "factorial(-1)",
            "1e308 * 10",
            "exp(1000)",
            "10 ** 400 / 3",
            "(-8) ** (1 / 3)",
            "1 / 0",
            "1 +" * 100 + "1",
            "round(1, 0.5)",
        ],
    )
    def test_expensive_or_impossible_results_are_refused(self, expression):
        with pytest.raises(ToolError):
            evaluate(expression)

    def test_long_expressions_are_refused(self):
        with pytest.raises(ToolError, match="longer than"):
            evaluate("1" + "+1" * 300)

    def test_the_tool_reports_errors_as_results(self):
        assert run_tool("calculate", expression="2^10").structured_content == {"result": 1024}
        failed = run_tool("calculate", expression="1/0")
        assert failed.is_error and failed.content[0].text == "Division by zero."


class TestOtherTools:
    @pytest.mark.parametrize(
        ("value", "source", "target", "expected"),
        [
            (100, "C", "F", 212.0),
            (32, "F", "C", 0.0),
            (1, "mi", "km", 1.609344),
            (1, "GiB", "MB", 1073.741824),
            (1, "kWh", "J", 3.6e6),
            (60, "mph", "km/h", 96.56064),
        ],
    )
    def test_convert_units(self, value, source, target, expected):
        assert convert(value, source, target) == pytest.approx(expected)

    @pytest.mark.parametrize(("source", "target"), [("kg", "m"), ("furlong", "m"), ("C", "kg")])
    def test_convert_refuses_across_dimensions(self, source, target):
        with pytest.raises(ToolError):
            convert(1, source, target)

    def test_convert_refuses_below_absolute_zero(self):
        with pytest.raises(ToolError, match="absolute zero"):
            convert(-300, "C", "K")

    def test_text_stats(self):
        stats = run_tool("text_stats", text="It's a test. A real test!\n\nSecond paragraph.")
        assert stats.structured_content["words"] == 8  # "It's" is one word
        assert stats.structured_content["sentences"] == 3
        assert stats.structured_content["paragraphs"] == 2
        assert ["test", 2] in stats.structured_content["top_words"]

    def test_hash_text(self):
        digest = run_tool("hash_text", text="abc", algorithm="sha256").structured_content["result"]
        assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

    def test_json_query(self):
        document = '{"items": [{"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}]}'
        assert run_tool(
            "json_query", document=document, path="$.items[*].id"
        ).structured_content == {"value": [1, 2]}
        assert select({"a": [1, 2, 3]}, path_steps("a[-1]")) == 3
        assert run_tool("json_query", document=document, path="items[5]").is_error
        assert run_tool("json_query", document="{bad", path="$").is_error

    def test_date_calc(self):
        added = run_tool("date_calc", start="2024-01-31", months=1).structured_content
        assert added["date"] == "2024-02-29" and added["weekday"] == "Thursday"
        span = run_tool("date_calc", start="2026-03-02", end="2026-03-16").structured_content
        assert span["days_between"] == 14 and span["business_days_between"] == 10
        assert business_days(date(2026, 3, 16), date(2026, 3, 2)) == -10
        assert run_tool("date_calc", start="9999-12-31", days=1).is_error
        assert run_tool("date_calc", start="not a date").is_error


def test_every_operation_is_bounded_whatever_its_operands():
    """No expression of allowed functions and operators on extreme operands runs away.

    A guard, not a speed measurement: the property runs in a child process (C
    code holding the GIL, as round(1, -10**8) did, cannot be interrupted in
    this one) that normally finishes in seconds; it is killed after 120.
    """
    child = subprocess.run(
        [sys.executable, "-m", "tests.gateway.calculator_bounds"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=settings.BASE_DIR,
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
