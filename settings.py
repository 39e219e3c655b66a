"""Quartet's settings: environment variables with the prefix ``QUARTET_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The shortest admin key accepted; generated keys are 46 characters.
MIN_ADMIN_KEY_CHARS = 16


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
    secret_key: SecretStr | None = Field(
        default=None,
        description="Server secret that API keys are hashed with (HMAC-SHA256), at least 16 "
        "characters. Unset: one is generated and kept in data_dir. Changing it invalidates "
        "every key.",
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
        default=0.05,
        gt=0,
        description="How often the write-behind event log flushes: the most a crash can "
        "lose of what clients saw, with `event_log_high_water`.",
    )
    event_log_high_water: int = Field(
        default=2_000,
        ge=10,
        description="Unwritten frames at which a streaming turn waits for the log: "
        "the most frames a crash can lose.",
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
    trace_plugins: bool = Field(default=False, description="Log every plugin hook call.")
    page_size: int = Field(default=50, ge=1, le=500, description="Default REST page size.")
    messages_per_minute: float = Field(
        default=120,
        ge=0,
        description="Per key: `message` frames a key may send per minute, on all its "
        "sockets together (0: no limit); more get `error` `rate_limited`.",
    )
    message_burst: int = Field(
        default=30, ge=1, description="Per key: `message` frames allowed at once, above the rate."
    )
    requests_per_minute: float = Field(
        default=1200,
        ge=0,
        description="Per key: REST requests and WebSocket handshakes per minute (0: no "
        "limit); more get 429 with Retry-After.",
    )
    request_burst: int = Field(
        default=200, ge=1, description="Per key: requests allowed at once, above the rate."
    )
    max_sockets_per_key: int = Field(
        default=256,
        ge=0,
        description="Per key: open chat WebSockets (0: no limit); another handshake gets 429.",
    )
    max_sessions_per_key: int = Field(
        default=10_000,
        ge=0,
        description="Per key: stored sessions (0: no limit); another `POST /sessions` gets 409.",
    )
    tcp_user_timeout_s: float = Field(
        default=30,
        ge=0,
        description="With `python -m serve`: a connection whose sent data (a WebSocket ping "
        "included) goes unacknowledged this long is dropped by the kernel (0: the kernel's "
        "default, about 15 minutes).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest REST request body; a larger one gets 413 before it is read.",
    )

    metrics_access: Literal["loopback", "key", "open"] = Field(
        default="loopback",
        description="Who may read `GET /metrics`: `loopback` (requests from this host, or "
        "with the admin key), `key` (the admin key only), `open` (anyone).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object a line, for log collectors."
    )
    log_level: str = Field(default="INFO", description="The lowest level logged.")

    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < MIN_ADMIN_KEY_CHARS:
            raise ValueError(
                f"an admin key must have at least {MIN_ADMIN_KEY_CHARS} characters "
                f"(this one has {len(value)})"
            )
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_KEY_CHARS:
            raise ValueError(f"the secret must have at least {MIN_ADMIN_KEY_CHARS} characters")
        return value
