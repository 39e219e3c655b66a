"""Channels, outboxes and token coalescing."""

from __future__ import annotations

from agent.bus import EventBus, Outgoing, Subscriber, coalesce
from agent.eventlog import EventLog
from agent.protocol import FinalAnswer, Pong, Token


def out(event) -> Outgoing:
    return Outgoing(event, event.to_json())


def test_coalesce_merges_runs_of_one_speaker() -> None:
    items = [
        out(Token(seq=1, turn_id="t", content="a")),
        out(Token(seq=2, turn_id="t", content="b")),
        out(Token(seq=3, turn_id="t", content="c", expert="x")),
        out(FinalAnswer(seq=4, turn_id="t", content="abc", message_id=1)),
        out(Token(seq=5, turn_id="u", content="d")),
    ]
    merged = [i.event for i in coalesce(items)]
    assert [(e.type, getattr(e, "content", None), e.seq) for e in merged] == [
        ("token", "ab", 2), ("token", "c", 3), ("final_answer", "abc", 4), ("token", "d", 5),
    ]  # fmt: skip
    assert '"content":"ab"' in coalesce(items)[0].frame


async def test_overflowing_outbox_is_marked_not_grown() -> None:
    sub = Subscriber(maxsize=2)
    for seq in range(3):
        sub.offer(out(Token(seq=seq, content="x")))
    assert sub.overflowed
    assert await sub.drain() == []


async def test_channel_numbers_logged_events_only(db) -> None:
    log = EventLog(flush_interval_s=60)
    channel = await EventBus(log).channel("s")
    sub = Subscriber(10)
    channel.subscribers.add(sub)
    channel.publish(Token(content="a"))
    channel.send_to(sub, Pong())
    channel.publish(Token(content="b"))
    seqs = [(i.event.type, i.event.seq) for i in await sub.drain()]
    assert seqs == [("token", 1), ("pong", 1), ("token", 2)]
    assert await log.last_seq("s") == 2
