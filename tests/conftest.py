"""Fixtures every kind of test may use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fake_openai import FakeOpenAI
from tests.services import PostgresServer, RedisServer

# Quartet's own tests see its built-ins and the plugins they name, not whatever
# else the venv has installed (make test installs examples/quartet-weather).
# Servers the tests start inherit this too.
os.environ["QUARTET_LOAD_PLUGINS"] = ""


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    """One scriptable Chat Completions server on loopback for the whole run."""
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    """The fake server, with no scripts and no recorded requests."""
    fake_openai_server.reset()
    return fake_openai_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL on a free loopback port, for the whole run."""
    server = PostgresServer()
    if reason := server.unavailable():
        pytest.skip(f"NO POSTGRES: {reason}")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis on a free loopback port, for the whole run."""
    server = RedisServer()
    if reason := server.unavailable():
        pytest.skip(f"NO REDIS: {reason}")
    yield server.start()
    server.stop()
