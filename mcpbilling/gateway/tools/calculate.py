"""``calculate``: the value of an arithmetic expression, evaluated safely.

The expression is parsed with ``ast`` and only numbers, arithmetic operators,
a few constants and ``math`` functions are evaluated; nothing is ever passed
to ``eval``. Size limits (characters, syntax nodes, bits of an integer,
factorial's argument, round's digits) bound every operation whose cost grows
with its operands, so one call stays cheap whatever it asks for; the gateway
also runs the tool in a worker process it kills at the timeout.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from mcpbilling.gateway.registry import tool

MAX_EXPRESSION_CHARS = 500
MAX_NODES = 200
MAX_INT_BITS = 4096  # about 1,233 decimal digits
MAX_FACTORIAL = 500
# round(x, n) computes 10 ** -n for a negative n (round(1, -10**8) held the CPU for
# minutes). Beyond this many digits the result no longer changes for any operand
# allowed here (an integer of MAX_INT_BITS has 1,234 digits; a float's exact
# decimal expansion has at most 1,074 places), so n is clamped to it.
MAX_ROUND_DIGITS = 1300

Number = int | float


def _int_bits_check(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError(f"The result has more than {MAX_INT_BITS} bits.")
    return value


def _multiply(left: Number, right: Number) -> Number:
    both_int = isinstance(left, int) and isinstance(right, int)
    if both_int and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
        raise ToolError(f"The result has more than {MAX_INT_BITS} bits.")
    return left * right


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if max(base.bit_length() - 1, 0) * exponent > MAX_INT_BITS:
            raise ToolError(f"The result has more than {MAX_INT_BITS} bits.")
        return base**exponent
    result = base**exponent
    if isinstance(result, complex):
        raise ToolError("The result is a complex number.")
    return result


def _factorial(n: Number) -> int:
    if not isinstance(n, int) or not 0 <= n <= MAX_FACTORIAL:
        raise ToolError(f"factorial takes a whole number from 0 to {MAX_FACTORIAL}.")
    return math.factorial(n)


def _round(value: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return round(value)
    if not isinstance(digits, int):
        raise ToolError("round takes a whole number of digits.")
    return round(value, max(-MAX_ROUND_DIGITS, min(digits, MAX_ROUND_DIGITS)))


BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _multiply,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "hypot": math.hypot,
    "degrees": math.degrees,
    "radians": math.radians,
    "floor": math.floor,
    "ceil": math.ceil,
    "gcd": math.gcd,
    "factorial": _factorial,
}


def _evaluate(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        return _int_bits_check(BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = FUNCTIONS.get(node.func.id)
        if function is None:
            raise ToolError(f"Unknown function {node.func.id!r}; known: {', '.join(FUNCTIONS)}.")
        if node.keywords or not node.args:
            raise ToolError(f"{node.func.id} takes one or more positional arguments.")
        return _int_bits_check(function(*(_evaluate(arg) for arg in node.args)))
    if isinstance(node, ast.Name):
        raise ToolError(f"Unknown name {node.id!r}; known constants: {', '.join(CONSTANTS)}.")
    raise ToolError(f"{ast.unparse(node)!r} is not arithmetic.")


def evaluate(expression: str) -> Number:
    """The value of ``expression``; ToolError says what is wrong with it."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        # "2^10" means a power to most people; Python's XOR is not on offer anyway.
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ToolError(
            f"Not an arithmetic expression: {exc.msg if isinstance(exc, SyntaxError) else exc}."
        ) from exc
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError(f"The expression has more than {MAX_NODES} parts.")
    try:
        value = _evaluate(tree)
    except ZeroDivisionError as exc:
        raise ToolError("Division by zero.") from exc
    except (OverflowError, ValueError, TypeError) as exc:
        raise ToolError(f"Cannot evaluate: {exc}.") from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("The result is not a finite number.")
    return value


@tool(price_cents=1, credits=1, timeout_s=5.0)
def calculate(
    expression: Annotated[
        str, Field(max_length=MAX_EXPRESSION_CHARS, description="e.g. (2 + 3) * sqrt(16) / 2^3")
    ],
) -> int | float:
    """Evaluate an arithmetic expression: + - * / // % ** (or ^), parentheses, constants
    pi, e, tau and functions such as sqrt, log, sin, round, min, max, factorial."""
    return evaluate(expression)
