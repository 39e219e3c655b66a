"""The ``openai`` model: any OpenAI-compatible Chat Completions endpoint.

``QUARTET_MODEL=openai:MODEL_NAME`` selects it; ``QUARTET_OPENAI_BASE_URL``
and ``QUARTET_OPENAI_API_KEY`` point it at OpenAI, Ollama, vLLM, llama.cpp's
server or anything else that speaks the protocol. The official ``openai``
package does the HTTP, including retries with backoff of connection errors,
429 and 5xx before the stream starts.

Streamed content becomes ``token`` frames, ``reasoning_content`` (or
``reasoning``) deltas become ``thinking``, and tool calls are assembled from
their pieces across chunks and handed to the agent loop when the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from plugins.hookspecs import hookimpl
from plugins.llm import (
    ChatMessage,
    ModelError,
    ModelOutput,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 8.0


class OpenAISettings(BaseSettings):
    """``QUARTET_OPENAI_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="QUARTET_OPENAI_", env_file=".env", extra="ignore")

    base_url: str = Field(
        default="https://api.openai.com/v1", description="The Chat Completions endpoint's base."
    )
    api_key: str = Field(
        default="unset",
        description="Sent as the bearer token; local servers (Ollama, vLLM) accept any value.",
    )
    max_retries: int = Field(
        default=2, ge=0, description="Retries of connection errors, 429 and 5xx before a stream."
    )
    stall_timeout_s: float = Field(
        default=60, gt=0, description="A stream silent this long ends the turn with `timeout`."
    )
    retry_backoff_s: float = Field(
        default=0.5, gt=0, description="First wait before retrying a stream; doubles each time."
    )
    connect_timeout_s: float = Field(default=10, gt=0)


class StreamBroke(ModelError):
    """The stream failed after it started (an error event, a drop, a stall)."""


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIChat:
    """The ``openai`` model family; ``variant(name)`` is one model of it."""

    name = "openai"

    def __init__(self, settings: OpenAISettings, model_name: str | None = None) -> None:
        self.settings = settings
        self.model_name = model_name
        if model_name is not None:
            self.name = f"openai:{model_name}"
        self._client: openai.AsyncOpenAI | None = None

    def variant(self, model_name: str) -> OpenAIChat:
        return OpenAIChat(self.settings, model_name)

    @property
    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.settings.base_url,
                api_key=self.settings.api_key,
                max_retries=self.settings.max_retries,
                # The stall timeout bounds each chunk; this bounds connecting.
                timeout=openai.Timeout(None, connect=self.settings.connect_timeout_s),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        """Stream one answer, retrying a stream that fails before its first output.

        Failures of the request itself (connection, 429, 5xx) are retried by the
        ``openai`` client; this covers a stream that breaks or stalls after its
        headers but before anything reached the client.
        """
        if self.model_name is None:
            raise ModelError("say which model: QUARTET_MODEL=openai:MODEL_NAME")
        for attempt in range(self.settings.max_retries + 1):
            produced = False
            try:
                async for output in self._attempt(request):
                    produced = True
                    yield output
                return
            except StreamBroke as exc:
                if produced or not exc.retryable or attempt == self.settings.max_retries:
                    raise
                delay = min(self.settings.retry_backoff_s * 2**attempt, MAX_BACKOFF_S)
                log.warning("model stream failed before any output (%s); retry in %gs", exc, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        options: dict[str, Any] = {}
        if request.tools:
            options["tools"] = [tool_schema(tool) for tool in request.tools]
        try:
            stream = await self.client.chat.completions.create(
                model=self.model_name,
                messages=[to_openai(message) for message in request.messages],
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
        except openai.APIError as exc:
            raise model_error(exc) from exc
        calls: dict[int, _PendingCall] = {}
        try:
            chunks = aiter(stream)
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), self.settings.stall_timeout_s)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise StreamBroke(
                        f"the model sent nothing for {self.settings.stall_timeout_s:g} s",
                        retryable=True,
                        code="timeout",
                    ) from None
                if chunk.usage is not None:
                    yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    delta = choice.delta
                    reasoning = getattr(delta, "reasoning_content", None) or getattr(
                        delta, "reasoning", None
                    )
                    if isinstance(reasoning, str) and reasoning:
                        yield ReasoningDelta(reasoning)
                    if delta.content:
                        yield TextDelta(delta.content)
                    for part in delta.tool_calls or []:
                        pending = calls.setdefault(part.index, _PendingCall())
                        pending.id = part.id or pending.id
                        if part.function is not None:
                            pending.name = part.function.name or pending.name
                            pending.arguments.append(part.function.arguments or "")
        except openai.APIError as exc:
            broke = model_error(exc)
            raise StreamBroke(str(broke), retryable=broke.retryable) from exc
        finally:
            # Closing the response closes the upstream connection: a cancelled
            # turn stops the model's generation too.
            await stream.close()
        for index, pending in sorted(calls.items()):
            yield ToolCall(
                id=pending.id or f"call_{index}",
                name=pending.name,
                arguments="".join(pending.arguments),
            )


def tool_schema(tool: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def to_openai(message: ChatMessage) -> dict[str, Any]:
    """A :class:`ChatMessage` in the Chat Completions format."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def model_error(exc: openai.APIError) -> ModelError:
    """Say what went wrong upstream, and whether sending again may help."""
    if isinstance(exc, openai.APITimeoutError):
        return ModelError("the model endpoint timed out", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(f"cannot reach the model endpoint: {exc}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status in (408, 409, 429) or status >= 500
        hint = " (check QUARTET_OPENAI_API_KEY)" if status in (401, 403) else ""
        return ModelError(
            f"the model endpoint answered {status}: {exc.message}{hint}", retryable=retryable
        )
    # An error event inside a stream that had started.
    body = exc.body if isinstance(exc.body, dict) else {}
    retryable = body.get("type") != "invalid_request_error"
    return ModelError(f"the model stream failed: {exc.message}", retryable=retryable)


@hookimpl
def register_models(register) -> None:
    register(OpenAIChat(OpenAISettings()))
