"""Plugins the e2e server loads (via its plugins.toml) to exercise the plugin paths."""

from __future__ import annotations

from plugins.hookspecs import hookimpl


@hookimpl
def match_skills(message, session):
    # A broken plugin: the router must log and skip it, and the turn must go on.
    if "explode" in message:
        raise RuntimeError("this plugin is broken on purpose")
    return None
