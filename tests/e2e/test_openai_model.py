"""A real server driving the openai model against a fake Chat Completions server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from tests import fake_openai
from tests.e2e.conftest import (
    TURN_END,
    WSChatHelper,
    connect,
    create_session_via_api,
    is_type,
    recv_until,
    send,
)
from tests.e2e.server import QuartetServer
from tests.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def openai_server(fake_openai_server: FakeOpenAI, tmp_path_factory) -> Iterator[QuartetServer]:
    env = fake_openai_server.quartet_env(
        QUARTET_OPENAI_STALL_TIMEOUT_S="0.5", QUARTET_SYSTEM_PROMPT="You are under test."
    )
    server = QuartetServer(tmp_path_factory.mktemp("openai"), env=env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(openai_server) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": openai_server.api_key}
    with httpx.Client(base_url=openai_server.base_url, headers=headers) as c:
        yield c


@pytest.fixture
def helper(openai_server) -> WSChatHelper:
    return WSChatHelper(openai_server.base_ws_url, openai_server.api_key)


def messages_of(client: httpx.Client, sid: str) -> list[dict]:
    return client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]


async def test_plain_answer(helper, client, fake) -> None:
    fake.enqueue(fake_openai.text("Hello there world", usage=(12, 3)))
    sid = create_session_via_api(client)
    frames = await helper.connect_and_chat(sid, [{"type": "message", "content": "Say hello"}])
    assert frames[0]["model"] == "openai:fake-model"
    assert "".join(f["content"] for f in frames if f["type"] == "token") == "Hello there world"
    assert frames[-1]["content"] == "Hello there world"
    sent = fake.requests[0]
    assert sent["model"] == "fake-model"
    assert sent["messages"][0]["role"] == "system"
    assert "You are under test." in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello"}
    assert {t["function"]["name"] for t in sent["tools"]} >= {"calculator", "save_note"}
    stored = messages_of(client, sid)[-1]
    assert stored["usage"] == {"input_tokens": 12, "output_tokens": 3}


async def test_the_next_turn_sees_the_history(helper, client, fake) -> None:
    fake.enqueue(fake_openai.text("Paris."), fake_openai.text("Lyon."))
    sid = create_session_via_api(client)
    await helper.connect_and_chat(
        sid,
        [
            {"type": "message", "content": "Capital?"},
            {"type": "message", "content": "Second city?"},
        ],
    )
    assert fake.requests[1]["messages"][1:] == [
        {"role": "user", "content": "Capital?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Second city?"},
    ]


async def test_tool_call_with_confirmation(helper, client, fake) -> None:
    fake.enqueue(
        fake_openai.tool_calls(("save_note", {"text": "call mum"})), fake_openai.text("Saved it.")
    )
    sid = create_session_via_api(client)
    ws, _ = await connect(helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "Remind me to call mum"})
        request = (await recv_until(ws, is_type("confirmation_request")))[-1]
        assert request["arguments"] == {"text": "call mum"}
        await send(
            ws,
            {"type": "confirmation_reply", "request_id": request["request_id"], "approved": True},
        )
        frames = await recv_until(ws, is_type(*TURN_END))
    assert frames[-1]["content"] == "Saved it."
    result = next(f for f in frames if f.get("kind") == "tool_result")
    back = fake.requests[1]["messages"]
    assert back[-2]["tool_calls"][0]["function"]["name"] == "save_note"
    assert back[-1]["role"] == "tool" and back[-1]["tool_call_id"] == "call_0_save_note"
    assert json.loads(back[-1]["content"]) == result["result"]


async def test_parallel_tool_calls(helper, client, fake) -> None:
    fake.enqueue(
        fake_openai.tool_calls(
            ("calculator", {"expression": "6*7"}), ("calculator", {"expression": "2**10"})
        ),
        fake_openai.text("42 and 1024."),
    )
    sid = create_session_via_api(client)
    frames = await helper.connect_and_chat(sid, [{"type": "message", "content": "Two sums"}])
    steps = [(f["kind"], f["call_id"]) for f in frames if f["type"] == "step"]
    assert steps == [
        ("tool_call", "call_0_calculator"),
        ("tool_result", "call_0_calculator"),
        ("tool_call", "call_1_calculator"),
        ("tool_result", "call_1_calculator"),
    ]
    back = fake.requests[1]["messages"]
    assert [(m["tool_call_id"], m["content"]) for m in back[-2:]] == [
        ("call_0_calculator", "42"),
        ("call_1_calculator", "1024"),
    ]
    assert len(back[-3]["tool_calls"]) == 2
    assert frames[-1]["content"] == "42 and 1024."
    assert messages_of(client, sid)[-1]["usage"] == {"input_tokens": 30, "output_tokens": 13}


async def test_ask_human(helper, client, fake) -> None:
    fake.enqueue(
        fake_openai.tool_calls(("ask_human", {"question": "Your name?"})),
        fake_openai.text("Hello Ada."),
    )
    sid = create_session_via_api(client)
    ws, _ = await connect(helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "Greet me"})
        asked = (await recv_until(ws, is_type("ask_human")))[-1]
        assert asked["question"] == "Your name?"
        await send(ws, {"type": "reply", "request_id": asked["request_id"], "content": "Ada"})
        frames = await recv_until(ws, is_type(*TURN_END))
    assert frames[-1]["content"] == "Hello Ada."
    assert fake.requests[1]["messages"][-1]["content"] == "Ada"


async def test_429_then_success(helper, client, fake) -> None:
    fake.enqueue(fake_openai.status(429, **{"retry-after-ms": "20"}), fake_openai.text("Made it."))
    sid = create_session_via_api(client)
    frames = await helper.connect_and_chat(sid, [{"type": "message", "content": "hi"}])
    assert frames[-1] == frames[-1] | {"type": "final_answer", "content": "Made it."}
    assert len(fake.requests) == 2


async def test_500_mid_stream_ends_the_turn_and_keeps_the_partial_answer(
    helper, client, fake
) -> None:
    fake.enqueue(fake_openai.text("one two three four", error_after=2))
    sid = create_session_via_api(client)
    frames = await helper.connect_and_chat(sid, [{"type": "message", "content": "count"}])
    assert frames[-1] == frames[-1] | {"type": "error", "code": "model_error", "retryable": True}
    assert "upstream exploded" in frames[-1]["message"]
    assert len(fake.requests) == 1  # tokens were sent: not retried
    stored = messages_of(client, sid)[-1]
    assert (stored["status"], stored["content"]) == ("error", "one two")
    # The session takes the next message.
    fake.enqueue(fake_openai.text("Fine now."))
    frames = await helper.connect_and_chat(sid, [{"type": "message", "content": "again"}])
    assert frames[-1]["content"] == "Fine now."


async def test_a_stalled_stream_times_out(helper, client, fake) -> None:
    fake.enqueue(fake_openai.text("one two three", stall_after=1))
    sid = create_session_via_api(client)
    frames = await helper.connect_and_chat(sid, [{"type": "message", "content": "stall"}])
    assert frames[-1] == frames[-1] | {"type": "error", "code": "timeout"}
    assert "0.5 s" in frames[-1]["message"]
    assert await asyncio.to_thread(fake.disconnected.wait, 10)
    assert messages_of(client, sid)[-1]["content"] == "one"


async def test_cancel_closes_the_upstream_stream(helper, client, fake) -> None:
    fake.enqueue(fake_openai.text("word " * 500, delay_s=0.02))
    sid = create_session_via_api(client)
    ws, _ = await connect(helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "talk a lot"})
        await recv_until(ws, is_type("token"))
        await send(ws, {"type": "cancel"})
        assert (await recv_until(ws, is_type("error")))[-1]["code"] == "cancelled"
        assert await asyncio.to_thread(fake.disconnected.wait, 10)
        # Nothing of the turn follows its end.
        await send(ws, {"type": "ping"})
        after = await recv_until(ws, is_type("pong"))
        assert [f["type"] for f in after] == ["pong"]
    assert messages_of(client, sid)[-1]["status"] == "cancelled"
