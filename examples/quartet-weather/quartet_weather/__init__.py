"""Weather for Quartet: a keyword skill, an alert tool that asks first, and an expert.

Installed, it is a Quartet plugin (its ``quartet.plugins`` entry point names
this module). It imports only ``quartet``, the plugin API.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from quartet import ExpertSpec, SkillSpec, Tool, ToolContext, ToolError, hookimpl

#: Alerts set so far, by session; a real plugin would call a weather service.
ALERTS: dict[str, list[str]] = {}


class AlertArgs(BaseModel):
    city: str = Field(min_length=1, max_length=100, description="The city to watch.")
    when: str = Field(default="storm", description="What to warn about: storm, frost or heat.")


async def set_weather_alert(args: AlertArgs, ctx: ToolContext) -> dict[str, str]:
    if args.when not in ("storm", "frost", "heat"):
        raise ToolError(f"cannot warn about {args.when!r}; choose storm, frost or heat")
    ALERTS.setdefault(ctx.session.session_id, []).append(f"{args.when} in {args.city}")
    return {"city": args.city, "alert": args.when, "status": "set"}


@hookimpl
def register_skills() -> list[SkillSpec]:
    return [
        SkillSpec(
            name="weather-alerts",
            keywords=["weather alert", "storm warning", "frost warning"],
            description="Sets alerts for bad weather.",
            instructions="Offer to set an alert with set_weather_alert; name the city.",
            tools=["set_weather_alert"],
        )
    ]


@hookimpl
def register_tools() -> list[Tool]:
    return [
        Tool(
            name="set_weather_alert",
            description="Warn the user when a storm, frost or heat is forecast for a city.",
            arguments=AlertArgs,
            run=set_weather_alert,
            requires_confirmation=True,
            confirmation_reason="An alert sends you messages until you cancel it.",
            timeout_s=5,
        )
    ]


@hookimpl
def register_experts() -> list[ExpertSpec]:
    return [
        ExpertSpec(
            name="meteorologist",
            role="reads forecasts and what they mean for plans",
            instructions="Say what the weather will likely be and how sure the forecast is.",
        )
    ]
