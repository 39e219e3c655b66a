"""An example skill plugin: keywords via ``register_skills``.

Enable it in plugins.toml (``[plugins] enabled = ["plugins.examples.weather"]``).
"""

from __future__ import annotations

from plugins.hookspecs import hookimpl
from plugins.skills import SkillSpec


@hookimpl
def register_skills() -> list[SkillSpec]:
    return [
        SkillSpec(
            name="weather",
            keywords=["weather", "forecast", "temperature"],
            description="Answers questions about the weather.",
            instructions="When asked about the weather, say which place and day you mean.",
        )
    ]
