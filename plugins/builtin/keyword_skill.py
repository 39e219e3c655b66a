"""Keyword skills: the plugin each ``register_skills`` spec and REST skill becomes."""

from __future__ import annotations

import re

from plugins.hookspecs import hookimpl
from plugins.skills import SessionContext, SkillMatch, SkillSpec


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    # Whole words, case-insensitive; \b would fail on keywords that start or end
    # with punctuation, so look for "not a word character" on both sides instead.
    return re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.IGNORECASE)


class KeywordSkill:
    """A plugin that matches one skill's keywords against each message.

    :param owner_id: the API key the skill belongs to, or ``None`` for a skill
        every session may use (plugin skills).
    """

    def __init__(self, spec: SkillSpec, *, source: str, owner_id: int | None = None) -> None:
        self.spec = spec
        self.source = source
        self.owner_id = owner_id
        self._patterns = [(kw, keyword_pattern(kw)) for kw in dict.fromkeys(spec.keywords)]

    def match(self, message: str) -> SkillMatch | None:
        matched = [kw for kw, pattern in self._patterns if pattern.search(message)]
        if not matched:
            return None
        return SkillMatch(
            skill=self.spec.name,
            matched=matched,
            score=round(len(matched) / len(self._patterns), 4),
            source=self.source,
            instructions=self.spec.instructions,
            tools=self.spec.tools,
            experts=self.spec.experts,
        )

    @hookimpl
    def match_skills(self, message: str, session: SessionContext) -> list[SkillMatch] | None:
        if self.owner_id is not None and self.owner_id != session.owner_id:
            return None
        found = self.match(message)
        return [found] if found else None
