"""The documentation covers the public API, and the library never prints."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import wsstream
import wsstream.testing

ROOT = Path(__file__).resolve().parent.parent.parent


def _documented_names() -> dict[str, set[str]]:
    """The names each module's part of docs/api.rst documents: a part starts
    at ``.. module::`` or ``.. currentmodule::``."""
    text = (ROOT / "docs" / "api.rst").read_text()
    parts = re.split(r"^\.\. (?:current)?module:: ([\w.]+)\n", text, flags=re.MULTILINE)
    # A directive names one object, or several on continuation lines
    # (".. data:: CONNECTING" then "          OPEN"); "Pair()" hides a
    # constructor's signature that users do not call.
    pattern = (
        r"^\.\. (?:auto)?(?:class|function|exception|data):: (\w+)(?:\(\))?\n((?: +\w+\n)*)"
    )
    documented: dict[str, set[str]] = {}
    for module, part in zip(parts[1::2], parts[2::2], strict=True):
        names = documented.setdefault(module, set())
        for first, more in re.findall(pattern, part, re.MULTILINE):
            names.add(first)
            names.update(more.split())
    return documented


def test_api_reference_documents_every_public_name() -> None:
    documented = _documented_names()
    # wsstream.testing keeps its names to itself, as trio.testing does.
    assert set(documented) == {"wsstream", "wsstream.testing"}
    assert documented["wsstream"] == set(wsstream.__all__)
    assert documented["wsstream.testing"] == set(wsstream.testing.__all__)


def test_importing_wsstream_does_not_load_the_testing_helpers() -> None:
    code = (
        "import sys, wsstream; "
        "assert 'wsstream.testing' not in sys.modules and 'trio.testing' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_library_logs_and_never_prints() -> None:
    # Only the command line (wsstream/__main__.py and wsstream/_cli/) writes
    # to stdout/stderr.
    package = ROOT / "wsstream"
    for path in sorted(package.rglob("*.py")):
        if path.name == "__main__.py" or path.parent.name == "_cli":
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
