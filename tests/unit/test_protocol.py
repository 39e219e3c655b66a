"""The protocol module: parsing every kind of client frame, and the server envelope."""

from __future__ import annotations

import json

import pytest

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
