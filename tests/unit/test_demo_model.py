"""The demo model reads directives and cuts tokens the way its regexes did, in linear time."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.builtin.demo import find_directives, plan, strip_directives, tokens

# The regexes the demo model used before: right answers, quadratic time.
OLD_DIRECTIVE = re.compile(r"\[\[(\w+):(.*?)\]\]", re.DOTALL)
OLD_TOKEN = re.compile(r"\s*\S+")

messages = st.text(alphabet=st.sampled_from('[]:ab_1 \n\t{}"é'), max_size=60)


@settings(max_examples=500, deadline=None)
@given(messages)
def test_directives_are_the_ones_the_regex_found(message: str) -> None:
    found = find_directives(message)
    assert [(d.name, d.arg) for d in found] == OLD_DIRECTIVE.findall(message)
    assert strip_directives(message, found) == " ".join(OLD_DIRECTIVE.sub(" ", message).split())


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \n\t\u00a0\u2003x"), max_size=40))
def test_tokens_are_the_ones_the_regex_found(text: str) -> None:
    assert tokens(text) == OLD_TOKEN.findall(text)


def test_plan_reads_every_kind_of_directive() -> None:
    todo = plan('Hi [[slow:5]] [[tool:calculator {"expression": "1+1"}]] [[ask:Name?]] there')
    assert todo.echo == "Hi there"
    assert todo.delay_s == 0.005
    assert [a.tool for a in todo.actions] == ["calculator", "ask_human"]
    assert todo.actions[0].arguments == '{"expression": "1+1"}'


HOSTILE = {
    "unclosed directive heads": "[[a:" * 8192,
    "unclosed, longer": "[[a:" * 8192 * 4,
    "open brackets": "[" * 100_000,
    "names without colons": "[[" + "a" * 50_000 + "[[" * 10_000,
    "closed after a long way": "[[a:" * 8192 + "]]",
    "many small directives": "[[a:b]]" * 10_000,
}


@pytest.mark.parametrize("message", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_messages_are_planned_in_milliseconds(message: str) -> None:
    started = time.perf_counter()
    plan(message)
    # The old regex took 3.4 s on the first of these; quadratic ones take minutes.
    assert time.perf_counter() - started < 0.2


def test_long_trailing_whitespace_is_tokenised_in_milliseconds() -> None:
    # A human reply or a tool result ends up in the answer text, spaces and all.
    text = "You answered: yes" + " " * 100_000
    started = time.perf_counter()
    assert tokens(text) == ["You", " answered:", " yes"]
    assert time.perf_counter() - started < 0.2
