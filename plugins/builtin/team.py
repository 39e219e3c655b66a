"""Teams as a default plugin: the ``convene_team`` tool and a general-purpose bench of experts.

A message sent with ``mode: "team"`` and no skill naming experts picks its
team among the registered experts; these three make sure there always are
some. Plugins add their own with ``register_experts``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from plugins.hookspecs import hookimpl
from plugins.skills import ExpertSpec, SkillName
from plugins.tools import MAX_TEAM, Tool, ToolContext, ToolError

CONVENE_TOOL = "convene_team"

DEFAULT_EXPERTS = [
    ExpertSpec(
        name="researcher",
        role="finds the facts the question turns on",
        instructions="State the facts that matter and how sure you are of each.",
    ),
    ExpertSpec(
        name="analyst",
        role="weighs the options and their trade-offs",
        instructions="Lay out the options and compare them on what matters most.",
    ),
    ExpertSpec(
        name="critic",
        role="looks for what could go wrong",
        instructions="Name the risks, gaps and weak assumptions, most serious first.",
    ),
]


class ConveneTeamArgs(BaseModel):
    goal: str = Field(
        min_length=1, max_length=20_000, description="What the team should work out, in full."
    )
    experts: list[SkillName] = Field(
        min_length=1,
        max_length=MAX_TEAM,
        description="Expert names: registered ones, or new ones named for what they know.",
    )


async def convene_team(args: ConveneTeamArgs, ctx: ToolContext) -> dict[str, object]:
    if ctx.convene is None:
        raise ToolError("an expert cannot convene a team")
    outcome = await ctx.convene(args.goal, list(args.experts))
    return {"team_id": outcome.team_id, "tasks_done": outcome.done, "tasks_failed": outcome.failed}


@hookimpl
def register_tools() -> list[Tool]:
    return [
        Tool(
            name=CONVENE_TOOL,
            description="Hand the question to a team of experts who work on it in parallel; "
            "their merged answer becomes your reply. Use it for questions that need several "
            "kinds of expertise.",
            arguments=ConveneTeamArgs,
            run=convene_team,
            # A team takes as long as its experts (and their confirmations) take.
            timeout_s=None,
        )
    ]


@hookimpl
def register_experts() -> list[ExpertSpec]:
    return DEFAULT_EXPERTS
