"""The skill router: asks every plugin's ``match_skills`` hook about a message."""

from __future__ import annotations

import logging

from plugins.manager import PluginHost
from plugins.skills import SessionContext, SkillMatch

log = logging.getLogger(__name__)


class Router:
    def __init__(self, plugins: PluginHost) -> None:
        self.plugins = plugins

    async def match(self, message: str, session: SessionContext) -> list[SkillMatch]:
        """Every skill that matches *message*, best score first, one per skill name.

        A plugin that raises or returns something malformed is logged and skipped.
        """
        best: dict[str, SkillMatch] = {}
        for plugin_name, result in await self.plugins.call_each(
            "match_skills", message=message, session=session
        ):
            for item in result:
                try:
                    found = SkillMatch.model_validate(item, from_attributes=True)
                except ValueError:
                    log.warning("plugin %s returned a malformed match: %r", plugin_name, item)
                    continue
                if found.skill not in best or found.score > best[found.skill].score:
                    best[found.skill] = found
        return sorted(best.values(), key=lambda m: (-m.score, m.skill))
