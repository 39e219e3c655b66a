"""quartet-weather's tests: nothing but the fixtures of quartet.testing."""

from quartet import ToolCall

ALERT = '[[tool:set_weather_alert {"city": "Oslo"}]]'


async def test_the_skill_matches_its_keywords(quartet):
    result = await quartet.chat("Please set a storm warning for Oslo")
    assert [m["skill"] for m in result.skill_matches] == ["weather-alerts"]
    assert result.skill_matches[0]["matched"] == ["storm warning"]


async def test_an_approved_alert_is_set(quartet):
    result = await quartet.chat(ALERT, approve=True)
    assert result.of("confirmation_request")[0]["reason"].startswith("An alert sends")
    assert result.steps[-1]["result"] == {"city": "Oslo", "alert": "storm", "status": "set"}


async def test_a_denied_alert_is_not_set(quartet):
    result = await quartet.chat(ALERT, approve=False)
    assert len(result.steps) == 1 and "the user denied it" in result.answer


async def test_the_model_is_told_about_a_bad_alert(quartet, scripted_model):
    call = ToolCall(id="c1", name="set_weather_alert", arguments='{"city": "Oslo", "when": "fog"}')
    scripted_model.enqueue(call, "Fog alerts do not exist.")
    result = await quartet.chat("storm warning for Oslo in fog", approve=True)
    assert "cannot warn about 'fog'" in scripted_model.requests[1].tool_results[0].content
    assert result.answer == "Fog alerts do not exist."


async def test_the_meteorologist_joins_a_team(quartet):
    result = await quartet.chat("[[team:meteorologist,critic]] Picnic on Sunday?")
    meteorologist = result.of("team_formed")[0]["experts"][0]
    assert meteorologist["role"] == "reads forecasts and what they mean for plans"


async def test_quartet_lists_the_plugin(quartet):
    plugins = {p["name"]: p for p in (await quartet.get("/api/v1/plugins"))["plugins"]}
    assert plugins["weather"]["package"] == "quartet-weather 0.1.0"
    assert plugins["weather"]["tools"][0]["confirmation_reason"].startswith("An alert")
