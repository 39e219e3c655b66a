"""quartet.testing, the authors' kit, as an author uses it (it is active in this suite too)."""

from __future__ import annotations

import asyncio

import pytest

from quartet import ModelError, SkillMatch, TextDelta, ToolCall, hookimpl
from quartet.testing import QuartetTestApp, ScriptedModel


class Billing:
    @hookimpl
    def match_skills(self, message: str) -> list[SkillMatch] | None:
        if "invoice" in message.lower():
            return [SkillMatch(skill="billing", matched=["invoice"], score=1.0, source="billing")]
        return None


@pytest.fixture
def quartet_plugins() -> list[object]:
    return [Billing()]


async def test_with_nothing_queued_the_model_answers_like_demo(quartet: QuartetTestApp) -> None:
    result = await quartet.chat("Hello there")
    assert result.answer == "You said: Hello there" and result.error is None
    assert result.of("final_answer")[0]["type"] == "final_answer"


async def test_a_plugin_under_test_matches_before_the_answer(quartet: QuartetTestApp) -> None:
    result = await quartet.chat("Where is my invoice?")
    assert [m["skill"] for m in result.skill_matches] == ["billing"]
    assert result.frames[0]["type"] == "skill_match"


async def test_queued_rounds_call_a_tool_then_answer(
    quartet: QuartetTestApp, scripted_model: ScriptedModel
) -> None:
    scripted_model.enqueue(ToolCall(id="c1", name="calculator", arguments='{"expression": "6*7"}'))
    scripted_model.enqueue("It is 42.")
    result = await quartet.chat("six times seven?")
    assert [s["kind"] for s in result.steps] == ["tool_call", "tool_result"]
    assert result.steps[1]["result"] == 42 and result.answer == "It is 42."
    assert scripted_model.requests[1].tool_results[0].content == "42"


async def test_confirmations_are_answered_with_approve(quartet: QuartetTestApp) -> None:
    saved = await quartet.chat('[[tool:save_note {"text": "milk"}]]', approve=True)
    assert saved.of("confirmation_result")[0]["approved"] is True
    denied = await quartet.chat('[[tool:save_note {"text": "x"}]]', approve=lambda f: False)
    assert "the user denied it" in denied.answer


async def test_an_unexpected_confirmation_fails_the_test_clearly(quartet: QuartetTestApp) -> None:
    with pytest.raises(AssertionError, match=r"confirm save_note.*approve="):
        await quartet.chat('[[tool:save_note {"text": "milk"}]]')


async def test_questions_are_answered_in_order(quartet: QuartetTestApp) -> None:
    result = await quartet.chat("[[ask:Name?]] [[ask:Town?]]", answers=["Ada", "Oslo"])
    assert [f["question"] for f in result.of("ask_human")] == ["Name?", "Town?"]
    assert result.answer.endswith("You answered: Ada You answered: Oslo")


async def test_a_queued_exception_ends_the_turn_with_an_error(
    quartet: QuartetTestApp, scripted_model: ScriptedModel
) -> None:
    scripted_model.enqueue([TextDelta("Half")], ModelError("upstream broke", retryable=True))
    scripted_model.enqueue(ModelError("upstream broke", retryable=True))
    await quartet.chat("first")
    result = await quartet.chat("second")
    assert result.answer is None and result.error["code"] == "model_error"
    assert result.error["retryable"] is True


async def test_one_session_keeps_its_history(
    quartet: QuartetTestApp, scripted_model: ScriptedModel
) -> None:
    session = await quartet.new_session()
    await quartet.chat("My name is Ada.", session=session)
    await quartet.chat("What is my name?", session=session)
    assert [m.content for m in scripted_model.requests[1].messages if m.role == "user"] == [
        "My name is Ada.",
        "What is my name?",
    ]


async def test_a_team_answers_in_team_mode(quartet: QuartetTestApp) -> None:
    result = await quartet.chat("Should we migrate?", mode="team")
    assert result.of("team_formed") and result.of("team_dissolved")[0]["reason"] == "done"


class PlainStream:
    """An async iterator that is not a generator: it has no ``aclose``."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def __aiter__(self) -> PlainStream:
        return self

    async def __anext__(self) -> TextDelta:
        await asyncio.sleep(0)
        if not self.texts:
            raise StopAsyncIteration
        return TextDelta(self.texts.pop(0))


async def test_a_model_stream_may_be_a_plain_async_iterator(
    quartet: QuartetTestApp, scripted_model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scripted_model, "stream", lambda request: PlainStream("plain ", "answer"))
    result = await quartet.chat("hi")
    assert result.answer == "plain answer" and result.error is None


async def test_the_app_is_isolated_with_a_known_key(quartet: QuartetTestApp, tmp_path) -> None:
    settings = quartet.app.extensions["quartet"].settings
    assert settings.api_key == quartet.api_key and settings.data_dir == tmp_path
    assert not (tmp_path / "dev_api_key").exists()
    plugins = await quartet.get("/api/v1/plugins")
    assert plugins["model"] == "scripted"
    assert any("match_skills" in p["hooks"] for p in plugins["plugins"])
