"""The page and its files are served by Quartet itself, with no key and no CDN."""

from __future__ import annotations

import re

import httpx

from tests.e2e.server import QuartetServer


def test_the_page_is_served_at_the_root_with_a_strict_policy(ui_server: QuartetServer) -> None:
    response = httpx.get(ui_server.base_url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "img-src 'self' data:" in policy
    assert "default-src 'none'" in policy
    for name in ("API key", "Connect", "Sessions", "New session", "Message", "Send", "Stop"):
        assert name in response.text
    # Every asset is local: no scheme or protocol-relative URL anywhere in the page.
    assert not re.search(r"""(src|href)=["'](https?:)?//""", response.text)


def test_every_asset_is_served_locally(ui_server: QuartetServer) -> None:
    page = httpx.get(ui_server.base_url + "/").text
    assets = re.findall(r"""(?:src|href)="(/static/[^"]+)\"""", page)
    assert len(assets) == 4
    for path in (
        *assets,
        "/static/vendor/marked/LICENSE",
        "/static/vendor/dompurify/LICENSE",
    ):
        response = httpx.get(ui_server.base_url + path)
        assert response.status_code == 200, path
        assert response.content, path
