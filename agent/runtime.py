"""The services one app instance runs: plugins, event log, bus and turns."""

from __future__ import annotations

import logging
import os
import sys

from agent.bus import EventBus
from agent.eventlog import EventLog
from agent.loop import AgentLoop
from agent.pending import PendingRequests
from agent.skills import SkillSpec
from agent.turns import TurnRunner
from models import ApiKey, Skill
from models.auth import generate_key, hash_key
from models.db import close_db, init_db
from plugins.manager import PluginHost
from settings import Settings

log = logging.getLogger(__name__)

DEV_KEY_FILE = "dev_api_key"


class Runtime:
    def __init__(self, settings: Settings, plugins: PluginHost) -> None:
        self.settings = settings
        self.plugins = plugins
        # Fail at startup, not on the first message, when the model is unknown.
        plugins.model(settings.model)
        self.eventlog = EventLog(settings.event_flush_interval_s)
        self.bus = EventBus(self.eventlog)
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

    async def startup(self) -> None:
        await init_db(self.settings.database_url)
        await self._bootstrap_admin_key()
        async for skill in Skill.all():
            self.plugins.register_rest_skill(skill.owner_id, skill_spec(skill))
        await self.turns.close_interrupted()
        self.eventlog.start()

    async def shutdown(self) -> None:
        await self.turns.shutdown()
        await self.plugins.aclose()
        await self.eventlog.stop()
        await close_db()

    async def _bootstrap_admin_key(self) -> None:
        raw = self.settings.api_key
        generated = raw is None
        if raw is None:
            raw = self._dev_key()
        if not await ApiKey.exists(key_hash=hash_key(raw)):
            await ApiKey.create(name="admin", key_hash=hash_key(raw), is_admin=True)
        if generated:
            print(f"Quartet dev API key: {raw}", file=sys.stderr, flush=True)

    def _dev_key(self) -> str:
        """The generated dev key, kept in the data dir so restarts keep sessions reachable."""
        path = self.settings.data_dir / DEV_KEY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: when several workers start at once, exactly one writes the key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            key = generate_key()
            f.write(key)
        return key


def skill_spec(skill: Skill) -> SkillSpec:
    return SkillSpec(
        name=skill.name,
        keywords=skill.keywords,
        description=skill.description,
        instructions=skill.instructions,
        tools=skill.tools,
        experts=skill.experts,
    )
