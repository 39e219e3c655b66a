"""Test fixtures for Quartet plugins: a pytest plugin that ships with Quartet.

Installing Quartet activates it (the ``pytest11`` entry point), so a plugin
package's tests need no conftest::

    async def test_the_skill_matches(quartet):
        result = await quartet.chat("What is the weather in Oslo?")
        assert result.skill_matches[0]["skill"] == "weather"

Fixtures:

``scripted_model``
    The test app's model (a :class:`ScriptedModel`). ``enqueue(*outputs)``
    queues model rounds; ``requests`` lists what the model was asked. With
    nothing queued it answers like the offline ``demo`` model, directives
    included.
``quartet_plugins``
    The plugins under test. ``None`` (the default) loads the installed
    ``quartet.plugins`` entry points; override the fixture to return a list
    of plugin objects instead.
``quartet``
    A :class:`QuartetTestApp`: the app with a temporary database, a known
    key, the plugins under test and the scripted model, started for the test.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import pytest

from plugins.hookspecs import hookimpl
from plugins.llm import ModelOutput, ModelRequest, TextDelta, ToolCall

if TYPE_CHECKING:
    from quart import Quart
    from quart.typing import TestClientProtocol

__all__ = [
    "API_KEY",
    "ChatResult",
    "QuartetTestApp",
    "ScriptedModel",
    "quartet",
    "quartet_plugins",
    "scripted_model",
]

try:
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # the kit's async fixture then needs an asyncio plugin of the author's choice
    async_fixture = pytest.fixture  # type: ignore[assignment]

#: The key of the test app's admin; ``quartet.api_key`` is this.
API_KEY = "qk_test_quartet_testing"

#: What one round may be: answer text, a tool call, an exception to raise, or
#: the round's items (model outputs, exceptions, ``asyncio.Event`` to wait for).
Round: TypeAlias = str | ToolCall | BaseException | Sequence[object]

#: Frames that end a turn.
TURN_END = frozenset({"final_answer", "error"})


class ScriptedModel:
    """A chat model that plays back queued rounds and records every request.

    ``enqueue("Hello")`` makes the next round answer ``Hello``;
    ``enqueue(ToolCall(id="c1", name="forecast", arguments='{"city": "Oslo"}'), "Sunny.")``
    makes it call a tool, then (in the round that gets the result) answer.
    With nothing queued it answers like the ``demo`` model.
    """

    name = "scripted"

    def __init__(self) -> None:
        self.rounds: deque[list[object]] = deque()
        self.history: list[ModelRequest] = []

    @property
    def requests(self) -> list[ModelRequest]:
        """Every request the model received, in order."""
        return self.history

    def enqueue(self, *outputs: Round) -> None:
        """Queue one model round per output.

        :param outputs: each a ``str`` (the answer), a :class:`~quartet.ToolCall`,
            an exception to raise (a :class:`~quartet.ModelError` ends the turn
            with ``error`` ``model_error``), or a list of a round's items.
        """
        for output in outputs:
            if isinstance(output, str):
                self.rounds.append([TextDelta(output)])
            elif isinstance(output, ToolCall | BaseException):
                self.rounds.append([output])
            else:
                self.rounds.append(list(output))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        self.history.append(request)
        if not self.rounds:
            from plugins.builtin.demo import DemoModel

            async for output in DemoModel().stream(request):
                yield output
            return
        async for output in self.play(self.rounds.popleft()):
            yield output

    @staticmethod
    async def play(items: Iterable[object]) -> AsyncIterator[ModelOutput]:
        """Yield a round's outputs, raising its exceptions and waiting for its events."""
        for item in items:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, asyncio.Event):
                await item.wait()
                continue
            yield item  # type: ignore[misc]


class _ModelPlugin:
    """Registers one model object."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model

    @hookimpl
    def register_models(self, register: Callable[[ScriptedModel], None]) -> None:
        register(self.model)


@dataclass
class ChatResult:
    """The frames of one turn, as the client received them (dicts of JSON)."""

    frames: list[dict[str, Any]] = field(default_factory=list)

    def of(self, type: str) -> list[dict[str, Any]]:
        """The frames of this ``type``, in order."""
        return [frame for frame in self.frames if frame["type"] == type]

    @property
    def answer(self) -> str | None:
        """The ``final_answer`` text, or ``None`` when the turn ended in an error."""
        finals = self.of("final_answer")
        return finals[-1]["content"] if finals else None

    @property
    def skill_matches(self) -> list[dict[str, Any]]:
        """The ``skill_match`` frames, best score first."""
        return self.of("skill_match")

    @property
    def error(self) -> dict[str, Any] | None:
        """The ``error`` frame that ended the turn, or ``None``."""
        errors = self.of("error")
        return errors[-1] if errors else None

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The ``step`` frames: tool calls and their results."""
        return self.of("step")


Approve: TypeAlias = bool | Callable[[dict[str, Any]], bool] | None
Answers: TypeAlias = Sequence[str] | Callable[[dict[str, Any]], str] | None


class QuartetTestApp:
    """A Quartet app started for one test; what the ``quartet`` fixture gives.

    :ivar app: the Quart app.
    :ivar api_key: the admin key every request of the kit uses.
    :ivar timeout_s: how long :meth:`chat` waits for a turn to end.
    """

    def __init__(self, app: Quart, client: TestClientProtocol) -> None:
        self.app = app
        self.client = client
        self.api_key = API_KEY
        self.timeout_s = 30.0

    @property
    def headers(self) -> dict[str, str]:
        """The headers that authenticate a REST request."""
        return {"X-API-Key": self.api_key}

    async def get(self, path: str) -> Any:
        """``GET`` *path* with the key; the JSON body (for example ``/api/v1/plugins``)."""
        response = await self.client.get(path, headers=self.headers)
        assert response.status_code == 200, f"GET {path}: {response.status_code}"
        return await response.get_json()

    async def new_session(self, title: str = "test") -> str:
        """Create a chat session; its id."""
        response = await self.client.post(
            "/api/v1/sessions", json={"title": title}, headers=self.headers
        )
        assert response.status_code == 201, f"POST /api/v1/sessions: {response.status_code}"
        return str((await response.get_json())["id"])

    async def chat(
        self,
        content: str,
        *,
        approve: Approve = None,
        answers: Answers = None,
        mode: str | None = None,
        session: str | None = None,
    ) -> ChatResult:
        """Send one message over the WebSocket route and collect its turn.

        :param approve: the answer to every ``confirmation_request``: a bool, or
            a callable given the frame. ``None`` fails the test when one comes.
        :param answers: the replies to ``ask_human``: a list used in order, or a
            callable given the frame. ``None`` fails the test when one comes.
        :param mode: ``"team"`` to have a team answer.
        :param session: the session to talk in; a new one by default.
        :returns: every frame after ``connected`` up to the ``final_answer`` or
            ``error`` that ended the turn.
        """
        session_id = session or await self.new_session()
        pending_answers = list(answers) if isinstance(answers, Sequence) else None
        result = ChatResult()
        path = f"/api/v1/chat/ws/{session_id}?api_key={self.api_key}"
        async with asyncio.timeout(self.timeout_s), self.client.websocket(path) as ws:
            connected = json.loads(await ws.receive())
            assert connected["type"] == "connected", connected
            message: dict[str, Any] = {"type": "message", "content": content}
            if mode is not None:
                message["mode"] = mode
            await ws.send(json.dumps(message))
            while True:
                frame = json.loads(await ws.receive())
                result.frames.append(frame)
                if frame["type"] == "confirmation_request":
                    reply = {
                        "type": "confirmation_reply",
                        "request_id": frame["request_id"],
                        "approved": _decide(approve, frame),
                    }
                    await ws.send(json.dumps(reply))
                elif frame["type"] == "ask_human":
                    reply = {
                        "type": "human_reply",
                        "request_id": frame["request_id"],
                        "content": _answer(answers, pending_answers, frame),
                    }
                    await ws.send(json.dumps(reply))
                elif frame["type"] in TURN_END:
                    return result


def _decide(approve: Approve, frame: dict[str, Any]) -> bool:
    if approve is None:
        raise AssertionError(
            f"the turn asked to confirm {frame['tool']} ({frame['reason']}); "
            "pass approve=True, False or a function to quartet.chat()"
        )
    return bool(approve(frame) if callable(approve) else approve)


def _answer(answers: Answers, pending: list[str] | None, frame: dict[str, Any]) -> str:
    if callable(answers):
        return str(answers(frame))
    if not pending:
        raise AssertionError(
            f"the turn asked the human {frame['question']!r} and no answer is left; "
            "pass answers=[...] or a function to quartet.chat()"
        )
    return pending.pop(0)


# ─── fixtures ───────────────────────────────────────────────────────────────


@pytest.fixture
def scripted_model() -> ScriptedModel:
    """The test app's model: queue its rounds with ``enqueue``."""
    return ScriptedModel()


@pytest.fixture
def quartet_plugins() -> list[object] | None:
    """The plugins under test: ``None`` loads the installed entry points.

    Override it in a conftest or test module to test plugin objects instead::

        @pytest.fixture
        def quartet_plugins():
            return [my_plugin]
    """
    return None


@async_fixture
async def quartet(
    tmp_path: Path, scripted_model: ScriptedModel, quartet_plugins: list[object] | None
) -> AsyncIterator[QuartetTestApp]:
    """A started Quartet app with a temporary database, a known key and the scripted model."""
    from app import create_app
    from settings import Settings

    settings = Settings(
        _env_file=None,
        api_key=API_KEY,
        database_url=f"sqlite://{tmp_path / 'quartet.db'}",
        data_dir=tmp_path,
        plugins_file=tmp_path / "plugins.toml",
        model=ScriptedModel.name,
        redis_url=None,
    )
    app = create_app(
        settings,
        extra_plugins=[_ModelPlugin(scripted_model), *(quartet_plugins or [])],
        entry_points=quartet_plugins is None,
    )
    async with app.test_app() as test_app:
        yield QuartetTestApp(app, test_app.test_client())
