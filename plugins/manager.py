"""Building the plugin manager and calling hooks safely.

Loading order: built-ins, then the modules listed in ``plugins.toml``, then
installed packages' entry points in the group ``quartet.plugins``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import tomllib
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pluggy

from agent.llm import ChatModel
from agent.skills import ExpertSpec, KeywordSkill, SkillSpec
from agent.tools import Tool
from plugins import hookspecs

log = logging.getLogger(__name__)

BUILTIN_PLUGINS = (
    "plugins.builtin.demo",
    "plugins.builtin.openai_chat",
    "plugins.builtin.calculator",
    "plugins.builtin.notes",
    "plugins.builtin.ask_human",
    "plugins.builtin.team",
)
ENTRY_POINT_GROUP = "quartet.plugins"
REST_SKILL_PREFIX = "rest-skill:"

T = TypeVar("T")


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid."""


async def await_me_maybe(value: T | Awaitable[T]) -> T:
    """Let hook implementations be plain or ``async def``."""
    if inspect.isawaitable(value):
        return await value
    return value


def read_plugins_file(path: Path) -> list[str]:
    """The module names ``[plugins] enabled`` lists; none when the file is absent."""
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(f"{path}: {exc}") from None
    enabled = data.get("plugins", {}).get("enabled", [])
    if not isinstance(enabled, list) or not all(isinstance(m, str) for m in enabled):
        raise PluginError(f"{path}: [plugins] enabled must be a list of module names")
    return enabled


class PluginHost:
    """The app's plugin manager plus what the plugins registered.

    Build it with :func:`build_plugin_host`.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.models: dict[str, ChatModel] = {}
        self.model_sources: dict[str, str] = {}
        # Models chosen as family:variant, made on first use.
        self._selected: dict[str, ChatModel] = {}
        self.plugin_skills: dict[str, KeywordSkill] = {}
        self.tools: dict[str, Tool] = {}
        self.tool_sources: dict[str, str] = {}
        self.experts: dict[str, ExpertSpec] = {}
        self.expert_sources: dict[str, str] = {}

    # ── calling hooks ──

    async def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of a hook, isolating failures.

        A plugin that raises is logged and skipped for this call only, so one
        broken plugin never kills a turn. ``None`` results are dropped.

        :returns: ``(plugin_name, result)`` pairs in pluggy's call order.
        """
        hook = getattr(self.pm.hook, hook_name)
        results = []
        # pluggy calls the most recently registered implementation first.
        for impl in reversed(hook.get_hookimpls()):
            try:
                args = [kwargs[name] for name in impl.argnames]
                result = await await_me_maybe(impl.function(*args))
            except Exception:
                log.exception("plugin %s failed in %s; skipped", impl.plugin_name, hook_name)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    # ── registrations ──

    def _register_model(self, model: ChatModel, source: str) -> None:
        name = getattr(model, "name", None)
        if not isinstance(name, str) or not name or not callable(getattr(model, "stream", None)):
            raise PluginError(f"plugin {source} registered a model without a name or stream()")
        if name in self.models:
            raise PluginError(
                f"model {name!r} registered by {source} is already registered by "
                f"{self.model_sources[name]}"
            )
        self.models[name] = model
        self.model_sources[name] = source

    def collect_models(self) -> None:
        for impl in reversed(self.pm.hook.register_models.get_hookimpls()):
            source = impl.plugin_name
            impl.function(register=lambda model, source=source: self._register_model(model, source))

    def collect_tools(self) -> None:
        for impl in reversed(self.pm.hook.register_tools.get_hookimpls()):
            source = impl.plugin_name
            for tool in impl.function() or []:
                if not isinstance(tool, Tool):
                    raise PluginError(
                        f"plugin {source} registered {tool!r}, not an agent.tools.Tool"
                    )
                if tool.name in self.tools:
                    raise PluginError(
                        f"tool {tool.name!r} registered by {source} is already registered by "
                        f"{self.tool_sources[tool.name]}"
                    )
                self.tools[tool.name] = tool
                self.tool_sources[tool.name] = source

    def collect_experts(self) -> None:
        for impl in reversed(self.pm.hook.register_experts.get_hookimpls()):
            source = impl.plugin_name
            for raw in impl.function() or []:
                expert = raw if isinstance(raw, ExpertSpec) else ExpertSpec.model_validate(raw)
                if expert.name in self.experts:
                    raise PluginError(
                        f"expert {expert.name!r} registered by {source} is already registered "
                        f"by {self.expert_sources[expert.name]}"
                    )
                if unknown := sorted(set(expert.tools or ()) - set(self.tools)):
                    raise PluginError(
                        f"expert {expert.name!r} of {source} names unknown tools {unknown}"
                    )
                self.experts[expert.name] = expert
                self.expert_sources[expert.name] = source

    def collect_skills(self) -> None:
        for impl in reversed(self.pm.hook.register_skills.get_hookimpls()):
            try:
                specs = impl.function() or []
                for raw in specs:
                    spec = raw if isinstance(raw, SkillSpec) else SkillSpec.model_validate(raw)
                    self.add_plugin_skill(spec, source=f"plugin:{impl.plugin_name}")
            except Exception:
                log.exception("plugin %s failed in register_skills; skipped", impl.plugin_name)

    def add_plugin_skill(self, spec: SkillSpec, *, source: str) -> None:
        if spec.name in self.plugin_skills:
            raise PluginError(f"skill {spec.name!r} from {source} is already registered")
        skill = KeywordSkill(spec, source=source)
        self.pm.register(skill, name=f"skill:{spec.name}")
        self.plugin_skills[spec.name] = skill

    def register_rest_skill(self, owner_id: int, spec: SkillSpec) -> None:
        """Register (or replace) a key's REST skill in the plugin manager."""
        name = f"{REST_SKILL_PREFIX}{owner_id}:{spec.name}"
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.pm.register(KeywordSkill(spec, source="rest", owner_id=owner_id), name=name)

    def unregister_rest_skill(self, owner_id: int, skill_name: str) -> None:
        name = f"{REST_SKILL_PREFIX}{owner_id}:{skill_name}"
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)

    def model(self, name: str) -> ChatModel:
        """The model *name* selects.

        ``family:variant`` (e.g. ``openai:gpt-4o-mini``) asks the model
        registered as ``family`` for ``family.variant("variant")``.

        :raises PluginError: no such model, with the choices.
        """
        if (model := self._selected.get(name)) is not None:
            return model
        if (model := self.models.get(name)) is not None and not hasattr(model, "variant"):
            return model
        family, _, variant = name.partition(":")
        base = self.models.get(family)
        if base is not None and hasattr(base, "variant"):
            if not variant:
                raise PluginError(f"model {family!r} needs a model name: {family}:MODEL_NAME")
            selected = self._selected[name] = base.variant(variant)
            return selected
        raise PluginError(f"model {name!r} is not registered; available: {self.model_names()}")

    def model_names(self) -> list[str]:
        return sorted(
            f"{name}:MODEL_NAME" if hasattr(model, "variant") else name
            for name, model in self.models.items()
        )

    async def aclose(self) -> None:
        """Close what models hold open (HTTP clients)."""
        for model in [*self.models.values(), *self._selected.values()]:
            if (close := getattr(model, "aclose", None)) is not None:
                await close()

    def describe(self) -> list[dict[str, Any]]:
        """Loaded plugins with their hooks, skills, tools, models and experts (not REST skills)."""
        out = []
        for name, plugin in self.pm.list_name_plugin():
            if name.startswith((REST_SKILL_PREFIX, "skill:")):
                continue
            hooks = sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or [])
            out.append(
                {
                    "name": name,
                    "hooks": hooks,
                    "skills": sorted(
                        s.spec.name
                        for s in self.plugin_skills.values()
                        if s.source == f"plugin:{name}"
                    ),
                    "tools": [
                        tool.describe()
                        for tool_name, tool in sorted(self.tools.items())
                        if self.tool_sources[tool_name] == name
                    ],
                    "models": sorted(m for m, src in self.model_sources.items() if src == name),
                    "experts": [
                        {"name": expert.name, "role": expert.role}
                        for expert_name, expert in sorted(self.experts.items())
                        if self.expert_sources[expert_name] == name
                    ],
                }
            )
        return out


def build_plugin_host(plugins_file: Path, *, extra: list[object] | None = None) -> PluginHost:
    """Create the plugin manager: built-ins, ``plugins.toml``, entry points, ``extra``.

    :param extra: plugin objects to register last (tests use this).
    :raises PluginError: a listed module cannot be imported, or registrations clash.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in (*BUILTIN_PLUGINS, *read_plugins_file(plugins_file)):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(f"plugin module {module_name!r} cannot be imported: {exc}") from exc
        pm.register(module, name=module_name)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra or []:
        pm.register(plugin)
    # A misspelled hookimpl fails here, loudly, instead of never being called.
    pm.check_pending()
    host = PluginHost(pm)
    host.collect_models()
    host.collect_tools()
    host.collect_experts()
    host.collect_skills()
    return host
