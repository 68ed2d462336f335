"""Sphinx configuration for wsstream's documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (CI runs it).
Pages are Markdown (MyST) except the API reference, which is autodoc.
"""

from __future__ import annotations

import wsstream

project = "wsstream"
author = "the wsstream authors"
copyright = "the wsstream authors"
release = wsstream.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Pages written for GitHub (conformance.md, performance.md) link to files of
# the repository outside docs/ (scripts, reports); those links are fine on
# GitHub and have no Sphinx target, so they are not errors here.
suppress_warnings = ["myst.xref_missing"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

# No network at build time: intersphinx reads the inventories only if a
# local copy is present (WSSTREAM_INTERSPHINX=1 fetches them).
import os  # noqa: E402

if os.environ.get("WSSTREAM_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "trio": ("https://trio.readthedocs.io/en/stable", None),
    }
else:
    intersphinx_mapping = {}

nitpicky = False

# Furo (as websockets and trio's newer projects use): content and code are as
# wide as the window allows and the navigation folds away on narrow screens,
# where alabaster's fixed 940 px body cut wide diagrams and tables off.
html_theme = "furo"
html_title = f"wsstream {release}"
html_static_path = ["_static"]
html_css_files = ["wsstream.css"]


# Pages that other people write (docs/classic.md, docs/conformance.md,
# docs/performance.md) may not exist yet in a given checkout. The index's
# reference toctree lists them through the line "OPTIONAL-PAGES", replaced here
# by those present, so that -W never fails on a missing one.
OPTIONAL_PAGES = ["classic", "conformance", "performance"]


def _optional_pages(app: object, docname: str, source: list[str]) -> None:
    if docname != "index":
        return
    here = os.path.dirname(os.path.abspath(__file__))
    present = [p for p in OPTIONAL_PAGES if os.path.exists(os.path.join(here, p + ".md"))]
    source[0] = source[0].replace("OPTIONAL-PAGES", "\n".join(present))


def _reread_index(app: object, env: object, added: set[str], changed: set[str],
                  removed: set[str]) -> list[str]:
    # The index's toctree depends on which optional pages exist: read it again
    # on every build, so that a page that appeared (or went) is picked up.
    return ["index"]


def setup(app: object) -> None:
    app.connect("source-read", _optional_pages)  # type: ignore[attr-defined]
    app.connect("env-get-outdated", _reread_index)  # type: ignore[attr-defined]
