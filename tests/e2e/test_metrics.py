"""``GET /metrics`` on a real server: what a turn leaves in it, and who may read it."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import WSChatHelper, create_session_via_api
from tests.e2e.server import QuartetServer


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as ``{(name, sorted labels): value}``."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(all_samples: dict, name: str, **labels: str) -> float:
    return all_samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_turn_shows_in_the_metrics(
    quartet_server: QuartetServer, api_client: httpx.Client, ws_helper: WSChatHelper
) -> None:
    # From loopback no key is needed (QUARTET_METRICS_ACCESS=loopback, the default).
    before = samples(httpx.get(f"{quartet_server.base_url}/metrics").text)
    session_id = create_session_via_api(api_client, "metrics")
    frames = await ws_helper.connect_and_chat(
        session_id,
        [
            {
                "type": "message",
                "content": 'count these words [[tool:calculator {"expression":"2+2"}]]',
            }
        ],
    )
    assert frames[-1]["type"] == "final_answer", frames[-1]
    tokens = sum(1 for frame in frames if frame["type"] == "token")

    response = httpx.get(f"{quartet_server.base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def grew(name: str, by: float = 1, **labels: str) -> bool:
        return value(after, name, **labels) - value(before, name, **labels) >= by

    assert grew("quartet_turns_total", outcome="complete")
    assert grew("quartet_tokens_streamed_total", by=tokens)
    assert grew("quartet_first_token_seconds_count")
    assert grew("quartet_turn_duration_seconds_count")
    assert grew("quartet_model_calls_total", model="demo")
    assert grew("quartet_tool_calls_total", tool="calculator", outcome="ok")
    assert grew("quartet_eventlog_flush_seconds_count")
    assert grew("quartet_websocket_closed_total", code="1000")
    assert ("quartet_outbox_overflows_total", ()) in after
    assert ("quartet_eventlog_flush_failures_total", ()) in after


def client_key_and_session(server: QuartetServer) -> tuple[str, str]:
    """A new non-admin key, and a session of the admin key."""
    with httpx.Client(base_url=server.base_url, headers={"X-API-Key": server.api_key}) as api:
        client_key = api.post("/api/v1/keys", json={"name": "client"}).json()["key"]
        return client_key, create_session_via_api(api, "multiprocess")


async def test_multiprocess_mode_and_key_only_access(tmp_path: Path) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "QUARTET_METRICS_ACCESS": "key",
        "QUARTET_MESSAGES_PER_MINUTE": "0",
    }
    server = QuartetServer(tmp_path / "data", env=env).start()
    try:
        url = f"{server.base_url}/metrics"
        assert httpx.get(url).status_code == 401
        admin = {"Authorization": f"Bearer {server.api_key}"}
        client_key, session_id = client_key_and_session(server)
        assert httpx.get(url, headers={"X-API-Key": client_key}).status_code == 403
        helper = WSChatHelper(server.base_ws_url, server.api_key)
        frames = await helper.connect_and_chat(session_id, [{"type": "message", "content": "hi"}])
        assert frames[-1]["type"] == "final_answer"
        response = httpx.get(url, headers=admin)
        assert response.status_code == 200
        assert value(samples(response.text), "quartet_turns_total", outcome="complete") == 1
        assert any(multiproc.iterdir()), "multiprocess mode writes its values to files"
    finally:
        server.stop()
