"""Summarise an Autobahn|Testsuite JSON report.

    python conformance/autobahn/summary.py conformance/autobahn/reports/server --side server
    python conformance/autobahn/summary.py reports/client --side client --details

Reads ``index.json`` in the given report directory, prints the number of
cases by behaviour (OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED),
lists the FAILED and NON-STRICT cases (``--details``: with the suite's
expectation and what it observed, from each case's own report) and any
closing-handshake verdict other than OK/INFORMATIONAL. Exit status 1 if some
case FAILED and is not in the allow-list (allowlist.json, per side).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ALLOWLIST = HERE / "allowlist.json"
BEHAVIOURS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", case_id))


def load(report_dir: Path, agent: str | None = None) -> dict[str, dict[str, Any]]:
    """``{case id: index entry}`` for one agent of ``report_dir/index.json``."""
    index = json.loads((Path(report_dir) / "index.json").read_text())
    if agent is None:
        if len(index) != 1:
            raise ValueError(f"several agents in the report, pick one: {sorted(index)}")
        (agent,) = index
    return dict(sorted(index[agent].items(), key=lambda item: case_key(item[0])))


def load_allowlist(side: str, path: Path = ALLOWLIST) -> dict[str, str]:
    """``{case id: reason}`` allowed to FAIL on this side."""
    data = json.loads(Path(path).read_text())
    entries: dict[str, str] = data.get(side, {})
    return entries


def count(results: dict[str, dict[str, Any]]) -> Counter[str]:
    return Counter(entry["behavior"] for entry in results.values())


def failed(results: dict[str, dict[str, Any]]) -> list[str]:
    return [case for case, entry in results.items() if entry["behavior"] == "FAILED"]


def case_details(report_dir: Path, entry: dict[str, Any]) -> str:
    report = json.loads((Path(report_dir) / entry["reportfile"]).read_text())
    lines = [
        f"      description: {' '.join(report.get('description', '').split())[:300]}",
        f"      expectation: {' '.join(report.get('expectation', '').split())[:300]}",
        f"      result:      {report.get('result')}",
        f"      close:       {report.get('behaviorClose')}: {report.get('resultClose')}",
        f"      expected:    {json.dumps(report.get('expected'))[:300]}",
        f"      received:    {json.dumps(report.get('received'))[:300]}",
        f"      codes:       local {report.get('localCloseCode')}, "
        f"remote {report.get('remoteCloseCode')}, closed by "
        f"{'wstest' if report.get('closedByMe') else 'testee'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path, help="directory holding index.json")
    parser.add_argument(
        "--side", choices=["client", "server"], required=True, help="which allow-list entries apply"
    )
    parser.add_argument("--agent", default=None)
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    parser.add_argument(
        "--details",
        action="store_true",
        help="print expected vs observed for FAILED and NON-STRICT cases",
    )
    args = parser.parse_args(argv)

    results = load(args.report_dir, args.agent)
    allowed = load_allowlist(args.side, args.allowlist)
    counts = count(results)
    total_ms = sum(entry.get("duration", 0) for entry in results.values())
    print(
        f"== wsstream as {args.side}: {len(results)} cases "
        f"({total_ms / 1000:.1f}s of case time, per the suite)"
    )
    for behaviour in BEHAVIOURS + sorted(set(counts) - set(BEHAVIOURS)):
        print(f"  {behaviour:<14}{counts.get(behaviour, 0):>5}")

    for behaviour in ("FAILED", "NON-STRICT"):
        cases = [c for c, e in results.items() if e["behavior"] == behaviour]
        if cases:
            print(f"  {behaviour} cases:")
            for case in cases:
                entry = results[case]
                note = f"  [allowed: {allowed[case]}]" if case in allowed else ""
                print(
                    f"    {case}  (close: {entry['behaviorClose']}, "
                    f"remote code {entry['remoteCloseCode']}){note}"
                )
                if args.details:
                    print(case_details(args.report_dir, entry))
    odd_close = [
        c
        for c, e in results.items()
        if e["behaviorClose"] not in ("OK", "INFORMATIONAL")
        and e["behavior"] not in ("FAILED", "UNIMPLEMENTED")
    ]
    if odd_close:
        print(
            "  closing handshake not OK (case itself passed): "
            + ", ".join(f"{c} {results[c]['behaviorClose']}" for c in odd_close)
        )

    unexpected = [case for case in failed(results) if case not in allowed]
    if unexpected:
        print(f"  FAILED and not allow-listed: {', '.join(unexpected)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
