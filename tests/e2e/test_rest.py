"""The REST API over a real server: keys, sessions, skills, probes, errors."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import uuid

import httpx
import pytest

from tests.e2e.conftest import create_session_via_api
from tests.e2e.server import QuartetServer


def assert_error(response: httpx.Response, status: int, code: str, mentions: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert mentions in error["message"]


# ─── keys and isolation ─────────────────────────────────────────────────────


def test_missing_key_is_401(quartet_server: QuartetServer) -> None:
    response = httpx.get(f"{quartet_server.base_url}/api/v1/sessions")
    assert_error(response, 401, "unauthorized", "API key is required")


def test_wrong_key_is_401(quartet_server: QuartetServer) -> None:
    response = httpx.get(
        f"{quartet_server.base_url}/api/v1/sessions", headers={"X-API-Key": "nope"}
    )
    assert_error(response, 401, "unauthorized", "not valid")


@pytest.mark.parametrize("style", ["bearer", "query"])
def test_key_in_bearer_header_or_query(quartet_server: QuartetServer, style: str) -> None:
    url = f"{quartet_server.base_url}/api/v1/sessions"
    if style == "bearer":
        response = httpx.get(url, headers={"Authorization": f"Bearer {quartet_server.api_key}"})
    else:
        response = httpx.get(url, params={"api_key": quartet_server.api_key})
    assert response.status_code == 200


def test_admin_issues_keys_stored_as_a_keyed_hash(api_client: httpx.Client, quartet_server) -> None:
    response = api_client.post("/api/v1/keys", json={"name": "alice"})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "alice" and body["key"].startswith("qk_")
    with sqlite3.connect(quartet_server.data_dir / "quartet.db") as db:
        hashes = {row[0] for row in db.execute("SELECT key_hash FROM api_keys")}
    # HMAC-SHA256 under the secret the server keeps in its data dir, not a bare SHA-256.
    secret = (quartet_server.data_dir / "secret_key").read_bytes().strip()
    assert (quartet_server.data_dir / "secret_key").stat().st_mode & 0o077 == 0
    assert hmac.new(secret, body["key"].encode(), hashlib.sha256).hexdigest() in hashes
    assert hashlib.sha256(body["key"].encode()).hexdigest() not in hashes
    assert body["key"] not in hashes
    assert body["key"].encode() not in (quartet_server.data_dir / "quartet.db").read_bytes()
    # The new key works.
    sessions = httpx.get(
        f"{quartet_server.base_url}/api/v1/sessions", headers={"X-API-Key": body["key"]}
    )
    assert sessions.status_code == 200


def test_only_admin_issues_keys(other_client: httpx.Client) -> None:
    assert_error(other_client.post("/api/v1/keys", json={"name": "x"}), 403, "forbidden")


def test_key_name_is_validated(api_client: httpx.Client) -> None:
    assert_error(api_client.post("/api/v1/keys", json={}), 400, "bad_request", "name")


def test_foreign_session_is_404_everywhere(api_client, other_client) -> None:
    sid = create_session_via_api(api_client)
    for path in ("", "/messages", "/events"):
        assert_error(other_client.get(f"/api/v1/sessions/{sid}{path}"), 404, "not_found")
    assert_error(other_client.delete(f"/api/v1/sessions/{sid}"), 404, "not_found")
    assert api_client.get(f"/api/v1/sessions/{sid}").status_code == 200
    assert sid not in {s["id"] for s in other_client.get("/api/v1/sessions").json()["items"]}


# ─── sessions ───────────────────────────────────────────────────────────────


def test_session_create_get_delete(api_client: httpx.Client) -> None:
    created = api_client.post("/api/v1/sessions", json={"title": "plans", "metadata": {"a": 1}})
    assert created.status_code == 201
    session = created.json()
    assert session["title"] == "plans" and session["metadata"] == {"a": 1}
    assert api_client.get(f"/api/v1/sessions/{session['id']}").json() == session
    assert api_client.delete(f"/api/v1/sessions/{session['id']}").status_code == 204
    assert_error(api_client.get(f"/api/v1/sessions/{session['id']}"), 404, "not_found")


def test_session_list_is_paginated(api_client: httpx.Client) -> None:
    ids = [create_session_via_api(api_client, title=f"page-{i}") for i in range(3)]
    page = api_client.get("/api/v1/sessions", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["limit"] == 2 and page["total"] >= 3
    # Newest first, so the last created comes first.
    assert page["items"][0]["id"] == ids[-1]
    second = api_client.get("/api/v1/sessions", params={"limit": 2, "offset": 1}).json()
    assert second["items"][0]["id"] == ids[-2]
    assert_error(
        api_client.get("/api/v1/sessions", params={"limit": 0}), 400, "bad_request", "limit"
    )


def test_session_empty_body_gets_defaults(api_client: httpx.Client) -> None:
    response = api_client.post("/api/v1/sessions", json={})
    assert response.status_code == 201 and response.json()["title"] == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [({"title": "x" * 201}, "title"), ({"metadata": "nope"}, "metadata"), ([1, 2], "body")],
)
def test_session_validation_names_the_field(api_client, body, field) -> None:
    assert_error(api_client.post("/api/v1/sessions", json=body), 400, "bad_request", field)


def test_malformed_json_body_is_400(api_client: httpx.Client) -> None:
    response = api_client.post(
        "/api/v1/sessions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "bad_request")


def test_unknown_route_is_enveloped_404(api_client: httpx.Client) -> None:
    assert_error(api_client.get("/api/v1/nothing-here"), 404, "not_found")


# ─── skills ─────────────────────────────────────────────────────────────────


def skill_name() -> str:
    return f"s_{uuid.uuid4().hex[:8]}"


def test_skill_crud(api_client: httpx.Client) -> None:
    name = skill_name()
    body = {
        "name": name,
        "keywords": ["alpha", "beta"],
        "description": "d",
        "tools": ["calculator"],
    }
    created = api_client.post("/api/v1/skills", json=body)
    assert created.status_code == 201
    assert created.json()["source"] == "rest" and created.json()["keywords"] == ["alpha", "beta"]
    assert_error(api_client.post("/api/v1/skills", json=body), 409, "conflict", name)
    assert api_client.get(f"/api/v1/skills/{name}").json()["description"] == "d"
    replaced = api_client.put(f"/api/v1/skills/{name}", json={"keywords": ["gamma"]})
    assert replaced.status_code == 200 and replaced.json()["keywords"] == ["gamma"]
    names = {s["name"] for s in api_client.get("/api/v1/skills").json()["items"]}
    assert {name, "weather"} <= names
    assert api_client.delete(f"/api/v1/skills/{name}").status_code == 204
    assert_error(api_client.get(f"/api/v1/skills/{name}"), 404, "not_found")
    assert_error(api_client.delete(f"/api/v1/skills/{name}"), 404, "not_found")


def test_skill_put_creates(api_client: httpx.Client) -> None:
    name = skill_name()
    response = api_client.put(f"/api/v1/skills/{name}", json={"keywords": ["k"]})
    assert response.status_code == 201 and response.json()["name"] == name
    mismatch = api_client.put(f"/api/v1/skills/{name}", json={"name": "other", "keywords": ["k"]})
    assert_error(mismatch, 400, "bad_request", "name")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"keywords": ["a"]}, "name"),
        ({"name": "ok", "keywords": []}, "keywords"),
        ({"name": "ok", "keywords": [""]}, "keywords"),
        ({"name": "bad name!", "keywords": ["a"]}, "name"),
        ({"name": "ok", "keywords": "a"}, "keywords"),
        ({"name": "ok", "keywords": ["a"], "bogus": 1}, "bogus"),
        ({"name": "ok", "keywords": ["a"], "tools": ["no_such_tool"]}, "tools"),
        ({"name": "ok", "keywords": ["a"], "experts": [{"role": "r"}]}, "experts.0.name"),
        ({"name": "ok", "keywords": ["a"], "experts": [{"name": "a b"}]}, "experts.0.name"),
        (
            {"name": "ok", "keywords": ["a"], "experts": [{"name": "x", "tools": ["nope"]}]},
            "experts.0.tools",
        ),
        (
            {"name": "ok", "keywords": ["a"], "experts": [{"name": "x", "model": "nope"}]},
            "experts.0.model",
        ),
    ],
)
def test_skill_validation_names_the_field(api_client, body, field) -> None:
    assert_error(api_client.post("/api/v1/skills", json=body), 400, "bad_request", field)


def test_rest_skills_are_private_to_their_key(api_client, other_client) -> None:
    name = skill_name()
    api_client.post("/api/v1/skills", json={"name": name, "keywords": ["zeta"]})
    assert_error(other_client.get(f"/api/v1/skills/{name}"), 404, "not_found")
    # The other key may use the same name for a skill of its own.
    assert (
        other_client.post("/api/v1/skills", json={"name": name, "keywords": ["eta"]}).status_code
        == 201
    )
    assert api_client.get(f"/api/v1/skills/{name}").json()["keywords"] == ["zeta"]


def test_plugin_skills_are_shared_and_read_only(api_client, other_client) -> None:
    skill = other_client.get("/api/v1/skills/weather").json()
    assert skill["source"] == "plugin:plugins.examples.weather"
    conflict = api_client.post("/api/v1/skills", json={"name": "weather", "keywords": ["x"]})
    assert_error(conflict, 409, "conflict", "plugin")
    assert_error(api_client.delete("/api/v1/skills/weather"), 403, "forbidden")


# ─── probes, docs, plugins ──────────────────────────────────────────────────


def test_health_and_ready(quartet_server: QuartetServer) -> None:
    assert httpx.get(f"{quartet_server.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{quartet_server.base_url}/readyz").json()
    # Each check's state; no Redis check without QUARTET_REDIS_URL.
    assert ready == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


def test_openapi_lists_the_api(quartet_server: QuartetServer) -> None:
    spec = httpx.get(f"{quartet_server.base_url}/openapi.json").json()
    assert {"/api/v1/sessions", "/api/v1/skills", "/api/v1/skills/{name}"} <= set(spec["paths"])


def test_plugins_lists_hooks_skills_models(api_client: httpx.Client) -> None:
    body = api_client.get("/api/v1/plugins").json()
    by_name = {p["name"]: p for p in body["plugins"]}
    assert by_name["plugins.builtin.demo"]["models"] == ["demo"]
    weather = by_name["plugins.examples.weather"]["skills"]
    assert [(s["name"], s["keywords"]) for s in weather] == [
        ("weather", ["weather", "forecast", "temperature"])
    ]
    assert "match_skills" in by_name["tests.e2e.sample_plugins"]["hooks"]
    assert "register_tools" in by_name["plugins.builtin.calculator"]["hooks"]
    assert body["model"] == "demo"
