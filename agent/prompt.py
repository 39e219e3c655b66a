"""Prompt assembly: what a model sees at the start of a turn.

A system message (the configured prompt plus the instructions of each matched
skill), then as much of the session's history as fits the budget, newest
kept, then the user's new message. The tools' JSON schemas travel beside the
messages, in :attr:`agent.llm.ModelRequest.tools`.
"""

from __future__ import annotations

from plugins.llm import ChatMessage
from plugins.skills import SkillMatch


def system_message(prompt: str, skills: list[SkillMatch]) -> ChatMessage | None:
    """The system message for a turn, or ``None`` when there is nothing to say."""
    parts = [prompt.strip()] if prompt.strip() else []
    for skill in skills:
        if skill.instructions:
            parts.append(f"Skill {skill.skill!r} applies to this message:\n{skill.instructions}")
    return ChatMessage(role="system", content="\n\n".join(parts)) if parts else None


def fit_history(history: list[ChatMessage], budget_chars: int) -> list[ChatMessage]:
    """The newest messages of *history* whose contents fit in *budget_chars*.

    The last message (the user's new one) is always kept; older ones are
    dropped oldest first, and empty ones (an answer cancelled before its first
    token) are left out.
    """
    if not history:
        return []
    *earlier, newest = history
    kept: list[ChatMessage] = []
    used = len(newest.content)
    for message in reversed(earlier):
        if not message.content:
            continue
        used += len(message.content)
        if used > budget_chars:
            break
        kept.append(message)
    return [*reversed(kept), newest]


def build_messages(
    prompt: str, skills: list[SkillMatch], history: list[ChatMessage], budget_chars: int
) -> list[ChatMessage]:
    """System message, then the history that fits, ending with the user's message."""
    system = system_message(prompt, skills)
    fitted = fit_history(history, budget_chars)
    return [system, *fitted] if system else fitted
