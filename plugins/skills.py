"""Skills: keywords plus what the agent should do when they match.

A :class:`SkillSpec` is what a plugin's ``register_skills`` returns and what
``POST /api/v1/skills`` accepts. The host turns each spec into a
:class:`KeywordSkill` plugin, so plugin skills and REST skills are matched by
the same ``match_skills`` hook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from plugins.hookspecs import hookimpl

SkillName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ExpertSpec(BaseModel):
    """An expert a team may include: what a ``register_experts`` hook returns.

    In a skill, an entry that gives only ``name`` stands for the registered
    expert of that name.
    """

    model_config = ConfigDict(extra="forbid")

    name: SkillName = Field(description="Letters, digits, `_`, `.`, `-`; at most 100.")
    role: str = Field(default="", max_length=200, description="One line, shown to clients.")
    instructions: str = Field(
        default="", max_length=20000, description="Added to the expert's system prompt."
    )
    model: str | None = Field(default=None, description="Its model; unset: the turn's model.")
    tools: list[str] | None = Field(
        default=None,
        max_length=100,
        description="The tools it may call; unset: the tools the turn may call.",
    )

    @property
    def is_reference(self) -> bool:
        """Only a name: stands for the registered expert of that name."""
        return not (self.role or self.instructions or self.model or self.tools is not None)


class SkillSpec(BaseModel):
    """A skill definition."""

    model_config = ConfigDict(extra="forbid")

    name: SkillName = Field(description="Letters, digits, `_`, `.`, `-`; at most 100.")
    keywords: list[Keyword] = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    instructions: str = Field(default="", max_length=20000)
    tools: list[str] = Field(default_factory=list, max_length=100)
    experts: list[ExpertSpec] = Field(default_factory=list, max_length=20)


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What a hook may know about the session a message belongs to."""

    session_id: str
    owner_id: int


class SkillMatch(BaseModel):
    """One skill that matched a message; becomes one ``skill_match`` frame."""

    skill: str
    matched: list[str]
    score: float
    source: str
    instructions: str = ""
    tools: list[str] = Field(default_factory=list)
    experts: list[ExpertSpec] = Field(default_factory=list)


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
