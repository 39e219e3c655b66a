"""The plugin contract is the bottom layer: it stands alone and treats every plugin alike."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.loop import model_stream
from plugins.hookspecs import hookimpl
from plugins.llm import ModelRequest, TextDelta
from plugins.manager import PluginError, build_plugin_host
from plugins.skills import ExpertSpec, SessionContext, SkillSpec
from plugins.tools import Tool


def test_the_contract_imports_nothing_from_the_engine() -> None:
    code = (
        "import sys, quartet, plugins.manager, plugins.builtin.keyword_skill;"
        "engine = sorted(m for m in sys.modules if m.split('.')[0] in ('agent', 'blueprints'));"
        "assert not engine, engine"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


class NoArgs(BaseModel):
    pass


async def nothing(args: NoArgs, ctx: object) -> None:
    return None


class Registers:
    """A plugin that registers one skill, tool or expert named ``calculator``."""

    def __init__(self, hook: str) -> None:
        self.hook = hook

    @hookimpl
    def register_skills(self) -> list[SkillSpec]:
        return [SkillSpec(name="calculator", keywords=["x"])] if self.hook == "skill" else []

    @hookimpl
    def register_tools(self) -> list[Tool]:
        if self.hook != "tool":
            return []
        return [Tool(name="calculator", description="d", arguments=NoArgs, run=nothing)]

    @hookimpl
    def register_experts(self) -> list[ExpertSpec]:
        return [ExpertSpec(name="calculator", role="r")] if self.hook == "expert" else []


@pytest.mark.parametrize("kind", ["skill", "tool", "expert"])
def test_a_name_registered_twice_fails_the_same_way_for_each_kind(
    tmp_path: Path, kind: str
) -> None:
    first, second = Registers(kind), Registers(kind)
    if kind == "tool":  # the built-in calculator is the first
        plugins = [second]
    else:
        plugins = [first, second]
    with pytest.raises(PluginError) as caught:
        build_plugin_host(tmp_path / "none.toml", extra=plugins, entry_points=False)
    assert f"registers the {kind} 'calculator', which plugin " in str(caught.value)
    assert "already registered" in str(caught.value)


class Broken:
    @hookimpl
    def register_tools(self) -> list[Tool]:
        raise RuntimeError("no config\nsecond line")


def test_a_plugin_that_fails_to_register_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as caught:
        build_plugin_host(tmp_path / "none.toml", extra=[Broken()], entry_points=False)
    message = str(caught.value)
    assert message.startswith("plugin ") and "register_tools: RuntimeError: no config" in message
    assert "\n" not in message


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Pretend an installed package declares a ``quartet.plugins`` entry point."""
    monkeypatch.delenv("QUARTET_LOAD_PLUGINS", raising=False)
    point = importlib.metadata.EntryPoint(name=name, value=value, group="quartet.plugins")

    def entry_points(**params: str) -> list[importlib.metadata.EntryPoint]:
        return [point] if params.get("group") == "quartet.plugins" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_an_entry_point_plugin_may_also_be_passed_as_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(monkeypatch, "examples", "plugins.examples.weather")
    import plugins.examples.weather as weather

    host = build_plugin_host(tmp_path / "none.toml", extra=[weather])
    assert host.pm.get_plugin("examples") is weather
    assert host.plugin_skills["weather"].source == "plugin:examples"


def test_an_entry_point_that_cannot_be_imported_names_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(monkeypatch, "gone", "no_such_package.plugin")
    with pytest.raises(PluginError, match=r"^plugin gone \(no_such_package.plugin\) cannot be"):
        build_plugin_host(tmp_path / "none.toml")


def test_entry_points_can_be_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, "gone", "no_such_package.plugin")
    assert "gone" not in dict(
        build_plugin_host(tmp_path / "none.toml", entry_points=False).pm.list_name_plugin()
    )


def test_quartet_load_plugins_names_the_entry_points_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(monkeypatch, "examples", "plugins.examples.weather")
    monkeypatch.setenv("QUARTET_LOAD_PLUGINS", "other, examples")
    assert "weather" in build_plugin_host(tmp_path / "none.toml").plugin_skills
    monkeypatch.setenv("QUARTET_LOAD_PLUGINS", "")
    assert "weather" not in build_plugin_host(tmp_path / "none.toml").plugin_skills


class PlainStream:
    """A model stream that is an async iterator but not a generator: no ``aclose``."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def __aiter__(self) -> PlainStream:
        return self

    async def __anext__(self) -> TextDelta:
        if not self.texts:
            raise StopAsyncIteration
        return TextDelta(self.texts.pop(0))


async def test_a_model_may_return_a_plain_async_iterator() -> None:
    model = types.SimpleNamespace(name="plain", stream=lambda request: PlainStream("a", "b"))
    async with model_stream(model, ModelRequest(messages=[])) as stream:
        assert [out.text async for out in stream] == ["a", "b"]


async def test_a_generator_stream_is_closed_when_the_round_ends_early() -> None:
    closed = []

    async def stream(request: ModelRequest):
        try:
            yield TextDelta("a")
            yield TextDelta("b")
        finally:
            closed.append(True)

    model = types.SimpleNamespace(name="gen", stream=stream)
    async with model_stream(model, ModelRequest(messages=[])) as outputs:
        await anext(outputs)
    assert closed == [True]


class Trips:
    @hookimpl
    def register_skills(self) -> list[SkillSpec]:
        return [SkillSpec(name="trips", keywords=["trip", "journey"])]


async def test_tracing_logs_every_hook_call_with_plugin_arguments_and_result(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="plugins.manager")
    host = build_plugin_host(tmp_path / "none.toml", extra=[Trips()], trace=True)
    assert "hook register_skills() in " in caplog.text and "name='trips'" in caplog.text
    caplog.clear()
    session = SessionContext(session_id="s1", owner_id=1)
    await host.call_each("match_skills", message="a trip", session=session)
    assert "hook match_skills(message='a trip', session=SessionContext(" in caplog.text
    assert "in skill:trips -> [SkillMatch(skill='trips'" in caplog.text


def test_no_trace_unless_asked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="plugins.manager")
    build_plugin_host(tmp_path / "none.toml", extra=[Trips()])
    assert "hook register_skills" not in caplog.text


def test_quartet_trace_plugins_turns_tracing_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import create_app
    from settings import Settings

    monkeypatch.setenv("QUARTET_TRACE_PLUGINS", "1")
    app = create_app(Settings(data_dir=tmp_path, plugins_file=tmp_path / "none.toml"))
    assert app.extensions["quartet"].plugins.trace is True


def test_the_plugins_listing_shows_keywords_and_confirmation_reasons(tmp_path: Path) -> None:
    host = build_plugin_host(tmp_path / "none.toml", extra=[Trips()], entry_points=False)
    listed = {p["name"]: p for p in host.describe()}
    trips = next(p for p in listed.values() if p["skills"])
    assert trips["skills"][0] | {} == {
        "name": "trips",
        "keywords": ["trip", "journey"],
        "description": "",
        "tools": [],
    }
    save_note = next(
        t for t in listed["plugins.builtin.notes"]["tools"] if t["name"] == "save_note"
    )
    assert save_note["confirmation_reason"].startswith("Saving a note writes")
