"""The ``quartet`` package: the one import a plugin author needs."""

from __future__ import annotations

import inspect

import quartet

#: What issue 12 promises authors; more names may come, none of these may go.
PROMISED = {
    "hookimpl",
    "SkillSpec",
    "ExpertSpec",
    "SkillMatch",
    "SessionContext",
    "Tool",
    "ToolContext",
    "ToolError",
    "ChatModel",
    "ModelRequest",
    "ChatMessage",
    "ToolCall",
    "TextDelta",
    "ReasoningDelta",
    "Usage",
    "ModelError",
}


def test_the_promised_names_are_exported() -> None:
    assert PROMISED <= set(quartet.__all__)
    assert all(hasattr(quartet, name) for name in quartet.__all__)


def test_every_exported_type_is_documented() -> None:
    undocumented = [
        name
        for name in quartet.__all__
        if inspect.isclass(getattr(quartet, name)) and not inspect.getdoc(getattr(quartet, name))
    ]
    assert undocumented == []


def test_hookimpl_marks_quartet_hooks() -> None:
    @quartet.hookimpl
    def register_skills() -> list[quartet.SkillSpec]:
        return []

    assert hasattr(register_skills, "quartet_impl")
