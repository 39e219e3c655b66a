"""Building the plugin manager: load order, plugins.toml, misspelled hooks, models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pluggy import PluginValidationError

from plugins.builtin.demo import DemoModel, plan_answer
from plugins.hookspecs import hookimpl
from plugins.manager import PluginError, build_plugin_host


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
    with pytest.raises(PluginValidationError, match="match_skill"):
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
    with pytest.raises(PluginError, match=r"'gpt-9'.*\['demo'\]"):
        host.model("gpt-9")


class BadSkills:
    @hookimpl
    def register_skills(self):
        return [{"name": "bad skill", "keywords": []}]


def test_a_plugin_with_invalid_skills_is_skipped(tmp_path: Path, caplog) -> None:
    host = build_plugin_host(tmp_path / "none.toml", extra=[BadSkills()])
    assert host.plugin_skills == {}
    assert "register_skills" in caplog.text


def test_demo_model_directives() -> None:
    tokens, delay = plan_answer("[[slow:25]] hi  there [[lorem:3]]")
    assert "".join(tokens) == "You said: hi there lorem ipsum dolor"
    assert delay == 0.025
    assert plan_answer("[[slow:oops]] x")[1] == 0
    assert "".join(plan_answer("[[lorem:2]]")[0]) == "You said nothing. lorem ipsum"
