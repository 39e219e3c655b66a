"""Unit fixtures: an in-memory database, a scripted model, a fresh plugin host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.llm import ModelOutput, ModelRequest
from models import ApiKey, Session
from models.db import close_db, init_db
from plugins.hookspecs import hookimpl
from plugins.manager import PluginHost, build_plugin_host


class ScriptedModel:
    """A model that plays back queued outputs and records every request.

    A script item may be a model output, an exception to raise, or an
    ``asyncio.Event`` to wait for (to hold a turn open).
    """

    name = "scripted"

    def __init__(self) -> None:
        self.scripts: list[list[object]] = []
        self.history: list[ModelRequest] = []

    def enqueue(self, items: list[object]) -> None:
        self.scripts.append(items)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        self.history.append(request)
        for item in self.scripts.pop(0):
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, asyncio.Event):
                await item.wait()
                continue
            yield item  # type: ignore[misc]


class ScriptedModelPlugin:
    def __init__(self, model: ScriptedModel) -> None:
        self.model = model

    @hookimpl
    def register_models(self, register) -> None:
        register(self.model)


@pytest.fixture
async def db() -> AsyncIterator[None]:
    await init_db("sqlite://:memory:")
    yield
    await close_db()


@pytest.fixture
def scripted() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def host(scripted: ScriptedModel, tmp_path: Path) -> PluginHost:
    return build_plugin_host(tmp_path / "none.toml", extra=[ScriptedModelPlugin(scripted)])


@pytest.fixture
async def session(db) -> Session:
    key, _ = await ApiKey.issue("tester")
    return await Session.create(owner_id=key.id, title="unit")
