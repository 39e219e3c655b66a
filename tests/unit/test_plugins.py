"""Building the plugin manager: load order, plugins.toml, misspelled hooks, models, tools."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from plugins.builtin.demo import DemoModel, plan
from plugins.hookspecs import hookimpl
from plugins.llm import ChatMessage, ModelRequest, ReasoningDelta, TextDelta, ToolCall
from plugins.manager import PluginError, build_plugin_host
from plugins.tools import Tool


def plugins_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(body)
    return path


def test_builtins_and_enabled_modules_load(tmp_path: Path) -> None:
    host = build_plugin_host(
        plugins_file(tmp_path, '[plugins]\nenabled = ["plugins.examples.weather"]')
    )
    assert isinstance(host.model("demo"), DemoModel)
    assert set(host.plugin_skills) == {"weather"}
    assert host.plugin_skills["weather"].source == "plugin:plugins.examples.weather"


def test_missing_plugins_file_means_builtins_only(tmp_path: Path) -> None:
    host = build_plugin_host(tmp_path / "absent.toml")
    assert host.plugin_skills == {} and "demo" in host.models


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ('[plugins]\nenabled = ["no.such.module"]', "no.such.module"),
        ("[plugins]\nenabled = 3", "list of module names"),
        ("[plugins\n", "plugins.toml"),
    ],
)
def test_bad_plugins_file_fails_loudly(tmp_path: Path, body: str, mentions: str) -> None:
    with pytest.raises(PluginError, match=mentions.replace(".", r"\.")):
        build_plugin_host(plugins_file(tmp_path, body))


class Misspelled:
    @hookimpl
    def match_skill(self, message):  # not a hook: check_pending must catch it
        return None


def test_misspelled_hook_fails_at_startup(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="unknown hook 'match_skill'"):
        build_plugin_host(tmp_path / "none.toml", extra=[Misspelled()])


class SecondDemo:
    @hookimpl
    def register_models(self, register):
        register(DemoModel())


def test_a_model_name_registered_twice_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="already registered"):
        build_plugin_host(tmp_path / "none.toml", extra=[SecondDemo()])


def test_unknown_model_is_named_with_the_choices(tmp_path: Path) -> None:
    host = build_plugin_host(tmp_path / "none.toml")
    with pytest.raises(PluginError, match=r"'gpt-9'.*\['demo', 'openai:MODEL_NAME'\]"):
        host.model("gpt-9")


def test_family_colon_variant_selects_a_model_of_the_family(tmp_path: Path) -> None:
    host = build_plugin_host(tmp_path / "none.toml")
    selected = host.model("openai:gpt-4o-mini")
    assert selected.name == "openai:gpt-4o-mini" and selected.model_name == "gpt-4o-mini"
    assert host.model("openai:gpt-4o-mini") is selected
    with pytest.raises(PluginError, match="openai:MODEL_NAME"):
        host.model("openai")
    with pytest.raises(PluginError, match="not registered"):
        host.model("demo:variant")


class BadSkills:
    @hookimpl
    def register_skills(self):
        return [{"name": "bad skill", "keywords": []}]


def test_a_plugin_with_invalid_skills_fails_at_startup(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"^plugin \S+ registered an invalid skill: "):
        build_plugin_host(tmp_path / "none.toml", extra=[BadSkills()])


def test_demo_model_directives() -> None:
    todo = plan("[[slow:25]] hi  there [[lorem:3]]")
    assert "".join(todo.answer_tokens([])) == "You said: hi there lorem ipsum dolor"
    assert todo.delay_s == 0.025
    assert plan("[[slow:oops]] x").delay_s == 0
    assert "".join(plan("[[lorem:2]]").answer_tokens([])) == "You said nothing. lorem ipsum"


class NoArgs(BaseModel):
    pass


async def nothing(args, ctx) -> None:
    return None


class ToolPlugin:
    def __init__(self, *tools: object) -> None:
        self.tools = list(tools)

    @hookimpl
    def register_tools(self):
        return self.tools


def test_builtin_tools_are_registered_by_default_plugins(tmp_path: Path) -> None:
    host = build_plugin_host(tmp_path / "none.toml")
    assert {name: host.tool_sources[name] for name in host.tools} == {
        "calculator": "plugins.builtin.calculator",
        "save_note": "plugins.builtin.notes",
        "list_notes": "plugins.builtin.notes",
        "ask_human": "plugins.builtin.ask_human",
        "convene_team": "plugins.builtin.team",
    }
    assert host.tools["save_note"].requires_confirmation
    assert not host.tools["calculator"].requires_confirmation
    notes = next(p for p in host.describe() if p["name"] == "plugins.builtin.notes")
    assert [t["name"] for t in notes["tools"]] == ["list_notes", "save_note"]
    save = notes["tools"][1]
    assert save["requires_confirmation"] is True
    assert save["parameters"]["properties"]["text"]["type"] == "string"


def test_a_third_party_tool_is_registered(tmp_path: Path) -> None:
    tool = Tool(name="noop", description="d", arguments=NoArgs, run=nothing)
    host = build_plugin_host(tmp_path / "none.toml", extra=[ToolPlugin(tool)])
    assert host.tools["noop"] is tool


@pytest.mark.parametrize(
    ("registered", "message"),
    [
        ({"name": "calculator"}, "not a quartet.Tool"),
        (Tool(name="calculator", description="d", arguments=NoArgs, run=nothing), "already"),
    ],
)
def test_bad_tool_registrations_fail_at_startup(
    tmp_path: Path, registered: object, message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        build_plugin_host(tmp_path / "none.toml", extra=[ToolPlugin(registered)])


def sync_run(args, ctx):
    return None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "has space"}, "must match"),
        ({"arguments": dict}, "pydantic model"),
        ({"run": sync_run}, "async function"),
        ({"timeout_s": 0}, "positive"),
    ],
)
def test_a_tool_is_checked_when_made(options: dict, message: str) -> None:
    fields = {"name": "t", "description": "d", "arguments": NoArgs, "run": nothing} | options
    with pytest.raises(ValueError, match=message):
        Tool(**fields)


def test_demo_plans_tool_and_ask_directives_in_order() -> None:
    todo = plan('Hi [[tool:calculator {"expression": "[1][0] + 2"}]] and [[ask:Your name?]]')
    assert todo.echo == "Hi and"
    assert [(a.tool, a.arguments) for a in todo.actions] == [
        ("calculator", '{"expression": "[1][0] + 2"}'),
        ("ask_human", '{"question": "Your name?"}'),
    ]
    assert plan("[[tool:list_notes]]").actions[0].arguments == "{}"
    answer = "".join(todo.answer_tokens(["3", "Ada"]))
    assert answer == "You said: Hi and The calculator tool said: 3 You answered: Ada"


async def collect(model: DemoModel, messages: list[ChatMessage]) -> list[object]:
    return [out async for out in model.stream(ModelRequest(messages=messages))]


async def test_demo_calls_one_tool_per_round_then_answers() -> None:
    model = DemoModel()
    user = ChatMessage(role="user", content="[[tool:list_notes]] [[ask:Why?]]")
    first = await collect(model, [user])
    assert first == [
        ReasoningDelta("Calling the list_notes tool."),
        ToolCall(id="demo-0", name="list_notes", arguments="{}"),
    ]
    done = ChatMessage(role="tool", content="[]", tool_call_id="demo-0")
    second = await collect(model, [user, ChatMessage(role="assistant", content=""), done])
    assert second[-1] == ToolCall(id="demo-1", name="ask_human", arguments='{"question": "Why?"}')
    replied = ChatMessage(role="tool", content="because", tool_call_id="demo-1")
    third = await collect(model, [user, done, replied])
    assert all(isinstance(out, TextDelta) for out in third)
    assert "".join(out.text for out in third).endswith("said: [] You answered: because")
