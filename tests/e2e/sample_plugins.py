"""Plugins the e2e server loads (via its plugins.toml) to exercise the plugin paths."""

from __future__ import annotations

from pydantic import BaseModel

from plugins.hookspecs import hookimpl
from plugins.tools import Tool, ToolContext


@hookimpl
def match_skills(message, session):
    # A broken plugin: the router must log and skip it, and the turn must go on.
    if "explode" in message:
        raise RuntimeError("this plugin is broken on purpose")
    return None


class NoArgs(BaseModel):
    pass


async def explode(args: NoArgs, ctx: ToolContext) -> None:
    raise RuntimeError("this tool is broken on purpose")


@hookimpl
def register_tools() -> list[Tool]:
    return [Tool(name="explode", description="Always fails.", arguments=NoArgs, run=explode)]
