"""A property run in a child process by test_tools: calculate's work is bounded.

Expressions of every allowed function and operator over extreme operands
(huge integers, the largest floats, negatives, fractions) must each evaluate
or be refused quickly; the parent kills this process if the whole run hangs.
"""

from __future__ import annotations

import os
import signal

import django
from hypothesis import given, settings
from hypothesis import strategies as st

# Small, awkward and extreme values: a cost that grows with an operand shows with the
# middling ones (10 ** 100000000 is computable, slowly) as much as with the huge ones.
OPERANDS = [
    "0",
    "1",
    "-1",
    "2",
    "-7",
    "0.5",
    "1e308",
    "-1e-308",
    "100000000",
    "-100000000",
    "9" * 120,
    "-" + "9" * 120,
]
BINARY = ["+", "-", "*", "/", "//", "%", "**"]
SECONDS_PER_EXPRESSION = 2.0


class RanAway(Exception):
    """An expression took more than SECONDS_PER_EXPRESSION of Python time."""


def _alarm(signum, frame):
    raise RanAway


def expressions(functions: list[str]) -> st.SearchStrategy[str]:
    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(children, st.sampled_from(BINARY), children)
        call = st.tuples(st.sampled_from(functions), st.lists(children, min_size=1, max_size=3))
        return st.one_of(
            binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            call.map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        )

    return st.recursive(st.sampled_from(OPERANDS), extend, max_leaves=6)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
    django.setup()
    from mcp.server.mcpserver.exceptions import ToolError

    from mcpbilling.gateway.tools.calculate import FUNCTIONS, evaluate

    def check(expression: str) -> None:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_EXPRESSION)
        try:
            evaluate(expression)
        except ToolError:
            pass
        except RanAway:
            raise RanAway(expression) from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    # Every function and operator on every operand and pair of operands...
    for left in OPERANDS:
        for name in FUNCTIONS:
            check(f"{name}({left})")
        for right in OPERANDS:
            for name in FUNCTIONS:
                check(f"{name}({left}, {right})")
            for operator in BINARY:
                check(f"({left}) {operator} ({right})")

    # ... then nested combinations of them.
    @settings(max_examples=500, deadline=None, database=None)
    @given(expressions(sorted(FUNCTIONS)))
    def bounded(expression: str) -> None:
        check(expression)

    bounded()


if __name__ == "__main__":
    main()
