"""Expert teams over a real server: the demo directive, team mode, failure, cancel, a real planner."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests import fake_openai
from tests.e2e.conftest import (
    TURN_END,
    WSChatHelper,
    connect,
    create_session_via_api,
    is_type,
    ping_pong,
    recv_until,
    register_skill_via_api,
    send,
)
from tests.e2e.server import QuartetServer
from tests.fake_openai import FakeOpenAI

TEAM_EVENTS = {
    "team_formed",
    "plan_update",
    "expert_step",
    "expert_result",
    "team_synthesis",
    "team_dissolved",
}


def team_frames(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] in TEAM_EVENTS]


def last_plan(frames: list[dict]) -> dict[str, str]:
    update = [f for f in frames if f["type"] == "plan_update"][-1]
    return {item["expert"]: item["status"] for item in update["plan"]}


def check_team_order(frames: list[dict]) -> None:
    """The protocol's order for one team, whatever the experts' interleaving."""
    kinds = [f["type"] for f in team_frames(frames)]
    assert kinds[:2] == ["team_formed", "plan_update"]
    assert kinds[-2:] == ["team_synthesis", "team_dissolved"]
    assert set(kinds[2:-2]) <= {"plan_update", "expert_step", "expert_result"}
    assert len({f["team_id"] for f in team_frames(frames)}) == 1
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def run_turn(ws_helper: WSChatHelper, sid: str, message: dict) -> list[dict]:
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, message)
        return await recv_until(ws, is_type(*TURN_END))


async def test_the_demo_directive_convenes_a_team(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    frames = await run_turn(
        ws_helper,
        sid,
        {"type": "message", "content": "[[team:historian,economist]] Why did Rome fall?"},
    )
    check_team_order(frames)
    call = frames[1]
    assert (call["type"], call["kind"], call["tool"]) == ("step", "tool_call", "convene_team")
    assert call["arguments"] == {
        "goal": "Why did Rome fall?",
        "experts": ["historian", "economist"],
    }
    formed = team_frames(frames)[0]
    assert formed["experts"] == [
        {"name": "historian", "role": ""},
        {"name": "economist", "role": ""},
    ]
    results = {f["expert"]: f["content"] for f in frames if f["type"] == "expert_result"}
    assert results == {
        "historian": "The historian covered: The historian view: Why did Rome fall?",
        "economist": "The economist covered: The economist view: Why did Rome fall?",
    }
    for expert, content in results.items():
        tokens = [
            f["content"] for f in frames if f["type"] == "token" and f.get("expert") == expert
        ]
        assert "".join(tokens) == content
    steps = [f for f in frames if f["type"] == "expert_step"]
    assert {f["expert"] for f in steps} == {"historian", "economist"}
    assert last_plan(frames) == {"historian": "done", "economist": "done"}

    synthesis = team_frames(frames)[-2]["content"]
    assert synthesis.startswith("The team's answer on: Why did Rome fall? [historian]")
    assert [f["type"] for f in frames[-2:]] == ["step", "final_answer"]
    assert frames[-2]["result"]["tasks_done"] == 2
    assert frames[-1]["content"] == synthesis
    assert team_frames(frames)[-1]["reason"] == "done"

    # The synthesis is the stored answer, and every team event is in the log.
    stored = api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [m["content"] for m in stored if m["role"] == "assistant"] == [synthesis]
    logged = api_client.get(f"/api/v1/sessions/{sid}/events").json()["items"]
    assert {e["type"] for e in logged} >= TEAM_EVENTS


async def test_team_mode_picks_registered_experts(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    frames = await run_turn(
        ws_helper,
        sid,
        {"type": "message", "content": "Compare SQLite and Postgres", "mode": "team"},
    )
    check_team_order(frames)
    assert frames[0]["type"] == "thinking"
    formed = team_frames(frames)[0]
    assert [e["name"] for e in formed["experts"]] == ["researcher", "analyst", "critic"]
    assert formed["goal"] == "Compare SQLite and Postgres"
    plan = team_frames(frames)[1]["plan"]
    assert plan[0]["task"] == "Finds the facts the question turns on: Compare SQLite and Postgres"
    assert last_plan(frames) == dict.fromkeys(["researcher", "analyst", "critic"], "done")
    assert frames[-1]["type"] == "final_answer"
    assert frames[-1]["content"] == team_frames(frames)[-2]["content"]


async def test_a_skill_with_experts_forms_a_team(ws_helper, api_client) -> None:
    register_skill_via_api(
        api_client,
        "due-diligence",
        ["diligence"],
        experts=[{"name": "critic"}, {"name": "lawyer", "role": "reads the contract"}],
    )
    sid = create_session_via_api(api_client)
    frames = await run_turn(
        ws_helper, sid, {"type": "message", "content": "Do the diligence on this deal"}
    )
    assert frames[0]["type"] == "skill_match" and frames[0]["skill"] == "due-diligence"
    check_team_order(frames)
    assert team_frames(frames)[0]["experts"] == [
        {"name": "critic", "role": "looks for what could go wrong"},
        {"name": "lawyer", "role": "reads the contract"},
    ]
    assert frames[-1]["type"] == "final_answer"


async def test_a_failing_expert_leaves_a_gap_the_synthesis_names(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    frames = await run_turn(
        ws_helper, sid, {"type": "message", "content": "[[team:a,b]] [[fail:b]] Solve it"}
    )
    check_team_order(frames)
    assert last_plan(frames) == {"a": "done", "b": "failed"}
    assert [f["expert"] for f in frames if f["type"] == "expert_result"] == ["a"]
    failure = [f for f in frames if f["type"] == "expert_step" and f["expert"] == "b"][-1]
    assert failure["content"] == "Failed: the b expert was told to fail"
    assert "[b] Missing, that part failed" in frames[-1]["content"]
    assert team_frames(frames)[-1]["reason"] == "done"


async def test_cancel_dissolves_the_team_and_the_session_goes_on(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "[[slow:300]] [[team:a,b]] Think hard"})
        # Cancel once an expert is speaking.
        frames = await recv_until(ws, lambda f: f["type"] == "token" and "expert" in f)
        await send(ws, {"type": "cancel"})
        frames += await recv_until(ws, is_type(*TURN_END))
        assert [f["type"] for f in frames[-2:]] == ["team_dissolved", "error"]
        assert frames[-2]["reason"] == "cancelled" and frames[-1]["code"] == "cancelled"
        assert "team_synthesis" not in [f["type"] for f in frames]
        await ping_pong(ws)
        await send(ws, {"type": "message", "content": "and now?"})
        after = await recv_until(ws, is_type(*TURN_END))
    assert after[-1] == after[-1] | {"type": "final_answer", "content": "You said: and now?"}
    stored = api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [m["status"] for m in stored if m["role"] == "assistant"] == ["cancelled", "complete"]


async def test_a_bad_mode_is_refused_and_the_connection_survives(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "hi", "mode": "crowd"})
        error = (await recv_until(ws, is_type("error")))[-1]
        assert error["code"] == "bad_request" and "mode" in error["message"]
        await ping_pong(ws)


# ─── with a real planner and synthesis, through the openai model ──────────


@pytest.fixture(scope="module")
def openai_server(fake_openai_server: FakeOpenAI, tmp_path_factory) -> Iterator[QuartetServer]:
    env = fake_openai_server.quartet_env()
    server = QuartetServer(tmp_path_factory.mktemp("team-openai"), env=env).start()
    yield server
    server.stop()


async def test_a_team_with_a_real_planner_and_synthesis(openai_server, fake) -> None:
    plan = {
        "tasks": [
            {"expert": "researcher", "task": "List the facts about both databases."},
            {"expert": "critic", "task": "Find where each one breaks."},
        ]
    }
    fake.enqueue(
        fake_openai.text("```json " + json.dumps(plan) + " ```", match="Pick the experts"),
        fake_openai.text("SQLite is one file.", match="You are the researcher expert"),
        fake_openai.text("SQLite has one writer.", match="You are the critic expert"),
        fake_openai.text("Use Postgres for many writers.", match="Merge the results"),
    )
    headers = {"X-API-Key": openai_server.api_key}
    with httpx.Client(base_url=openai_server.base_url, headers=headers) as client:
        sid = create_session_via_api(client)
    helper = WSChatHelper(openai_server.base_ws_url, openai_server.api_key)
    frames = await run_turn(
        helper, sid, {"type": "message", "content": "SQLite or Postgres?", "mode": "team"}
    )
    check_team_order(frames)
    # The planner chose two of the three registered experts and wrote their tasks.
    assert [e["name"] for e in team_frames(frames)[0]["experts"]] == ["researcher", "critic"]
    assert [(i["expert"], i["task"]) for i in team_frames(frames)[1]["plan"]] == [
        ("researcher", "List the facts about both databases."),
        ("critic", "Find where each one breaks."),
    ]
    results = {f["expert"]: f["content"] for f in frames if f["type"] == "expert_result"}
    assert results == {"researcher": "SQLite is one file.", "critic": "SQLite has one writer."}
    assert frames[-1] == frames[-1] | {
        "type": "final_answer",
        "content": "Use Postgres for many writers.",
    }
    # What the model was asked: the plan, each expert's task, then the merge.
    assert len(fake.requests) == 4
    planner = json.loads(fake.requests[0]["messages"][1]["content"])
    assert planner["goal"] == "SQLite or Postgres?"
    assert [e["name"] for e in planner["experts"]] == ["researcher", "analyst", "critic"]
    expert_tasks = {r["messages"][1]["content"] for r in fake.requests[1:3]}
    assert expert_tasks == {"List the facts about both databases.", "Find where each one breaks."}
    merge = json.loads(fake.requests[3]["messages"][1]["content"])
    assert [(r["expert"], r["status"], r["result"]) for r in merge["results"]] == [
        ("researcher", "done", "SQLite is one file."),
        ("critic", "done", "SQLite has one writer."),
    ]


def test_the_plugins_endpoint_lists_experts_and_convene_team(api_client) -> None:
    plugins = {p["name"]: p for p in api_client.get("/api/v1/plugins").json()["plugins"]}
    team = plugins["plugins.builtin.team"]
    assert team["hooks"] == ["register_experts", "register_tools"]
    assert [e["name"] for e in team["experts"]] == ["analyst", "critic", "researcher"]
    assert team["tools"][0]["name"] == "convene_team"
    assert team["tools"][0]["parameters"]["required"] == ["goal", "experts"]
