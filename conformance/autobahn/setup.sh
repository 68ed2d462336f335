#!/usr/bin/env bash
# Create (idempotently) a Python 2.7 virtualenv holding the Autobahn|Testsuite
# (wstest). The suite is Python 2 software; the image ships a Python 2.7 under
# pyenv but without venv/virtualenv, so a Python 3 "tools" venv provides a
# virtualenv old enough (<20.22) to still create Python 2.7 environments.
#
#   conformance/autobahn/setup.sh          # prints the path of wstest's python
#
# Environment:
#   AUTOBAHN_VENV   where to put the environments (default: <repo>/.autobahn-venv)
#   PYTHON27        the Python 2.7 interpreter (default: searched, see below)
#   PYTHON3         the Python 3 used for the tools venv (default: python3)
#
# Exit status 3 (with a message on stderr) when no Python 2.7 is found.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv_root="${AUTOBAHN_VENV:-$repo/.autobahn-venv}"
suite_version="25.10.1"

is_python27() {
    [[ -n "$1" && -x "$1" ]] \
        && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null
}

find_python27() {
    if [[ -n "${PYTHON27:-}" ]]; then
        is_python27 "$PYTHON27" && echo "$PYTHON27"
        return
    fi
    local candidate
    for candidate in \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 \
        "$(command -v python2.7 || true)" \
        "$(command -v python2 || true)"; do
        if is_python27 "$candidate"; then echo "$candidate"; return 0; fi
    done
    return 1
}

py27_env="$venv_root/py27"
stamp="$py27_env/.autobahntestsuite-$suite_version"
if [[ -f "$stamp" && -x "$py27_env/bin/wstest" ]]; then
    echo "$py27_env/bin/python"
    exit 0
fi

if ! python27="$(find_python27)"; then
    echo "autobahn: Python 2.7 not found${PYTHON27:+ (PYTHON27=$PYTHON27 is not one)}; the Autobahn|Testsuite needs it." >&2
    echo "autobahn: install one (e.g. 'pyenv install 2.7.18') or set PYTHON27=/path/to/python2.7." >&2
    exit 3
fi

mkdir -p "$venv_root"
tools="$venv_root/tools"
if [[ ! -x "$tools/bin/virtualenv" ]]; then
    echo "autobahn: creating tools venv in $tools" >&2
    "${PYTHON3:-python3}" -m venv "$tools"
    "$tools/bin/python" -m pip install -q "virtualenv<20.22" >&2
fi
if [[ ! -x "$py27_env/bin/python" ]]; then
    echo "autobahn: creating Python 2.7 virtualenv in $py27_env with $python27" >&2
    "$tools/bin/virtualenv" -q -p "$python27" "$py27_env" >&2
fi
echo "autobahn: installing autobahntestsuite==$suite_version (about a minute)" >&2
"$py27_env/bin/python" -m pip install -q --disable-pip-version-check \
    "autobahntestsuite==$suite_version" >&2
"$py27_env/bin/wstest" --help >/dev/null 2>&1 || {
    echo "autobahn: wstest does not run in $py27_env" >&2; exit 1; }
touch "$stamp"
echo "$py27_env/bin/python"
