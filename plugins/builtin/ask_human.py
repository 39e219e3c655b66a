"""The ``ask_human`` tool: the model asks the human a question and waits for the reply."""

from __future__ import annotations

from pydantic import BaseModel, Field

from plugins.hookspecs import hookimpl
from plugins.tools import Tool, ToolContext

MAX_QUESTION_CHARS = 2_000


class AskHumanArgs(BaseModel):
    question: str = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS, description="What to ask the human."
    )


async def ask_human(args: AskHumanArgs, ctx: ToolContext) -> str:
    return await ctx.ask_human(args.question)


@hookimpl
def register_tools() -> list[Tool]:
    return [
        Tool(
            name="ask_human",
            description="Ask the human a question when you need information only they have; "
            "returns their reply.",
            arguments=AskHumanArgs,
            run=ask_human,
            # The wait for the reply has its own timeout (QUARTET_CONFIRMATION_TIMEOUT_S).
            timeout_s=None,
        )
    ]
