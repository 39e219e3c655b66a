"""Keyword skills over REST; each is registered into the plugin manager too.

A REST skill is visible only to sessions of the key that made it; plugin
skills are visible to all and cannot be changed here.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ValidationError
from quart import Blueprint
from quart_schema import validate_request, validate_response
from tortoise.exceptions import IntegrityError

from agent.protocol import describe_validation_error
from agent.runtime import skill_spec
from blueprints import runtime
from blueprints.auth import current_key, load_key
from blueprints.errors import KEYED, ApiError, Conflict, Forbidden, NotFound, document_errors
from models import Skill
from plugins.builtin.keyword_skill import KeywordSkill
from plugins.manager import PluginError
from plugins.skills import SkillSpec

bp = Blueprint("skills", __name__, url_prefix="/api/v1/skills")
bp.before_request(load_key)

#: Stored names are at most this long; a longer one cannot exist.
SKILL_NAME_CHARS = Skill._meta.fields_map["name"].max_length


class SkillOut(SkillSpec):
    source: str
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, skill: Skill) -> SkillOut:
        return cls(
            **skill_spec(skill).model_dump(),
            source="rest",
            created_at=skill.created_at,
            updated_at=skill.updated_at,
        )

    @classmethod
    def of_plugin(cls, skill: KeywordSkill) -> SkillOut:
        return cls(**skill.spec.model_dump(), source=skill.source)


class SkillList(BaseModel):
    items: list[SkillOut]


async def stored_skill(name: str) -> Skill | None:
    """The caller's REST skill by this name, if there is one."""
    if len(name) > SKILL_NAME_CHARS:  # the database would refuse to look
        return None
    return await Skill.get_or_none(owner_id=current_key().id, name=name)


def plugin_skill(name: str) -> SkillOut | None:
    skill = runtime().plugins.plugin_skills.get(name)
    return SkillOut.of_plugin(skill) if skill else None


def refuse_plugin_name(name: str) -> None:
    if name in runtime().plugins.plugin_skills:
        raise Conflict(f"skill {name!r} is provided by a plugin")


def refuse_unknown_names(spec: SkillSpec) -> None:
    """The tools and models a skill names must exist, or it could never run as written."""
    plugins = runtime().plugins
    tools = plugins.tools
    named = [("tools", spec.tools)] + [
        (f"experts.{n}.tools", expert.tools or []) for n, expert in enumerate(spec.experts)
    ]
    for field, names in named:
        if unknown := sorted(set(names) - set(tools)):
            raise ApiError(f"field {field!r}: unknown tools {unknown}; available: {sorted(tools)}")
    for n, expert in enumerate(spec.experts):
        if expert.model is not None:
            try:
                plugins.model(expert.model)
            except PluginError as exc:
                raise ApiError(f"field 'experts.{n}.model': {exc}") from None


async def save(spec: SkillSpec, skill: Skill | None) -> Skill:
    refuse_unknown_names(spec)
    owner_id = current_key().id
    fields = spec.model_dump(exclude={"name"}, mode="json")
    if skill is None:
        skill = await Skill.create(owner_id=owner_id, name=spec.name, **fields)
    else:
        await skill.update_from_dict(fields).save()
    runtime().plugins.register_rest_skill(owner_id, spec)
    await runtime().skill_changed(owner_id, spec.name)
    return skill


@bp.post("")
@validate_request(SkillSpec)
@validate_response(SkillOut, 201)
@document_errors(400, 409, 413, *KEYED)
async def create_skill(data: SkillSpec) -> tuple[SkillOut, int]:
    """Register a keyword skill for the calling key; the same name again is 409."""
    refuse_plugin_name(data.name)
    if await Skill.exists(owner_id=current_key().id, name=data.name):
        raise Conflict(
            f"skill {data.name!r} already exists; PUT /api/v1/skills/{data.name} replaces it"
        )
    try:
        skill = await save(data, None)
    except IntegrityError:  # a concurrent POST of the same name won
        raise Conflict(f"skill {data.name!r} already exists") from None
    return SkillOut.of(skill), 201


class SkillPut(SkillSpec):
    name: str | None = None  # type: ignore[assignment]


@bp.put("/<name>")
@validate_request(SkillPut)
@validate_response(SkillOut, 200)
@validate_response(SkillOut, 201)
@document_errors(400, 409, 413, *KEYED)
async def put_skill(name: str, data: SkillPut) -> tuple[SkillOut, int]:
    """Create or replace a skill by name.

    200 when it replaced one, 201 when it created it.
    """
    if data.name is not None and data.name != name:
        raise ApiError(f"field 'name': {data.name!r} does not match the URL's {name!r}")
    try:
        spec = SkillSpec.model_validate({**data.model_dump(), "name": name})
    except ValidationError as exc:
        rule = SkillSpec.model_fields["name"].description
        raise ApiError(
            f"the skill name in the URL is not valid: {rule} ({describe_validation_error(exc)})"
        ) from None
    refuse_plugin_name(name)
    existing = await stored_skill(name)
    skill = await save(spec, existing)
    return SkillOut.of(skill), 200 if existing else 201


@bp.get("")
@validate_response(SkillList)
@document_errors(*KEYED)
async def list_skills() -> SkillList:
    """List the plugin skills and the calling key's REST skills."""
    items = [SkillOut.of_plugin(s) for s in runtime().plugins.plugin_skills.values()]
    items += [SkillOut.of(s) for s in await Skill.filter(owner_id=current_key().id)]
    return SkillList(items=sorted(items, key=lambda s: s.name))


@bp.get("/<name>")
@validate_response(SkillOut)
@document_errors(404, *KEYED)
async def get_skill(name: str) -> SkillOut:
    """Read one skill, from a plugin or the calling key."""
    if found := plugin_skill(name):
        return found
    skill = await stored_skill(name)
    if skill is None:
        raise NotFound(f"no skill {name[:SKILL_NAME_CHARS]!r}")
    return SkillOut.of(skill)


@bp.delete("/<name>")
@document_errors(403, 404, *KEYED)
async def delete_skill(name: str) -> tuple[str, int]:
    """Delete one of the calling key's REST skills (plugin skills cannot be)."""
    if plugin_skill(name):
        raise Forbidden(f"skill {name!r} comes from a plugin; disable the plugin instead")
    owner_id = current_key().id
    # A name longer than any stored one is simply not there; the database would refuse it.
    deleted = (
        len(name) <= SKILL_NAME_CHARS and await Skill.filter(owner_id=owner_id, name=name).delete()
    )
    if not deleted:
        raise NotFound(f"no skill {name[:SKILL_NAME_CHARS]!r}")
    runtime().plugins.unregister_rest_skill(owner_id, name)
    await runtime().skill_changed(owner_id, name)
    return "", 204
