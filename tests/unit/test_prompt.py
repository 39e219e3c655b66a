"""Prompt assembly: system prompt, skill instructions, history within a budget."""

from __future__ import annotations

from agent.prompt import build_messages, fit_history
from models import Message
from plugins.llm import ChatMessage, TextDelta, Usage
from plugins.skills import SkillMatch, SkillSpec


def msg(role: str, content: str) -> ChatMessage:
    return ChatMessage(role=role, content=content)  # type: ignore[arg-type]


def match(skill: str, instructions: str) -> SkillMatch:
    return SkillMatch(
        skill=skill, matched=["k"], score=1.0, source="rest", instructions=instructions
    )


def test_oldest_history_is_dropped_first_and_the_new_message_always_stays() -> None:
    history = [msg("user", "a" * 10), msg("assistant", "b" * 10), msg("user", "c" * 10)]
    assert fit_history(history, 30) == history
    assert fit_history(history, 25) == history[1:]
    assert fit_history(history, 5) == history[-1:]
    assert fit_history([], 5) == []


def test_empty_answers_are_left_out() -> None:
    history = [msg("user", "q"), msg("assistant", ""), msg("user", "again")]
    assert fit_history(history, 100) == [history[0], history[2]]


def test_system_message_carries_the_prompt_and_each_matched_skills_instructions() -> None:
    messages = build_messages(
        "Be brief.",
        [match("trip", "Ask for dates."), match("plain", "")],
        [msg("user", "hi")],
        100,
    )
    assert messages[0].role == "system"
    assert (
        messages[0].content == "Be brief.\n\nSkill 'trip' applies to this message:\nAsk for dates."
    )
    assert messages[1:] == [msg("user", "hi")]
    assert build_messages("", [], [msg("user", "hi")], 100) == [msg("user", "hi")]


async def test_the_model_gets_the_assembled_prompt_and_usage_is_stored(rig, scripted, host) -> None:
    rig.runner.loop.system_prompt = "You are a test."
    host.add_plugin_skill(
        SkillSpec(name="trip", keywords=["paris"], instructions="Ask for dates."),
        source="plugin:test",
    )
    scripted.enqueue([TextDelta("first"), Usage(10, 1)])
    await rig.runner.start(rig.ctx, "hello")
    await rig.frames_until_end()
    scripted.enqueue([TextDelta("second"), Usage(30, 2), Usage(5, 1)])
    await rig.runner.start(rig.ctx, "to paris")
    await rig.frames_until_end()
    messages = scripted.history[1].messages
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert "You are a test." in messages[0].content and "Ask for dates." in messages[0].content
    usage = await Message.filter(session_id=rig.ctx.session_id, role="assistant").values_list(
        "usage", flat=True
    )
    assert usage == [
        {"input_tokens": 10, "output_tokens": 1},
        {"input_tokens": 35, "output_tokens": 3},
    ]
