"""What each frame of a turn adds to the metrics (agent/metrics.py), without a server."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from agent import metrics
from agent.loop import model_stream
from agent.protocol import ConfirmationResult, ErrorCode, FinalAnswer, Step, StepError, Token
from agent.protocol import Error as ErrorEvent
from plugins.llm import ModelError, Usage


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def delta():
    """How much each sample grew since the test began."""
    seen: dict[tuple[str, tuple], float] = {}

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return sample(name, **labels) - seen.setdefault(key, sample(name, **labels))

    return grew


def test_a_turn_counts_tokens_tools_confirmations_and_its_outcome(delta) -> None:
    names = [
        ("quartet_tokens_streamed_total", {}),
        ("quartet_first_token_seconds_count", {}),
        ("quartet_turn_duration_seconds_count", {}),
        ("quartet_turns_total", {"outcome": "complete"}),
        ("quartet_tool_calls_total", {"tool": "calc", "outcome": "ok"}),
        ("quartet_tool_calls_total", {"tool": "calc", "outcome": "timeout"}),
        ("quartet_confirmations_total", {"outcome": "approved"}),
        ("quartet_confirmations_total", {"outcome": "denied"}),
        ("quartet_confirmations_total", {"outcome": "timeout"}),
        ("quartet_model_tokens_total", {"kind": "output"}),
    ]
    for name, labels in names:
        delta(name, **labels)

    metrics.turn_started("t1")
    for word in ("one", "two", "three"):
        metrics.turn_emitted("t1", Token(content=word))
    metrics.turn_emitted("t1", Step(kind="tool_result", tool="calc", call_id="c", result=4))
    error = StepError(code=ErrorCode.timeout, message="slow")
    metrics.turn_emitted("t1", Step(kind="tool_result", tool="calc", call_id="d", error=error))
    metrics.turn_emitted("t1", Step(kind="tool_call", tool="calc", call_id="e", arguments={}))
    for approved, by in ((True, "user"), (False, "user"), (False, "timeout")):
        result = ConfirmationResult(request_id="r", approved=approved, by=by)
        metrics.turn_emitted("t1", result)
    metrics.turn_ended("t1", FinalAnswer(content="x", message_id=1), Usage(3, 7))

    assert delta("quartet_tokens_streamed_total") == 3
    assert delta("quartet_first_token_seconds_count") == 1  # the first token only
    assert delta("quartet_turn_duration_seconds_count") == 1
    assert delta("quartet_turns_total", outcome="complete") == 1
    assert delta("quartet_tool_calls_total", tool="calc", outcome="ok") == 1
    assert delta("quartet_tool_calls_total", tool="calc", outcome="timeout") == 1
    assert delta("quartet_confirmations_total", outcome="approved") == 1
    assert delta("quartet_confirmations_total", outcome="denied") == 1
    assert delta("quartet_confirmations_total", outcome="timeout") == 1
    assert delta("quartet_model_tokens_total", kind="output") == 7


def test_a_failed_turn_counts_by_its_error_code(delta) -> None:
    delta("quartet_turns_total", outcome="cancelled")
    metrics.turn_started("t2")
    metrics.turn_ended("t2", ErrorEvent(code=ErrorCode.cancelled, message="stop"), None)
    assert delta("quartet_turns_total", outcome="cancelled") == 1


def test_exposition_is_prometheus_text() -> None:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    assert b"# TYPE quartet_turns_total counter" in body


class FailingModel:
    name = "flaky"

    async def stream(self, request):
        raise ModelError("upstream is down")
        yield  # an async generator, as models are


async def test_model_calls_and_errors_are_counted_by_model(delta) -> None:
    delta("quartet_model_calls_total", model="flaky")
    delta("quartet_model_errors_total", model="flaky")
    with pytest.raises(ModelError):
        async with model_stream(FailingModel(), None) as stream:  # type: ignore[arg-type]
            async for _ in stream:
                pass
    assert delta("quartet_model_calls_total", model="flaky") == 1
    assert delta("quartet_model_errors_total", model="flaky") == 1
