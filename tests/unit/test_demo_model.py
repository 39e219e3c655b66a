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


#: Hostile message shapes, by size: the old regexes were quadratic or worse on each.
HOSTILE = {
    "unclosed directive heads": lambda n: "[[a:" * n,
    "open brackets": lambda n: "[" * (12 * n),
    "names without colons": lambda n: "[[" + "a" * (6 * n) + "[[" * n,
    "closed after a long way": lambda n: "[[a:" * n + "]]",
    "many small directives": lambda n: "[[a:b]]" * n,
    "trailing whitespace": lambda n: "You answered: yes" + " " * (12 * n),
}


def cost(work, arg: str) -> float:
    """The best of five timings: the least disturbed by other work on the machine."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        work(arg)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("shape", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_messages_cost_linear_time(shape) -> None:
    # A ratio within one test, not a time budget: 4x the input may cost ~4x the
    # time; the old regex cost 16x or more (3.4 s on 8,192 unclosed heads).
    small, large = shape(4_000), shape(16_000)
    for work in (plan, tokens):
        ratio = cost(work, large) / max(cost(work, small), 1e-6)
        assert ratio < 9, f"{work.__name__}: 4x the input took {ratio:.1f}x the time"
