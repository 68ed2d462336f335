"""Run the Autobahn|Testsuite against wsstream, as server, as client, or both.

    python conformance/autobahn/run.py                    # both sides, fast subset (CI)
    python conformance/autobahn/run.py --cases all        # all 517 cases
    python conformance/autobahn/run.py --side server      # one side only

* server side: a wsstream echo server (echo_server.py) is tested by
  ``wstest -m fuzzingclient``; reports in ``reports/server/``.
* client side: ``wstest -m fuzzingserver`` tests a wsstream client
  (client.py); reports in ``reports/client/``.

setup.sh creates the Python 2.7 virtualenv holding wstest the first time.
wstest is started through launch_wstest.py, which binds it to 127.0.0.1.
Every process started here is killed before this script exits, whatever
happens. At the end the summary (summary.py) is printed and the exit status
is 0 only if no case FAILED outside allowlist.json; it is 3 when Python 2.7
is missing, 2 when the run itself broke (timeout, crash).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SETUP = HERE / "setup.sh"
LAUNCHER = HERE / "launch_wstest.py"
DEFAULT_REPORTS = HERE / "reports"
AGENT = "wsstream"

EXIT_NO_PYTHON27 = 3
EXIT_BROKEN = 2

sys.path.insert(0, str(HERE))
import summary  # noqa: E402


class RunError(Exception):
    """The run itself broke (not a verdict on wsstream)."""


class NoPython27(RunError):
    pass


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGKILL if this script dies before reaping it."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


@contextlib.contextmanager
def process(
    args: list[str], *, log: Path | None = None, pipe: bool = False, cwd: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Start a process; on exit from the block, stop it (TERM, then KILL).

    Output goes to ``log`` (stdout and stderr), or stdout to a pipe with
    ``pipe``, else it is inherited.
    """
    out = open(log, "w") if log else None  # noqa: SIM115
    preexec = _set_pdeathsig if sys.platform.startswith("linux") else None
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE if pipe else out,
        stderr=subprocess.STDOUT if out else None,
        text=True,
        preexec_fn=preexec,
        cwd=cwd,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if out:
            out.close()


def setup() -> str:
    """Run setup.sh; return the path of the Python 2.7 that has wstest."""
    result = subprocess.run(["bash", str(SETUP)], stdout=subprocess.PIPE, text=True)
    if result.returncode == EXIT_NO_PYTHON27:
        raise NoPython27("Python 2.7 not found: the Autobahn|Testsuite cannot run (see setup.sh)")
    if result.returncode != 0:
        raise RunError(f"setup.sh failed with status {result.returncode}")
    return result.stdout.strip().splitlines()[-1]


def load_spec(name: str, cases: str | list[str]) -> dict[str, object]:
    """The spec template; ``cases``: "fast" (as in the file), "all", or patterns."""
    spec: dict[str, object] = json.loads((HERE / name).read_text())
    spec.pop("_comment", None)
    if cases == "all":
        spec["cases"] = ["*"]
    elif isinstance(cases, list):
        spec["cases"] = cases
    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"wstest exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RunError(f"wstest did not listen on 127.0.0.1:{port} within {timeout}s")


def run_server_side(python2: str, cases: str | list[str], outdir: Path, timeout: float) -> float:
    """wsstream echo server vs ``wstest -m fuzzingclient``; returns seconds."""
    outdir.mkdir(parents=True, exist_ok=True)
    echo_cmd = [sys.executable, "-u", str(HERE / "echo_server.py"), "--port", "0"]
    with process(echo_cmd, pipe=True) as echo:
        assert echo.stdout is not None
        line = echo.stdout.readline()
        if not line.startswith("listening on "):
            raise RunError(f"echo server did not start: {line!r}")
        port = int(line.rsplit(":", 1)[1])
        spec = load_spec("fuzzingclient.json", cases)
        spec["outdir"] = str(outdir)
        spec["servers"] = [{"agent": AGENT, "url": f"ws://127.0.0.1:{port}"}]
        spec_path = outdir / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2))
        print(
            f"autobahn: server side: wstest -m fuzzingclient -> ws://127.0.0.1:{port} "
            f"(log: {outdir / 'wstest.log'})",
            flush=True,
        )
        started = time.monotonic()
        cmd = [python2, str(LAUNCHER), "-m", "fuzzingclient", "-s", str(spec_path)]
        with process(cmd, log=outdir / "wstest.log", cwd=outdir) as wstest:
            try:
                status = wstest.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RunError(f"server side: wstest did not finish within {timeout}s") from None
        elapsed = time.monotonic() - started
        if echo.poll() is not None:
            raise RunError(f"server side: the echo server died (status {echo.returncode})")
    if status != 0:
        raise RunError(f"server side: wstest exited with status {status}")
    return elapsed


def run_client_side(python2: str, cases: str | list[str], outdir: Path, timeout: float) -> float:
    """``wstest -m fuzzingserver`` vs the wsstream client; returns seconds."""
    outdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    spec = load_spec("fuzzingserver.json", cases)
    spec["outdir"] = str(outdir)
    spec["url"] = f"ws://127.0.0.1:{port}"
    spec_path = outdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    cmd = [python2, str(LAUNCHER), "-m", "fuzzingserver", "-s", str(spec_path), "--webport", "0"]
    with process(cmd, log=outdir / "wstest.log", cwd=outdir) as wstest:
        wait_for_port(port, wstest, timeout=60)
        print(
            f"autobahn: client side: wsstream client -> wstest -m fuzzingserver on "
            f"ws://127.0.0.1:{port} (log: {outdir / 'wstest.log'})",
            flush=True,
        )
        started = time.monotonic()
        client_cmd = [
            sys.executable,
            str(HERE / "client.py"),
            f"ws://127.0.0.1:{port}",
            "--agent",
            AGENT,
        ]
        with process(client_cmd, log=outdir / "client.log") as client:
            try:
                status = client.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RunError(
                    f"client side: the client did not finish within {timeout}s"
                ) from None
        elapsed = time.monotonic() - started
    if status != 0:
        log = (outdir / "client.log").read_text()[-2000:]
        raise RunError(f"client side: client.py exited with status {status}:\n{log}")
    if not (outdir / "index.json").exists():
        raise RunError("client side: wstest wrote no index.json")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["client", "server", "both"], default="both")
    parser.add_argument(
        "--cases",
        choices=["fast", "all"],
        default="fast",
        help="fast: the CI subset (353 cases); all: 517 cases",
    )
    parser.add_argument("--reports", type=Path, default=DEFAULT_REPORTS)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds allowed for one side (default: 900 for fast, 3600 for all)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="PATTERN",
        help="run only these cases (wstest patterns, e.g. 7.1.5 '12.2.*'), for debugging",
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 900.0 if args.cases == "fast" else 3600.0

    # A TERM (e.g. from a CI runner) unwinds through the finally blocks above.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    sides = ["server", "client"] if args.side == "both" else [args.side]
    reports: Path = args.reports.resolve()
    timings: dict[str, float] = {}
    try:
        python2 = setup()
        for side in sides:
            outdir = reports / side
            # Stale results must never pass for fresh ones.
            for stale in ("index.json", "spec.json"):
                (outdir / stale).unlink(missing_ok=True)
            runner = run_server_side if side == "server" else run_client_side
            timings[side] = runner(python2, args.only or args.cases, outdir, args.timeout)
            print(f"autobahn: {side} side done in {timings[side]:.1f}s", flush=True)
    except NoPython27 as exc:
        print(f"autobahn: {exc}", file=sys.stderr)
        return EXIT_NO_PYTHON27
    except RunError as exc:
        print(f"autobahn: run broken: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    (reports / "timings.json").write_text(
        json.dumps({"cases": args.only or args.cases, "seconds": timings}, indent=2) + "\n"
    )
    status = 0
    for side in sides:
        print()
        status |= summary.main([str(reports / side), "--side", side])
    return status


if __name__ == "__main__":
    sys.exit(main())
