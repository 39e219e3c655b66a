"""The API's documents: a valid, complete OpenAPI document and Swagger UI with no network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from quart import Quart

from app import create_app
from blueprints.apidocs import ASSETS_PATH, PROTOCOL_PATH
from settings import Settings

PUBLIC = {"/healthz", "/readyz"}


@pytest.fixture
def app(tmp_path: Path) -> Quart:
    return create_app(
        Settings(
            database_url=f"sqlite://{tmp_path}/quartet.db",
            data_dir=tmp_path,
            plugins_file=tmp_path / "none.toml",
        )
    )


@pytest.fixture
async def document(app: Quart) -> dict:
    response = await app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return await response.get_json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


async def test_the_openapi_document_is_valid(document: dict) -> None:
    validate(document)


async def test_every_operation_has_a_summary_and_a_success_response(document: dict) -> None:
    for path, method, operation in operations(document):
        assert operation.get("summary"), f"{method.upper()} {path} has no summary"
        assert any(code.startswith("2") for code in operation["responses"]), (method, path)


async def test_errors_are_documented_in_the_envelope(document: dict) -> None:
    keyed = [op for path, _, op in operations(document) if path.startswith("/api/")]
    assert keyed
    for operation in keyed:
        assert "401" in operation["responses"]


async def test_three_ways_to_send_a_key_and_public_probes(document: dict) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {(s["type"], s.get("in"), s.get("name"), s.get("scheme")) for s in schemes.values()} == {
        ("apiKey", "header", "X-API-Key", None),
        ("http", None, None, "bearer"),
        ("apiKey", "query", "api_key", None),
    }
    # Any one scheme is enough: one requirement object per scheme.
    assert sorted(document["security"], key=str) == sorted(({n: []} for n in schemes), key=str)
    for path, _, operation in operations(document):
        if path in PUBLIC:
            assert operation["security"] == [], path
        else:
            assert "security" not in operation, path
    assert PUBLIC <= set(document["paths"])
    assert PROTOCOL_PATH in document["info"]["description"]


async def test_docs_load_nothing_from_another_host(app: Quart) -> None:
    client = app.test_client()
    page = (await (await client.get("/docs")).get_data()).decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls, page
    assert all(url.startswith(ASSETS_PATH) for url in urls), urls
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(await asset.get_data()) > 1000, url
    assert "/openapi.json" in page
    # Redoc and Scalar would come from a CDN: they are not offered.
    assert (await client.get("/redocs")).status_code == 404
    assert (await client.get("/scalar")).status_code == 404


async def test_the_protocol_page_is_generated_from_the_protocol_module(app: Quart) -> None:
    response = await app.test_client().get(PROTOCOL_PATH)
    assert response.status_code == 200
    text = (await response.get_data()).decode()
    for frame_type in ("connected", "token", "final_answer", "confirmation_request", "error"):
        assert f"`{frame_type}`" in text
