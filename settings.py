"""Quartet's settings: environment variables with the prefix ``QUARTET_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can set, with the embedded defaults.

    Read from ``QUARTET_<NAME>`` environment variables (and a ``.env`` file if present);
    tests pass keyword arguments instead.
    """

    model_config = SettingsConfigDict(env_prefix="QUARTET_", env_file=".env", extra="ignore")

    api_key: str | None = Field(
        default=None,
        description="Bootstrap admin key. Unset: one is generated, kept in data_dir, printed.",
    )
    database_url: str = Field(
        default="sqlite://./data/quartet.db", description="tortoise-orm database URL."
    )
    data_dir: Path = Field(
        default=Path("data"), description="Where the SQLite file and dev key live."
    )
    model: str = Field(default="demo", description="Model for turns: `demo` or `openai:NAME`.")
    plugins_file: Path = Field(default=Path("plugins.toml"), description="Plugins to load.")
    max_message_chars: int = Field(
        default=32 * 1024, ge=1, description="Longest `content` a client may send."
    )
    max_frame_bytes: int = Field(
        default=1024 * 1024 * 2,
        ge=1024,
        description="Frames larger than this are answered `too_large` without being parsed.",
    )
    client_queue_size: int = Field(
        default=4096, ge=16, description="Events buffered per connection before it is dropped."
    )
    event_flush_interval_s: float = Field(
        default=0.05, gt=0, description="How often the write-behind event log flushes."
    )
    confirmation_timeout_s: float = Field(
        default=300,
        gt=0,
        description="How long a `confirmation_request` or `ask_human` waits for a reply.",
    )
    max_tool_rounds: int = Field(
        default=10,
        ge=1,
        description="Model rounds per turn; a model still calling tools after them ends the "
        "turn with `error` `step_limit`.",
    )
    system_prompt: str = Field(
        default="You are Quartet, a helpful assistant. Use the tools you are given when they "
        "help, and ask the human when only they can answer.",
        description="The start of every turn's system message; matched skills add theirs.",
    )
    history_budget_chars: int = Field(
        default=32_000,
        ge=0,
        description="How many characters of earlier conversation the model sees; "
        "the oldest messages are dropped first.",
    )
    redis_url: str | None = Field(
        default=None,
        description="`redis://…`: join the other processes that share it and the database. "
        "Unset: one process, events in memory.",
    )
    turn_lease_s: float = Field(
        default=10,
        gt=0,
        description="With Redis: how long a dead process's turn keeps its session busy "
        "before another process closes it.",
    )
    team_concurrency: int = Field(
        default=3, ge=1, le=32, description="How many experts of a team work at the same time."
    )
    page_size: int = Field(default=50, ge=1, le=500, description="Default REST page size.")
