"""The event log's writer and the turn's ending under cancellation, races and a full disk.

Each test here reproduces a way Quartet lost or corrupted data before the log
had one writer (issue 11): a flush cancelled mid-transaction, a batch retried
after it half committed, a disk that fills up, a cancel racing the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise import connections

from agent.bus import EventBus
from agent.eventlog import EventLog, StorageUnavailable
from agent.loop import AgentLoop
from agent.pending import PendingRequests
from agent.protocol import ErrorCode
from agent.turns import TurnRejected, TurnRunner
from models import ApiKey, Event, Message, Session
from models.db import close_db, init_db
from plugins.llm import TextDelta
from tests.unit.conftest import TEST_KEYS, Rig


@pytest.fixture
async def file_db(tmp_path: Path) -> AsyncIterator[str]:
    """A SQLite file, so that what was committed can be checked after a reconnect."""
    url = f"sqlite://{tmp_path}/quartet.db"
    await init_db(url)
    yield url
    await close_db()


async def make_session() -> Session:
    key, _ = await ApiKey.issue("durability", TEST_KEYS)
    return await Session.create(owner_id=key.id)


async def fill_disk() -> None:
    """Make SQLite answer every growing write with SQLITE_FULL, as a full disk does."""
    conn = connections.get("default")
    _, rows = await conn.execute_query("PRAGMA page_count")
    await conn.execute_script(f"PRAGMA max_page_count = {rows[0][0]}")


async def free_disk() -> None:
    await connections.get("default").execute_script("PRAGMA max_page_count = 1073741823")


def frame(seq: int) -> str:
    return f'{{"type":"token","seq":{seq}}}'


async def test_a_reader_cancelled_mid_flush_leaves_every_write_committed(file_db, tmp_path) -> None:
    session = await make_session()
    log = EventLog(flush_interval_s=60)
    seq = 0
    for _ in range(30):
        for _ in range(50):
            seq += 1
            log.append(session.id, seq, "token", "t", frame(seq))
        # A client that gives up at once: its read is cancelled during the flush.
        reader = asyncio.ensure_future(log.read(session.id, after=0))
        await asyncio.sleep(0)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    await log.flush()
    created = await Session.create(owner_id=session.owner_id)  # a write after the storm
    await log.stop()
    await close_db()

    await init_db(file_db)  # what is on disk, not what one connection sees
    assert await Event.filter(session_id=session.id).count() == seq
    assert await Session.exists(id=created.id)


async def test_a_batch_that_half_committed_is_written_again_without_error(db) -> None:
    session = await make_session()
    for seq in (1, 2):  # what a failed try left behind
        await Event.create(session_id=session.id, seq=seq, type="token", frame=frame(seq))
    log = EventLog(flush_interval_s=60)
    for seq in (1, 2, 3, 4):
        log.append(session.id, seq, "token", "t", frame(seq))
    await log.flush()
    assert log.healthy
    stored = await Event.filter(session_id=session.id).order_by("seq").values_list("seq", flat=True)
    assert stored == [1, 2, 3, 4]
    await log.stop()


async def test_a_full_disk_is_retried_logged_once_and_nothing_is_lost(db, caplog) -> None:
    session = await make_session()
    log = EventLog(flush_interval_s=0.01)
    await fill_disk()
    for seq in range(1, 201):
        log.append(session.id, seq, "token", "t", frame(seq) + "x" * 500)
    row = log.submit(lambda: Message.create(session_id=session.id, role="user", content="kept"))
    with pytest.raises(StorageUnavailable):
        await log.write(lambda: Message.create(session_id=session.id, role="x", content="y"),
                        timeout_s=0.5)  # fmt: skip
    assert not log.healthy
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "storage failed" in failures[0].getMessage()

    await free_disk()
    assert (await row).content == "kept"
    await log.flush()
    assert log.healthy
    assert "storage recovered" in caplog.text
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert await Event.filter(session_id=session.id).count() == 200
    await log.stop()


async def test_producers_wait_for_room_and_learn_when_storage_fails(db) -> None:
    session = await make_session()
    log = EventLog(flush_interval_s=60, high_water=10, seq_block=20)
    for seq in range(1, 11):
        log.append(session.id, seq, "token", "t", frame(seq))
    await log.room()  # the writer drained the queue
    assert await Event.filter(session_id=session.id).count() == 10

    await fill_disk()
    for seq in range(11, 21):
        log.append(session.id, seq, "token", "t", frame(seq) + "x" * 5000)
    with pytest.raises(StorageUnavailable):
        await log.room()
    await free_disk()
    await log.flush()
    await log.stop()


async def test_a_turn_reserves_seqs_above_what_a_crashed_process_handed_out(db) -> None:
    session = await make_session()
    log = EventLog(flush_interval_s=60, high_water=10, seq_block=50)
    assert await log.reserve(session.id, 7) == 7
    assert (await Session.get(id=session.id)).seq_reserved == 57
    # The writer moves the reservation ahead as frames are stored.
    for seq in range(8, 40):
        log.append(session.id, seq, "token", "t", frame(seq))
    await log.flush()
    assert (await Session.get(id=session.id)).seq_reserved == 39 + 50
    # A process that crashed now left 89 reserved: the next turn numbers above it.
    crashed = EventLog(flush_interval_s=60)
    assert await crashed.reserve(session.id, 39) == 89
    # A turn that ends gives the rest back, so a clean restart numbers on.
    crashed.settle(session.id, 95)
    await crashed.flush()
    assert (await Session.get(id=session.id)).seq_reserved == 95
    await log.stop()
    await crashed.stop()


# ─── turn endings ───────────────────────────────────────────────────────────


async def ending_of(rig: Rig) -> tuple[list[dict], list[tuple[str, str]]]:
    """Every frame up to the turn's end, and the session's stored (role, status) rows."""
    frames = await rig.frames_until_end()
    await rig.runner.bus.log.flush()
    rows = await Message.filter(session_id=rig.ctx.session_id).order_by("id")
    return frames, [(m.role, m.status) for m in rows]


@pytest.mark.parametrize("steps", range(12))
async def test_a_cancel_at_any_point_of_a_turn_ends_it_exactly_once(rig, scripted, steps) -> None:
    # Every interleaving of a cancel with a short turn, one event-loop step at a time.
    scripted.enqueue([TextDelta("a"), TextDelta("b")])
    await rig.runner.start(rig.ctx, "go")
    for _ in range(steps):
        await asyncio.sleep(0)
    try:
        rig.runner.cancel(rig.ctx.session_id)
    except TurnRejected as exc:
        assert exc.code == ErrorCode.no_active_turn  # it had already ended
    frames, rows = await ending_of(rig)
    ends = [f for f in frames if f["type"] in ("final_answer", "error")]
    assert len(ends) == 1
    assert rows in (
        [("user", "complete"), ("assistant", "complete")],
        [("user", "complete"), ("assistant", "cancelled")],
    )
    expected = "complete" if ends[0]["type"] == "final_answer" else "cancelled"
    assert rows[1][1] == expected
    stored = await Event.filter(session_id=rig.ctx.session_id, type__in=["final_answer", "error"])
    assert len(stored) == 1
    assert not rig.runner.is_running(rig.ctx.session_id)


async def test_cancel_then_message_then_disconnect_still_ends_the_first_turn(rig, scripted) -> None:
    hold = asyncio.Event()
    scripted.enqueue([TextDelta("partial"), hold])
    await rig.runner.start(rig.ctx, "first")
    await rig.frames_until("token")
    rig.runner.cancel(rig.ctx.session_id)
    # The next message waits for the cancelled turn; then its client vanishes.
    waiting = asyncio.ensure_future(rig.runner.start(rig.ctx, "second"))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    frames, rows = await ending_of(rig)
    assert frames[-1]["code"] == "cancelled"
    assert rows == [("user", "complete"), ("assistant", "cancelled")]
    stored = await Event.filter(session_id=rig.ctx.session_id, type="error").count()
    assert stored == 1


async def test_storage_down_refuses_new_turns_and_a_stopped_turn_is_kept(
    db, host, scripted
) -> None:
    session = await make_session()
    log = EventLog(flush_interval_s=0.01, high_water=10, seq_block=50)
    bus = EventBus(log)
    pending = PendingRequests(30)
    runner = TurnRunner(host, bus, AgentLoop(host, pending, model_name="scripted"))
    from plugins.skills import SessionContext

    ctx = SessionContext(session_id=session.id, owner_id=session.owner_id)
    scripted.enqueue([TextDelta("x" * 3000) for _ in range(40)])
    await fill_disk()
    await runner.start(ctx, "a long answer")
    task = next(iter(runner._tasks))
    await asyncio.wait({task})
    assert not runner.is_running(session.id)
    with pytest.raises(TurnRejected) as refused:
        await runner.start(ctx, "another")
    assert refused.value.code == ErrorCode.unavailable

    await free_disk()
    await log.flush()
    rows = await Message.filter(session_id=session.id).order_by("id")
    assert [(m.role, m.status) for m in rows] == [("user", "complete"), ("assistant", "error")]
    last = await Event.filter(session_id=session.id).order_by("-seq").first()
    assert last.type == "error" and '"code":"unavailable"' in last.frame
    await runner.shutdown()
    await log.stop()


async def test_frames_appended_while_a_batch_is_written_are_written_too(db) -> None:
    session = await make_session()
    log = EventLog(flush_interval_s=0.001, high_water=10, seq_block=20)
    for seq in range(1, 2001):
        log.append(session.id, seq, "token", "t", frame(seq))
        if seq % 7 == 0:
            # Hand the loop to the writer mid-stream, as a streaming turn does.
            await asyncio.sleep(0)
    await log.flush()
    assert await Event.filter(session_id=session.id).count() == 2000
    await log.stop()


async def test_a_finished_turn_gives_back_a_reservation_its_last_frames_extended(db) -> None:
    session = await make_session()
    log = EventLog(flush_interval_s=60, high_water=10, seq_block=20)
    assert await log.reserve(session.id, 0) == 0
    for seq in range(1, 16):  # close enough to the block's end to extend it when written
        log.append(session.id, seq, "token", "t", frame(seq))
    log.settle(session.id, 15)
    await log.flush()
    assert (await Session.get(id=session.id)).seq_reserved == 15
    await log.stop()


async def test_a_model_that_streams_a_lone_surrogate_does_not_break_the_turn(rig, scripted) -> None:
    scripted.enqueue([TextDelta("ok \ud800 then")])
    await rig.runner.start(rig.ctx, "go")
    frames, rows = await ending_of(rig)
    assert frames[-1]["type"] == "final_answer"
    assert frames[-1]["content"] == "ok \ufffd then"
    assert rows == [("user", "complete"), ("assistant", "complete")]
