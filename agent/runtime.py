"""The services one app instance runs: plugins, event log, bus and turns."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from typing import Any

from agent.bus import EventBus
from agent.cluster import Cluster
from agent.eventlog import EventLog, StorageUnavailable
from agent.keys import KeyStore
from agent.limits import KeyLimits
from agent.loop import AgentLoop
from agent.pending import PendingRequests, check_reply_kind
from agent.protocol import (
    ConfirmationReply,
    ErrorCode,
    HumanReply,
    ProtocolError,
    parse_client_frame,
)
from agent.turns import TurnRejected, TurnRunner
from models import PendingRequest, RequestStatus, Skill
from models.db import close_db, init_db
from plugins.manager import PluginHost
from plugins.skills import SkillSpec
from settings import Settings

log = logging.getLogger(__name__)

#: How long a reply to a request sent by another process waits for its row to be stored.
REQUEST_PATIENCE_S = 1.0


class Runtime:
    def __init__(self, settings: Settings, plugins: PluginHost) -> None:
        self.settings = settings
        self.plugins = plugins
        # Fail at startup, not on the first message, when the model is unknown.
        plugins.model(settings.model)
        self.eventlog = EventLog(
            settings.event_flush_interval_s,
            high_water=settings.event_log_high_water,
            seq_block=5 * settings.event_log_high_water,
        )
        self.cluster = (
            Cluster(settings.redis_url, lease_s=settings.turn_lease_s)
            if settings.redis_url
            else None
        )
        self.bus = EventBus(self.eventlog, self.cluster)
        self.pending = PendingRequests(settings.confirmation_timeout_s)
        self.loop = AgentLoop(
            plugins,
            self.pending,
            model_name=settings.model,
            max_rounds=settings.max_tool_rounds,
            system_prompt=settings.system_prompt,
            history_budget_chars=settings.history_budget_chars,
            team_concurrency=settings.team_concurrency,
        )
        self.turns = TurnRunner(plugins, self.bus, self.loop)
        self._reaper: asyncio.Task[None] | None = None
        self.keys = KeyStore(settings)
        self.limits = KeyLimits(settings)

    async def startup(self) -> None:
        await init_db(self.settings.database_url)
        await self._bootstrap_admin_key()
        if self.cluster is not None:
            # Joined before the skills are read: a change made meanwhile still arrives.
            await self.cluster.start(self.bus.relay, self._on_control, self.bus.catch_up)
        async for skill in Skill.all():
            self.plugins.register_rest_skill(skill.owner_id, skill_spec(skill))
        await self.turns.close_interrupted()
        self.eventlog.start()
        if self.cluster is not None:
            self._reaper = asyncio.create_task(self._reap(), name="turn-reaper")

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with suppress(asyncio.CancelledError):
                await self._reaper
        await self.turns.shutdown()
        await self.plugins.aclose()
        await self.eventlog.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await close_db()

    # ── several processes ──

    async def answer(self, session_id: str, reply: ConfirmationReply | HumanReply) -> None:
        """Hand a reply to the turn that waits for it, on this process or another.

        :raises ProtocolError: as :meth:`PendingRequests.answer`.
        """
        try:
            self.pending.answer(session_id, reply)
            return
        except ProtocolError as exc:
            if self.cluster is None or exc.code is not ErrorCode.unknown_request:
                raise
            row = await self._stored_request(session_id, reply.request_id)
            if row is None or row.status != RequestStatus.open:
                raise
            check_reply_kind(row.kind, reply)
        await self.cluster.control(
            "reply", session_id=session_id, frame=reply.model_dump(mode="json")
        )

    async def _stored_request(self, session_id: str, request_id: str) -> PendingRequest | None:
        """The request's row. The process that sent the request writes it behind the
        frame: a client here that answers at once can ask before it is stored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_PATIENCE_S
        while (
            row := await PendingRequest.get_or_none(id=request_id, session_id=session_id)
        ) is None:
            if loop.time() >= deadline:
                break
            await asyncio.sleep(max(self.settings.event_flush_interval_s, 0.01))
        return row

    async def skill_changed(self, owner_id: int, name: str) -> None:
        """Tell the other processes to reload a REST skill."""
        if self.cluster is not None:
            await self.cluster.control("skill", owner_id=owner_id, name=name)

    async def _on_control(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "cancel":
            with suppress(TurnRejected):
                self.turns.cancel(message["session_id"])
        elif kind == "reply":
            # Checked by the process that received it; parsed again into its model.
            frame = parse_client_frame(
                json.dumps(message["frame"]), max_chars=10**9, max_bytes=10**9
            )
            assert isinstance(frame, ConfirmationReply | HumanReply)
            with suppress(ProtocolError):  # answered here first, or timed out meanwhile
                self.pending.answer(message["session_id"], frame)
        elif kind == "skill":
            owner_id, name = message["owner_id"], message["name"]
            skill = await Skill.get_or_none(owner_id=owner_id, name=name)
            if skill is None:
                self.plugins.unregister_rest_skill(owner_id, name)
            else:
                self.plugins.register_rest_skill(owner_id, skill_spec(skill))

    async def _reap(self) -> None:
        """Close the turns of processes that died (their leases expired)."""
        while True:
            await asyncio.sleep(self.settings.turn_lease_s)
            try:
                await self.turns.close_interrupted()
            except StorageUnavailable:
                pass  # Redis or the database is away (logged where it failed); next round
            except Exception:
                log.exception("closing the turns of dead processes failed")

    async def _bootstrap_admin_key(self) -> None:
        await self.keys.start()


def skill_spec(skill: Skill) -> SkillSpec:
    return SkillSpec(
        name=skill.name,
        keywords=skill.keywords,
        description=skill.description,
        instructions=skill.instructions,
        tools=skill.tools,
        experts=skill.experts,
    )
