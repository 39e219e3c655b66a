"""`make run` defaults: without QUARTET_API_KEY a dev key is generated, printed, and kept."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.server import QuartetServer

KEY_LINE = re.compile(r"Quartet dev API key: (qk_\S+)")


def start_and_read_key(data_dir: Path) -> tuple[str, str]:
    server = QuartetServer(data_dir, api_key=None).start()
    try:
        match = KEY_LINE.search(server.output())
        assert match, server.output()
        key = match.group(1)
        response = httpx.post(
            f"{server.base_url}/api/v1/sessions", json={}, headers={"X-API-Key": key}
        )
        assert response.status_code == 201
        return key, response.json()["id"]
    finally:
        server.stop()


def test_generated_dev_key_is_printed_and_survives_restart(tmp_path: Path) -> None:
    key, _ = start_and_read_key(tmp_path)
    assert (tmp_path / "dev_api_key").stat().st_mode & 0o077 == 0  # readable by the owner only
    again, _ = start_and_read_key(tmp_path)
    assert again == key
