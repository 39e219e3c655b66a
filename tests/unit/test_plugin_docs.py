"""docs/plugins.md is written for outside authors: its snippets import only quartet, and run."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import pytest

from plugins.manager import build_plugin_host

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
#: What a snippet may import: the plugin API, and the libraries it is written with.
ALLOWED = {"quartet", "pydantic", "pytest"}


def imported(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_doc_has_snippets() -> None:
    assert len(SNIPPETS) >= 6


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_a_snippet_imports_only_quartet_and_registers(code: str, tmp_path: Path) -> None:
    assert imported(code) <= ALLOWED
    module = types.ModuleType("snippet")
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    plugins = [module, *(v() for v in vars(module).values() if _is_plugin_class(v))]
    build_plugin_host(tmp_path / "none.toml", extra=plugins, entry_points=False)


def _is_plugin_class(value: object) -> bool:
    return isinstance(value, type) and any(
        hasattr(member, "quartet_impl") for member in vars(value).values()
    )
