"""Quartet's plugin API: the one package a plugin author imports.

A plugin is a module or an object whose functions are marked ``@hookimpl``;
the hooks are documented in ``docs/plugins.md``. Everything an author needs
to write one is importable from here::

    from quartet import SkillSpec, Tool, ToolContext, hookimpl

and ``quartet.testing`` (a pytest plugin, active once Quartet is installed)
gives their tests an app, a key and a scripted model. Names not listed in
``__all__`` are Quartet's internals and may change in any release.
"""

from __future__ import annotations

from plugins.hookspecs import hookimpl
from plugins.llm import (
    ChatMessage,
    ChatModel,
    ModelError,
    ModelOutput,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)
from plugins.skills import ExpertSpec, SessionContext, SkillMatch, SkillSpec
from plugins.tools import Tool, ToolContext, ToolError

__all__ = [
    "ChatMessage",
    "ChatModel",
    "ExpertSpec",
    "ModelError",
    "ModelOutput",
    "ModelRequest",
    "ReasoningDelta",
    "SessionContext",
    "SkillMatch",
    "SkillSpec",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "Usage",
    "hookimpl",
]
