"""The connection options are typed: mypy --strict refuses a wrong type or
an unknown option name at every endpoint (issue 12: serve(**options) and
WebSocket(**options) typed so that mypy checks callers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

BAD = Path(__file__).parent / "typing" / "bad_options.py"


def test_mypy_refuses_each_bad_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(BAD)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    found = {
        int(match[1]): match[2]
        for match in re.finditer(r"bad_options\.py:(\d+): error: .*\[([a-z-]+)\]", result.stdout)
    }
    expected = {
        number: re.search(r"# E: ([a-z-]+)", line)[1]  # type: ignore[index]
        for number, line in enumerate(BAD.read_text().splitlines(), 1)
        if "# E:" in line and "type: ignore" not in line
    }
    assert expected, "nothing to check"
    for number, code in expected.items():
        assert found.get(number) == code, (number, result.stdout)
