"""The documentation covers the public API, and the library never prints."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import wsstream

ROOT = Path(__file__).resolve().parent.parent


def test_api_reference_documents_every_public_name() -> None:
    text = (ROOT / "docs" / "api.rst").read_text()
    # A directive names one object, or several on continuation lines
    # (".. data:: CONNECTING" then "          OPEN").
    pattern = r"^\.\. (?:auto)?(?:class|function|exception|data):: (\w+)\n((?: +\w+\n)*)"
    documented: set[str] = set()
    for first, more in re.findall(pattern, text, re.MULTILINE):
        documented.add(first)
        documented.update(more.split())
    assert documented == set(wsstream.__all__)


def test_the_library_logs_and_never_prints() -> None:
    # Only the command line (wsstream/__main__.py) writes to stdout/stderr.
    for path in sorted((ROOT / "wsstream").glob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        calls = [
            node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ]
        assert not calls, f"{path.name} prints on lines {calls}"


def test_docs_index_lists_every_page() -> None:
    index = (ROOT / "docs" / "index.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.stem in ("index", "classic", "conformance", "performance"):
            continue  # the optional pages come in through conf.py
        assert f"\n{page.stem}\n" in index, page.name
