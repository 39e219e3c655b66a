"""Skills and experts: the types of the skill hooks (part of the plugin contract).

A :class:`SkillSpec` is what a plugin's ``register_skills`` returns and what
``POST /api/v1/skills`` accepts. The host turns each spec into a
:class:`plugins.builtin.keyword_skill.KeywordSkill` plugin, so plugin skills
and REST skills are matched by the same ``match_skills`` hook, whose answer
is a list of :class:`SkillMatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
