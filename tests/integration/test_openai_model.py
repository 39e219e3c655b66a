"""The openai model plugin against a real (fake) Chat Completions server on loopback."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from plugins.builtin.openai_chat import OpenAIChat, OpenAISettings
from plugins.llm import (
    ChatMessage,
    ModelError,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)
from plugins.tools import Tool
from tests import fake_openai
from tests.fake_openai import FakeOpenAI, Script


@pytest.fixture
async def model(fake: FakeOpenAI):
    family = OpenAIChat(
        OpenAISettings(
            base_url=fake.base_url, api_key="sk-test", stall_timeout_s=0.3, retry_backoff_s=0.01
        )
    )
    selected = family.variant("fake-model")
    yield selected
    await selected.aclose()


class Args(BaseModel):
    expression: str


async def noop(args, ctx) -> None:
    return None


CALC = Tool(name="calculator", description="maths", arguments=Args, run=noop)


def request(content: str = "hi", **options) -> ModelRequest:
    return ModelRequest(messages=[ChatMessage(role="user", content=content)], **options)


async def collect(model: OpenAIChat, req: ModelRequest | None = None) -> list[object]:
    return [out async for out in model.stream(req or request())]


async def test_streams_text_and_usage(model, fake) -> None:
    fake.enqueue(fake_openai.text("Hello there world", usage=(12, 3)))
    outputs = await collect(model, request("greet me"))
    assert outputs == [
        TextDelta("Hello"),
        TextDelta(" there"),
        TextDelta(" world"),
        Usage(12, 3),
    ]
    sent = fake.requests[0]
    assert sent["model"] == "fake-model" and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "user", "content": "greet me"}]
    assert "tools" not in sent


async def test_reasoning_deltas_become_thinking(model, fake) -> None:
    fake.enqueue(
        Script(
            deltas=[{"reasoning_content": "Let me think."}, {"reasoning": "Hm."}, {"content": "4"}]
        )
    )
    assert await collect(model) == [
        ReasoningDelta("Let me think."),
        ReasoningDelta("Hm."),
        TextDelta("4"),
    ]


async def test_parallel_tool_calls_are_assembled_across_chunks(model, fake) -> None:
    fake.enqueue(
        fake_openai.tool_calls(("calculator", {"expression": "6*7"}), ("list_notes", {}), pieces=4)
    )
    outputs = await collect(model, request(tools=[CALC]))
    calls = [o for o in outputs if isinstance(o, ToolCall)]
    assert calls == [
        ToolCall(id="call_0_calculator", name="calculator", arguments='{"expression": "6*7"}'),
        ToolCall(id="call_1_list_notes", name="list_notes", arguments="{}"),
    ]
    tool = fake.requests[0]["tools"][0]
    assert tool["type"] == "function" and tool["function"]["name"] == "calculator"
    assert tool["function"]["parameters"]["required"] == ["expression"]


async def test_tool_calls_and_results_go_back_in_the_openai_format(model, fake) -> None:
    fake.enqueue(fake_openai.text("done"))
    call = ToolCall(id="call_1", name="calculator", arguments='{"expression": "1"}')
    messages = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="calc"),
        ChatMessage(role="assistant", content="", tool_calls=(call,)),
        ChatMessage(role="tool", content="1", tool_call_id="call_1"),
    ]
    await collect(model, ModelRequest(messages=messages))
    assert fake.requests[0]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "calc"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "1"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "1"},
    ]


async def test_429_then_success_is_retried(model, fake) -> None:
    fake.enqueue(fake_openai.status(429, **{"retry-after-ms": "10"}), fake_openai.text("ok"))
    assert (await collect(model))[0] == TextDelta("ok")
    assert len(fake.requests) == 2


async def test_5xx_until_retries_run_out_is_a_retryable_model_error(model, fake) -> None:
    fake.enqueue(*[fake_openai.status(503, **{"retry-after-ms": "5"})] * 3)
    with pytest.raises(ModelError) as failed:
        await collect(model)
    assert failed.value.retryable and "503" in str(failed.value)
    assert len(fake.requests) == 3  # the first try and two retries


async def test_401_is_not_retried_and_says_what_to_check(model, fake) -> None:
    fake.enqueue(fake_openai.status(401))
    with pytest.raises(ModelError) as failed:
        await collect(model)
    assert not failed.value.retryable and "QUARTET_OPENAI_API_KEY" in str(failed.value)
    assert len(fake.requests) == 1


async def collect_until_error(model: OpenAIChat) -> tuple[list[object], ModelError]:
    """What the stream yielded before it raised, and what it raised."""
    outputs: list[object] = []
    with pytest.raises(ModelError) as failed:
        async for output in model.stream(request()):
            outputs.append(output)
    return outputs, failed.value


async def test_an_error_mid_stream_is_not_retried(model, fake) -> None:
    fake.enqueue(fake_openai.text("one two three four", error_after=2))
    outputs, error = await collect_until_error(model)
    assert outputs == [TextDelta("one"), TextDelta(" two")]
    assert error.retryable and "upstream exploded" in str(error)
    assert len(fake.requests) == 1


async def test_a_stalled_stream_is_a_timeout(model, fake) -> None:
    fake.enqueue(fake_openai.text("one two three", stall_after=1))
    outputs, error = await collect_until_error(model)
    assert outputs == [TextDelta("one")]
    assert error.code == "timeout" and "0.3 s" in str(error)
    # Giving up closes the upstream connection.
    assert await asyncio.to_thread(fake.disconnected.wait, 10)


@pytest.mark.parametrize(
    "broken",
    [fake_openai.text("never", error_after=0), fake_openai.text("never", stall_after=0)],
    ids=["error-event", "stall"],
)
async def test_a_stream_that_breaks_before_its_first_output_is_retried(model, fake, broken) -> None:
    fake.enqueue(broken, fake_openai.text("second try"))
    assert (await collect(model))[:2] == [TextDelta("second"), TextDelta(" try")]
    assert len(fake.requests) == 2


async def test_retries_of_a_broken_stream_are_bounded(model, fake) -> None:
    fake.enqueue(*[fake_openai.text("never", error_after=0)] * 3)
    with pytest.raises(ModelError, match="upstream exploded"):
        await collect(model)
    assert len(fake.requests) == 3


async def test_closing_the_stream_closes_the_upstream_connection(model, fake) -> None:
    fake.enqueue(fake_openai.text("word " * 200, delay_s=0.01))
    stream = model.stream(request())
    assert await anext(stream) == TextDelta("word")
    await stream.aclose()
    assert await asyncio.to_thread(fake.disconnected.wait, 10)


async def test_an_unreachable_endpoint_is_a_retryable_model_error() -> None:
    settings = OpenAISettings(base_url="http://127.0.0.1:9/v1", max_retries=0)
    model = OpenAIChat(settings).variant("m")
    with pytest.raises(ModelError) as failed:
        await collect(model)
    await model.aclose()
    assert failed.value.retryable and "cannot reach" in str(failed.value)


async def test_the_family_needs_a_model_name() -> None:
    with pytest.raises(ModelError, match="openai:MODEL_NAME"):
        await collect(OpenAIChat(OpenAISettings()))
