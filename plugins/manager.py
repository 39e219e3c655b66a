"""Building the plugin manager and calling hooks safely.

Loading order: built-ins, then the modules listed in ``plugins.toml``, then
installed packages' entry points in the group ``quartet.plugins``, then the
plugin objects a caller (a test) passes in.

Every hook call goes through :class:`PluginHost`, so one switch
(``QUARTET_TRACE_PLUGINS=1``) logs them all, with the plugin, its arguments
and its result.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import os
import reprlib
import tomllib
from collections.abc import Awaitable, Callable, Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pluggy
from pydantic import BaseModel

from plugins import hookspecs
from plugins.builtin.keyword_skill import KeywordSkill
from plugins.llm import ChatModel
from plugins.skills import ExpertSpec, SkillSpec
from plugins.tools import Tool

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
#: Which installed entry-point plugins load: unset, all; else a comma-separated
#: list of entry-point names, empty for none (as DATASETTE_LOAD_PLUGINS does).
LOAD_PLUGINS_ENV = "QUARTET_LOAD_PLUGINS"
REST_SKILL_PREFIX = "rest-skill:"

T = TypeVar("T")
Spec = TypeVar("Spec", bound=BaseModel)


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid.

    The message is one line that names the plugin and the cause; start-up
    prints it and stops.
    """


def make_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager that knows Quartet's hooks and has no plugins yet."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def hook_specs(pm: pluggy.PluginManager) -> dict[str, Callable[..., object]]:
    """Every hook *pm* knows, by name, with its spec function (for docs and tests)."""
    specs = {}
    for name, caller in vars(pm.hook).items():
        if caller.spec is not None:
            specs[name] = caller.spec.function
    return specs


# Arguments and results in trace lines are cut to a readable length.
_trace_repr = reprlib.Repr()
_trace_repr.maxstring = _trace_repr.maxother = 200
_trace_repr.maxlist = _trace_repr.maxdict = 20


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

    def __init__(self, pm: pluggy.PluginManager, *, trace: bool = False) -> None:
        self.pm = pm
        #: Log every hook call with its plugin, arguments and result.
        self.trace = trace
        #: Where each entry-point plugin came from: ``package version``.
        self.packages: dict[str, str] = {}
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
        results = []
        for impl in self._impls(hook_name):
            try:
                result = await await_me_maybe(self._call(hook_name, impl, kwargs))
            except Exception:
                log.exception("plugin %s failed in %s; skipped", impl.plugin_name, hook_name)
                continue
            if self.trace:
                self._trace(hook_name, impl.plugin_name, kwargs, result)
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        # pluggy calls the most recently registered implementation first.
        hook: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
        return list(reversed(hook.get_hookimpls()))

    @staticmethod
    def _call(hook_name: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        # An implementation may take fewer arguments than the spec, never others.
        return impl.function(*[kwargs[name] for name in impl.argnames])

    def _trace(self, hook_name: str, plugin: str, kwargs: dict[str, Any], result: Any) -> None:
        arguments = ", ".join(f"{k}={_trace_repr.repr(v)}" for k, v in kwargs.items())
        log.info("hook %s(%s) in %s -> %s", hook_name, arguments, plugin, _trace_repr.repr(result))

    def _registrations(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call a start-up hook: ``(plugin_name, item)`` for each item it returns.

        :raises PluginError: the hook raised, naming the plugin and the cause.
        """
        for impl in self._impls(hook_name):
            try:
                result = self._call(hook_name, impl, kwargs)
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name} failed in {hook_name}: {_cause(exc)}"
                ) from exc
            if self.trace:
                self._trace(hook_name, impl.plugin_name, kwargs, result)
            for item in result or []:
                yield impl.plugin_name, item

    # ── registrations ──

    @staticmethod
    def _claim(kind: str, name: str, source: str, sources: dict[str, str]) -> None:
        """Record that *source* registered *name*; the same name twice is an error."""
        if name in sources:
            raise PluginError(
                f"plugin {source} registers the {kind} {name!r}, "
                f"which plugin {sources[name]} already registered"
            )
        sources[name] = source

    def collect_models(self) -> None:
        for impl in self._impls("register_models"):
            source = impl.plugin_name
            registered: list[ChatModel] = []
            kwargs = {"register": registered.append}
            try:
                self._call("register_models", impl, kwargs)
            except Exception as exc:
                raise PluginError(
                    f"plugin {source} failed in register_models: {_cause(exc)}"
                ) from exc
            if self.trace:
                self._trace("register_models", source, kwargs, registered)
            for model in registered:
                name = getattr(model, "name", None)
                if (
                    not isinstance(name, str)
                    or not name
                    or not callable(getattr(model, "stream", None))
                ):
                    raise PluginError(
                        f"plugin {source} registered a model without a name or stream()"
                    )
                self._claim("model", name, source, self.model_sources)
                self.models[name] = model

    def collect_tools(self) -> None:
        for source, tool in self._registrations("register_tools"):
            if not isinstance(tool, Tool):
                raise PluginError(f"plugin {source} registered {tool!r}, not a quartet.Tool")
            self._claim("tool", tool.name, source, self.tool_sources)
            self.tools[tool.name] = tool

    def collect_experts(self) -> None:
        for source, raw in self._registrations("register_experts"):
            expert = _validated(ExpertSpec, raw, source, "expert")
            self._claim("expert", expert.name, source, self.expert_sources)
            if unknown := sorted(set(expert.tools or ()) - set(self.tools)):
                raise PluginError(
                    f"plugin {source}: the expert {expert.name!r} names unknown tools {unknown}"
                )
            self.experts[expert.name] = expert

    def collect_skills(self) -> None:
        sources: dict[str, str] = {}
        for source, raw in self._registrations("register_skills"):
            spec = _validated(SkillSpec, raw, source, "skill")
            self._claim("skill", spec.name, source, sources)
            self.add_plugin_skill(spec, source=f"plugin:{source}")

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
            selected: ChatModel = base.variant(variant)
            self._selected[name] = selected
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
                    "package": self.packages.get(name),
                    "hooks": hooks,
                    "skills": [
                        {
                            "name": skill.spec.name,
                            "keywords": skill.spec.keywords,
                            "description": skill.spec.description,
                            "tools": skill.spec.tools,
                        }
                        for skill_name, skill in sorted(self.plugin_skills.items())
                        if skill.source == f"plugin:{name}"
                    ],
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


def _cause(exc: BaseException) -> str:
    """An exception as one line: its type and its message's first line."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def _validated(model: type[Spec], raw: object, source: str, kind: str) -> Spec:
    """*raw* as a *model* (a spec or a dict), or a one-line error naming the plugin."""
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate(raw)
    except ValueError as exc:
        raise PluginError(f"plugin {source} registered an invalid {kind}: {_cause(exc)}") from None


def _register(pm: pluggy.PluginManager, plugin: object, name: str | None) -> None:
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name or plugin!r} cannot be registered: {_cause(exc)}") from exc


def _entry_points(select: bool | Collection[str]) -> Iterator[importlib.metadata.EntryPoint]:
    """The installed ``quartet.plugins`` entry points *select* asks for, by name.

    ``True`` means those :data:`LOAD_PLUGINS_ENV` names, or all when it is unset.
    """
    if select is True and (names := os.environ.get(LOAD_PLUGINS_ENV)) is not None:
        select = {name.strip() for name in names.split(",") if name.strip()}
    if select is False:
        return
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if select is True or entry_point.name in select:
            yield entry_point


def build_plugin_host(
    plugins_file: Path,
    *,
    extra: list[object] | None = None,
    entry_points: bool | Collection[str] = True,
    trace: bool = False,
) -> PluginHost:
    """Create the plugin manager: built-ins, ``plugins.toml``, entry points, ``extra``.

    :param extra: plugin objects to register last (tests use this). One that
        is already loaded (an installed entry point) is not registered again.
    :param entry_points: load the installed ``quartet.plugins`` entry points
        (``True``: all, or those ``QUARTET_LOAD_PLUGINS`` names), none, or
        those of the given names.
    :param trace: log every hook call (``QUARTET_TRACE_PLUGINS``).
    :raises PluginError: a plugin cannot be imported or registered, or its
        registrations clash; the message is one line naming the plugin.
    """
    pm = make_plugin_manager()
    for module_name in (*BUILTIN_PLUGINS, *read_plugins_file(plugins_file)):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(f"plugin {module_name} cannot be imported: {_cause(exc)}") from exc
        _register(pm, module, module_name)
    packages: dict[str, str] = {}
    for entry_point in _entry_points(entry_points):
        if pm.get_plugin(entry_point.name) is not None:
            continue
        dist = entry_point.dist
        package = f"{dist.name} {dist.version}" if dist is not None else entry_point.value
        try:
            plugin = entry_point.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {entry_point.name} ({package}) cannot be imported: {_cause(exc)}"
            ) from exc
        _register(pm, plugin, entry_point.name)
        packages[entry_point.name] = package
    for plugin in extra or []:
        if not pm.is_registered(plugin):
            _register(pm, plugin, None)
    # A misspelled hookimpl fails here, loudly, instead of never being called.
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)}: {_cause(exc)}") from exc
    host = PluginHost(pm, trace=trace)
    host.packages = packages
    host.collect_models()
    host.collect_tools()
    host.collect_experts()
    host.collect_skills()
    return host
