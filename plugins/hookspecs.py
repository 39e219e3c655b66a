"""Every hook a Quartet plugin may implement: the plugin contract.

``docs/plugins.md`` documents each hook under a heading with its exact
signature; ``tests/unit/test_docs.py`` fails when the two drift apart.
Authors import :data:`hookimpl` and the types from the ``quartet`` package.
Hooks are always called with keyword arguments, so an implementation may
accept fewer arguments than the spec names.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from plugins.llm import ChatModel
from plugins.skills import ExpertSpec, SessionContext, SkillMatch, SkillSpec
from plugins.tools import Tool

PROJECT = "quartet"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ─── skills ─────────────────────────────────────────────────────────────────


@hookspec
def register_skills() -> list[SkillSpec] | None:
    """Skills this plugin provides to every session.

    Called once at startup. Each returned spec is matched by its keywords
    (whole words, case-insensitive) like a REST skill. A skill name
    registered twice is an error.

    :returns: a list of :class:`quartet.SkillSpec`, or ``None``.
    """


@hookspec
def match_skills(message: str, session: SessionContext) -> list[SkillMatch] | None:
    """The keyword hook: which skills does this user message call for?

    The router calls every implementation for each user message, before the
    agent loop runs; each match becomes one ``skill_match`` frame, best
    score first. May be ``async def``.

    :param message: the user's message text.
    :param session: the session it was sent in.
    :returns: a list of :class:`quartet.SkillMatch`, or ``None``.
    """


# ─── tools ──────────────────────────────────────────────────────────────────


@hookspec
def register_tools() -> list[Tool] | None:
    """Tools the model may call.

    Called once at startup. A tool name registered twice is an error. A
    matched skill whose ``tools`` names some restricts the model to those;
    otherwise the model sees every tool.

    :returns: a list of :class:`quartet.Tool`, or ``None``.
    """


# ─── models ─────────────────────────────────────────────────────────────────


@hookspec
def register_models(register: Callable[[ChatModel], None]) -> None:
    """Register language models by calling ``register(model)`` for each.

    Called once at startup. A model has a ``name`` (what ``QUARTET_MODEL``
    selects) and an async ``stream(request)`` generator; see
    :class:`quartet.ChatModel`. A name registered twice is an error.
    """


# ─── teams ──────────────────────────────────────────────────────────────────


@hookspec
def register_experts() -> list[ExpertSpec] | None:
    """Experts a team may include.

    Called once at startup. An expert has a ``name``, a ``role`` (shown to
    clients), ``instructions`` (its system prompt), and optionally its own
    ``model`` and the ``tools`` it may call. A name registered twice is an
    error. A turn in team mode with no experts named picks among these.

    :returns: a list of :class:`quartet.ExpertSpec`, or ``None``.
    """


# ─── turns ──────────────────────────────────────────────────────────────────


@hookspec
def on_turn_start(session: SessionContext, turn_id: str, message: str) -> None:
    """A turn is about to run, after the user message was stored.

    May be ``async def``. Its return value is ignored; an exception is logged
    and does not stop the turn.
    """


@hookspec
def on_turn_end(session: SessionContext, turn_id: str, status: str, answer: str) -> None:
    """A turn ended; ``status`` is ``complete``, ``cancelled`` or ``error``.

    ``answer`` is the (possibly partial) assistant text that was stored. May
    be ``async def``; an exception is logged and ignored.
    """
