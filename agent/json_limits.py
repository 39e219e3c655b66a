"""JSON from clients and models, parsed within limits and in time linear in its length.

``json.loads`` recurses once per level of nesting, so a few kilobytes of ``[``
raise ``RecursionError``; it spends an allocation on every value, so a
megabyte of ``[0,0,0,…]`` holds the event loop for a tenth of a second; and
it turns a lone surrogate escape (``"\\ud800"``) into a string that cannot be
encoded as UTF-8, which fails later, far from the input, when the text is
stored or sent. :func:`loads` refuses all three up front with a
``ValueError`` that says what is wrong.

The shape check runs before parsing, with C-speed string operations only:
escapes and strings are cut out, commas and brackets are counted, and then
matched bracket pairs are removed one level per pass, for at most
``max_depth`` passes over at most ``2 * max_values`` brackets.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: The deepest nesting of arrays and objects accepted from a client or a model.
MAX_DEPTH = 32
#: The most values (array items, object members, arrays and objects) in one text.
MAX_VALUES = 50_000

_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SQUARE = str.maketrans("{}", "[]")
# An escape that may decode to half a surrogate pair.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JSONLimitError(ValueError):
    """JSON the server will not take: too deep, too many values, or not valid Unicode."""


def loads(text: str, *, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> Any:
    """``json.loads`` for untrusted *text*.

    :raises JSONLimitError: nesting deeper than *max_depth*, more than
        *max_values* values, brackets that do not pair up, or a string (key
        or value) holding a lone surrogate.
    :raises ValueError: any other reason the text is not JSON.
    """
    check_shape(text, max_depth=max_depth, max_values=max_values)
    try:
        value = json.loads(text)
    except RecursionError:  # not expected after check_shape; never let it escape
        raise JSONLimitError(f"the JSON is nested deeper than {max_depth} levels") from None
    try:
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        elif not text.isascii():
            text.encode("utf-8")  # a surrogate character itself, if text did not come from bytes
    except UnicodeEncodeError:
        raise JSONLimitError(
            "a string holds a lone UTF-16 surrogate (such as \\ud800), "
            "which is not a Unicode character"
        ) from None
    return value


def check_shape(text: str, *, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    """Refuse JSON *text* nested deeper than *max_depth*, or with more than *max_values* values.

    :raises JSONLimitError: too deep, too many values, or brackets outside
        strings that do not pair up.
    """
    # Fast path: few brackets, commas and quotes anywhere, strings included.
    opening = text.count("[") + text.count("{")
    quotes = text.count('"')
    if opening <= max_depth and opening + text.count(",") + quotes // 2 <= max_values:
        return
    # Without its escapes, every '"' left opens or closes a string. Each string is
    # a key or a value, so counting them first bounds the work of cutting them out.
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    if unescaped.count('"') // 2 > max_values:
        raise JSONLimitError(f"the JSON has more than {max_values} values")
    outside = _STRING.sub("", unescaped)
    opening = outside.count("[") + outside.count("{")
    if opening + outside.count(",") > max_values:
        raise JSONLimitError(f"the JSON has more than {max_values} values")
    if opening <= max_depth:
        return
    if outside.count("]") + outside.count("}") != opening:
        raise JSONLimitError("the JSON's brackets do not pair up")
    brackets = _NOT_BRACKET.sub("", outside).translate(_SQUARE)
    # Each pass removes the innermost level; what is left after max_depth passes
    # was nested deeper. A pass that removes nothing means the rest cannot pair up.
    for _ in range(max_depth):
        shorter = brackets.replace("[]", "")
        if len(shorter) == len(brackets):
            raise JSONLimitError("the JSON's brackets do not pair up")
        if not shorter:
            return
        brackets = shorter
    raise JSONLimitError(f"the JSON is nested deeper than {max_depth} levels")
