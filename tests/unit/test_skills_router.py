"""Keyword matching and the router's handling of plugins."""

from __future__ import annotations

import pluggy
import pytest

from agent.router import Router
from plugins import hookspecs
from plugins.builtin.keyword_skill import KeywordSkill
from plugins.hookspecs import hookimpl
from plugins.manager import PluginHost
from plugins.skills import SessionContext, SkillMatch, SkillSpec

SESSION = SessionContext(session_id="s1", owner_id=1)


def skill(*keywords: str, name: str = "trip", owner_id: int | None = None) -> KeywordSkill:
    return KeywordSkill(
        SkillSpec(name=name, keywords=list(keywords)), source="rest", owner_id=owner_id
    )


@pytest.mark.parametrize(
    ("keywords", "message", "matched"),
    [
        (["paris"], "A trip to PARIS!", ["paris"]),
        (["paris"], "Parisian food", []),
        (["paris"], "unparis", []),
        (["c++"], "I write C++ daily", ["c++"]),
        (["new york"], "flights to New  York", []),
        (["new york"], "flights to new york?", ["new york"]),
        (["ws_skill_match"], "use ws_skill_match now", ["ws_skill_match"]),
        (["ws_skill_match"], "use ws_skill_matcher now", []),
        (["a.b"], "axb", []),
    ],
)
def test_keywords_match_whole_words_case_insensitively(keywords, message, matched) -> None:
    found = skill(*keywords).match(message)
    assert (found.matched if found else []) == matched


def test_score_is_the_share_of_keywords_found() -> None:
    found = skill("train", "paris", "hotel", "museum").match("train to paris")
    assert found is not None and found.score == 0.5


def test_rest_skill_is_private_to_its_owner() -> None:
    private = skill("paris", owner_id=2)
    assert private.match_skills(message="paris", session=SESSION) is None
    assert private.match_skills(message="paris", session=SessionContext("s2", 2)) is not None


def make_host(*plugins: object) -> PluginHost:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    return PluginHost(pm)


class Broken:
    @hookimpl
    def match_skills(self, message, session):
        raise RuntimeError("boom")


class Malformed:
    @hookimpl
    def match_skills(self, message, session):
        return [{"not": "a match"}]


class AsyncSkill:
    @hookimpl
    async def match_skills(self, message, session):
        return [SkillMatch(skill="async", matched=["x"], score=0.9, source="plugin:async")]


async def test_router_skips_a_raising_or_malformed_plugin(caplog) -> None:
    router = Router(make_host(skill("paris"), Broken(), Malformed()))
    matches = await router.match("paris", SESSION)
    assert [m.skill for m in matches] == ["trip"]
    assert "boom" in caplog.text and "malformed" in caplog.text


async def test_router_sorts_best_first_and_awaits_async_hooks() -> None:
    router = Router(make_host(skill("paris", "x", "y", name="weak"), AsyncSkill(), skill("paris")))
    matches = await router.match("paris x", SESSION)
    assert [(m.skill, m.score) for m in matches] == [
        ("trip", 1.0),
        ("async", 0.9),
        ("weak", 0.6667),
    ]


async def test_router_with_no_skills() -> None:
    assert await Router(make_host()).match("anything", SESSION) == []
