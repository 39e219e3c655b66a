"""The docs stay in step with the code they describe."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from agent.protocol import render_markdown, splice_docs
from plugins.manager import hook_specs, make_plugin_manager

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_protocol_doc_matches_the_models() -> None:
    text = (DOCS / "protocol.md").read_text()
    assert render_markdown() in text, "run: python -m agent.protocol --write"
    assert splice_docs(text) == text


HOOKS = hook_specs(make_plugin_manager())


def test_the_plugin_manager_knows_the_hooks() -> None:
    assert "match_skills" in HOOKS and "register_tools" in HOOKS


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_documented_with_its_signature(name: str) -> None:
    signature = str(inspect.signature(HOOKS[name])).replace("'", "")
    assert f"### `{name}{signature}`" in (DOCS / "plugins.md").read_text()


def test_seed_suite_is_unchanged() -> None:
    """tests/e2e/test_seed_basic.py is shared/seeds' file with its line breaks restored."""
    import re

    root = Path(__file__).resolve().parents[2]
    seeds = sorted((root.parent / "shared" / "seeds").glob("*.txt"))
    if not seeds:
        pytest.skip("shared/seeds is not beside this checkout")
    ours = (root / "tests" / "e2e" / "test_seed_basic.py").read_text()

    def words(text: str) -> str:
        return re.sub(r"\s+", " ", text).strip()

    assert words(ours) == words(seeds[0].read_text())
