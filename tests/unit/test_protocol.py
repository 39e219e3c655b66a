"""The protocol module: parsing every kind of client frame, and the server envelope."""

from __future__ import annotations

import json

import pytest

from agent import json_limits
from agent.protocol import (
    Cancel,
    ConfirmationReply,
    Error,
    ErrorCode,
    HumanReply,
    Ping,
    Pong,
    ProtocolError,
    Token,
    UserMessage,
    parse_client_frame,
    server_event_adapter,
)


def parse(raw: str | bytes, max_chars: int = 100, max_bytes: int = 10_000):
    return parse_client_frame(raw, max_chars=max_chars, max_bytes=max_bytes)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "ping"}', Ping(type="ping")),
        ('{"type": "cancel", "extra": 1}', Cancel(type="cancel")),
        ('{"type": "message", "content": "hi"}', UserMessage(type="message", content="hi")),
        (
            '{"type": "message", "content": "hi", "mode": "team"}',
            UserMessage(type="message", content="hi", mode="team"),
        ),
        (
            '{"type": "confirmation_reply", "request_id": "r", "approved": false}',
            ConfirmationReply(type="confirmation_reply", request_id="r", approved=False),
        ),
        (
            '{"type": "reply", "request_id": "r", "content": "yes"}',
            HumanReply(type="reply", request_id="r", content="yes"),
        ),
    ],
)
def test_valid_frames(raw: str, expected) -> None:
    assert parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "mentions"),
    [
        (b'{"type": "ping"}', ErrorCode.bad_request, "binary"),
        ("{", ErrorCode.bad_request, "JSON"),
        ("null", ErrorCode.bad_request, "object"),
        ('{"type": null}', ErrorCode.bad_request, "'type'"),
        ('{"type": "teleport"}', ErrorCode.unknown_type, "teleport"),
        ('{"type": "message", "content": ""}', ErrorCode.bad_request, "field 'content'"),
        ('{"type": "message", "content": 1}', ErrorCode.bad_request, "field 'content'"),
        ('{"type": "message", "content": "' + "x" * 101 + '"}', ErrorCode.too_large, "101"),
        ('{"type": "human_reply", "content": "x"}', ErrorCode.bad_request, "field 'request_id'"),
        ('{"type": "confirmation_reply", "request_id": "r", "approved": "maybe"}',
         ErrorCode.bad_request, "field 'approved'"),
        # Strict booleans: lax pydantic would read these as a denial or an approval.
        ('{"type": "confirmation_reply", "request_id": "r", "approved": "no"}',
         ErrorCode.bad_request, "field 'approved'"),
        ('{"type": "confirmation_reply", "request_id": "r", "approved": "true"}',
         ErrorCode.bad_request, "field 'approved'"),
        ('{"type": "confirmation_reply", "request_id": "r", "approved": 0}',
         ErrorCode.bad_request, "field 'approved'"),
        ('{"type": "confirmation_reply", "request_id": "", "approved": true}',
         ErrorCode.bad_request, "field 'request_id'"),
        ('{"type": "human_reply", "request_id": "", "content": "x"}',
         ErrorCode.bad_request, "field 'request_id'"),
        # Quart hands an empty binary frame over as None.
        (None, ErrorCode.bad_request, "binary"),
        (b"", ErrorCode.bad_request, "binary"),
    ],
)  # fmt: skip
def test_invalid_frames(raw, code: ErrorCode, mentions: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(raw)
    assert caught.value.code == code
    assert mentions in caught.value.message


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse("{" * 20_000)
    assert caught.value.code == ErrorCode.too_large


def test_content_limit_counts_characters_not_bytes() -> None:
    assert parse(json.dumps({"type": "message", "content": "é" * 100})).content == "é" * 100


def test_server_event_envelope_round_trips() -> None:
    token = Token(session_id="s", seq=3, turn_id="t", content="hi")
    data = json.loads(token.to_json())
    assert data["type"] == "token" and data["seq"] == 3 and data["ts"].endswith("Z")
    assert "expert" not in data  # optional fields left out when unset
    assert server_event_adapter.validate_python(data) == token


def test_error_frames_are_logged_only_from_turns() -> None:
    # The class says logged; replies to a bad frame are sent with send_to, unlogged.
    assert Error.logged and not Pong.logged


# ─── hostile JSON: bounded, linear, and never an exception other than ProtocolError ─

LONE_SURROGATES = [
    pytest.param(r'{"type": "message", "content": "hi \ud800"}', id="content"),
    pytest.param(r'{"type": "message", "content": "\udfff"}', id="low-half"),
    pytest.param(r'{"type": "human_reply", "request_id": "r", "content": "\ud800"}', id="reply"),
    pytest.param(r'{"type": "human_reply", "request_id": "r\ud800", "content": "x"}', id="id"),
    pytest.param(r'{"type": "ping", "extra": ["\ud800"]}', id="ignored-field"),
    pytest.param(r'{"type": "ping", "\ud800": 1}', id="key"),
    pytest.param(r'{"type": "message", "content": "\ude00\ud83d"}', id="pair-reversed"),
]


@pytest.mark.parametrize("raw", LONE_SURROGATES)
def test_lone_surrogate_anywhere_is_bad_request(raw: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(raw)
    assert caught.value.code == ErrorCode.bad_request
    assert "surrogate" in caught.value.message


def test_surrogate_pair_is_one_character_and_accepted() -> None:
    frame = parse(r'{"type": "message", "content": "smile \ud83d\ude00"}')
    assert frame.content == "smile \U0001f600"


def test_escaped_backslash_before_u_is_not_a_surrogate() -> None:
    assert parse(r'{"type": "message", "content": "C:\\ud800"}').content == "C:\\ud800"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"type": "ping", "x": ' + "[" * 5000 + "]" * 5000 + "}", id="arrays"),
        pytest.param(
            '{"type": "ping", "x": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}", id="objects"
        ),
        pytest.param("[" * 5000, id="unclosed"),
        pytest.param('{"type": "ping", "x": ' + "[" * 33 + "]" * 33 + "}", id="33-deep"),
    ],
)
def test_deep_nesting_is_refused_before_json_loads_recurses(raw: str, monkeypatch) -> None:
    def recursing_loads(text: str) -> None:
        raise AssertionError("json.loads ran on deep input")

    monkeypatch.setattr(json_limits.json, "loads", recursing_loads)
    with pytest.raises(ProtocolError) as caught:
        parse(raw, max_bytes=100_000)
    assert caught.value.code == ErrorCode.bad_request
    assert "nested deeper than 32" in caught.value.message or "pair up" in caught.value.message


def test_nesting_up_to_the_limit_is_accepted() -> None:
    raw = '{"type": "ping", "x": ' + "[" * 31 + "]" * 31 + "}"
    assert parse(raw) == Ping(type="ping")


def test_brackets_inside_strings_do_not_count() -> None:
    content = "[[tool:x]] " + "[" * 1000 + '\\"{' * 100
    assert (
        parse(json.dumps({"type": "message", "content": content}), max_chars=5000).content
        == content
    )


def test_too_many_values_is_bad_request() -> None:
    raw = '{"type": "ping", "x": [' + ",".join(["0"] * 60_000) + "]}"
    with pytest.raises(ProtocolError) as caught:
        parse(raw, max_bytes=1_000_000)
    assert caught.value.code == ErrorCode.bad_request
    assert "50000 values" in caught.value.message
