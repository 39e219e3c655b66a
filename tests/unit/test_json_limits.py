"""Bounded JSON parsing: the right answer on any input, in time linear in its length."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.json_limits import MAX_DEPTH, JSONLimitError, check_shape, loads

TWO_MIB = 2 * 1024 * 1024


def depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


# Strings with the characters that confuse a scanner: quotes, backslashes, brackets.
tricky_text = st.text(alphabet=st.sampled_from('ab"\\[]{},:\u00e9\U0001f600'), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(min_value=1, max_value=8))
def test_depth_check_agrees_with_the_parsed_value(value: object, max_depth: int) -> None:
    text = json.dumps(value, ensure_ascii=False)
    if depth(value) > max_depth:
        with pytest.raises(JSONLimitError, match=f"deeper than {max_depth}"):
            check_shape(text, max_depth=max_depth)
    else:
        check_shape(text, max_depth=max_depth)
        assert loads(text, max_depth=max_depth) == value


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=MAX_DEPTH + 1, max_value=3000))
def test_any_deeper_nesting_is_refused(levels: int) -> None:
    for text in ("[" * levels + "]" * levels, '{"a":' * levels + "0" + "}" * levels):
        with pytest.raises(JSONLimitError, match="deeper than"):
            loads(text)


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("[" * 5000, "pair up"),
        ("]" * 10 + "[" * 40, "pair up"),
        ("[0" + ",0" * 60_000 + "]", "values"),
        ('["' + '","' * 60_000 + '"]', "values"),
        ('["\\ud800"]', "surrogate"),
        ('{"\\udc00": 1}', "surrogate"),
        ('["\ud800"]', "surrogate"),  # the character itself, in text that never was UTF-8
    ],
)
def test_refusals_say_why(text: str, mentions: str) -> None:
    with pytest.raises(JSONLimitError, match=mentions):
        loads(text)


def test_other_bad_json_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError) as caught:
        loads('{"a": ')
    assert not isinstance(caught.value, JSONLimitError)


HOSTILE = {
    "open brackets": "[" * TWO_MIB,
    "empty arrays": "[" + "[]," * (TWO_MIB // 3) + "[]]",
    "nested 32 deep, repeated": "[" + ",".join(["[" * 31 + "]" * 31] * (TWO_MIB // 64)) + "]",
    "zeros": "[0" + ",0" * (TWO_MIB // 2) + "]",
    "escaped quotes": '["' + '\\"' * (TWO_MIB // 2) + '"]',
    "unterminated escaped quotes": '"' + '\\"' * (TWO_MIB // 2),
    "quotes": '"' * TWO_MIB,
    "surrogate escapes": '["' + "\\ud800" * (TWO_MIB // 6) + '"]',
    "one long string": json.dumps("x" * TWO_MIB),
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_two_mebibytes_of_hostile_json_take_milliseconds(text: str) -> None:
    started = time.perf_counter()
    try:
        loads(text)
    except ValueError:
        pass
    # A quadratic scan of 2 MiB takes minutes; linear ones take tens of milliseconds.
    assert time.perf_counter() - started < 0.5
