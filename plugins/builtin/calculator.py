"""The ``calculator`` tool: arithmetic by parsing, never by ``eval``.

The expression is parsed with :mod:`ast` and walked over a short list of node
types: numbers, ``+ - * / // % **``, unary signs, parentheses, and a few
named functions and constants from :mod:`math`. Anything else (names,
attributes, calls to other things, strings, comprehensions) is refused before
anything runs.

Big-integer arithmetic runs synchronously on the event loop, where no timeout
can interrupt it, so every operation whose cost grows with its operands is
bounded *before* it runs: a power whose result would have more than twice
``MAX_INT_BITS`` bits, and ``round`` to more than ``MAX_ROUND_DIGITS`` places
either way (``round(1, -10**8)`` builds ``10**10**8``), are refused; every
other result is at most a few thousand bits because its operands are. So every
expression is answered in milliseconds.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from plugins.hookspecs import hookimpl
from plugins.tools import Tool, ToolContext, ToolError

MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 4_096
#: More decimal places than any number the calculator keeps has digits (4,096 bits
#: is 1,234 digits), so no rounding a result could need is refused.
MAX_ROUND_DIGITS = 1_300

Number = int | float

BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _round(number: Number, *ndigits: Any) -> Number:
    """``round``, refusing a number of places whose power of ten would be huge."""
    if ndigits and isinstance(ndigits[0], int) and abs(ndigits[0]) > MAX_ROUND_DIGITS:
        raise CalculatorError(f"round() takes at most {MAX_ROUND_DIGITS} places either way")
    return round(number, *ndigits)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculatorError(ToolError):
    """The expression is not something the calculator computes."""


def evaluate(expression: str) -> Number:
    """The value of an arithmetic *expression*.

    :raises CalculatorError: on syntax that is not arithmetic, on math errors
        (division by zero, domain errors) and on results too large to compute.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not an arithmetic expression: {exc.msg}") from None
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except (OverflowError, ValueError, TypeError) as exc:
        raise CalculatorError(f"math error: {exc}") from None


def _eval(node: ast.expr) -> Number:
    match node:
        case ast.Constant(value=bool()):
            raise CalculatorError("booleans are not numbers here")
        case ast.Constant(value=int() | float() as value):
            return value
        case ast.BinOp(left=left, op=op, right=right) if type(op) in BINARY:
            a, b = _eval(left), _eval(right)
            if isinstance(op, ast.Pow) and isinstance(a, int) and isinstance(b, int):
                # Refuse before computing: 10**4000**2 would take minutes to build.
                if abs(a) > 1 and b * a.bit_length() > MAX_INT_BITS * 2:
                    raise CalculatorError("the result is too large")
            return _checked(BINARY[type(op)](a, b))
        case ast.UnaryOp(op=op, operand=operand) if type(op) in UNARY:
            return UNARY[type(op)](_eval(operand))
        case ast.Name(id=name) if name in CONSTANTS:
            return CONSTANTS[name]
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            return _checked(FUNCTIONS[name](*(_eval(arg) for arg in args)))
        case ast.Call(func=ast.Name(id=name)):
            raise CalculatorError(
                f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}"
            )
        case ast.Name(id=name):
            raise CalculatorError(f"unknown name {name!r}; known: {', '.join(sorted(CONSTANTS))}")
        case _:
            raise CalculatorError(f"{type(node).__name__} is not allowed in an expression")


def _checked(value: Any) -> Number:
    if isinstance(value, complex):
        raise CalculatorError("the result is a complex number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("the result is not a finite number")
    return value


class CalculatorArgs(BaseModel):
    expression: str = Field(
        description="Arithmetic, e.g. `2 * (3 + 4) ** 2` or `sqrt(2) / pi`.",
        max_length=MAX_EXPRESSION_CHARS,
    )


async def calculate(args: CalculatorArgs, ctx: ToolContext) -> Number:
    return evaluate(args.expression)


@hookimpl
def register_tools() -> list[Tool]:
    return [
        Tool(
            name="calculator",
            description="Evaluate an arithmetic expression: + - * / // % **, parentheses, "
            f"{', '.join(sorted(FUNCTIONS))}, and the constants {', '.join(sorted(CONSTANTS))}.",
            arguments=CalculatorArgs,
            run=calculate,
            timeout_s=5,
        )
    ]
