"""The benchmark harness runs end to end for wsstream: tiny counts, real
processes on loopback, every echoed message checked by the client. No timing
is asserted: this only keeps ``python -m benchmarks`` working."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import run  # noqa: E402


def test_harness_wsstream_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenarios = "echo-32B-text,echo-1MiB-bin,rtt-32B,stream-1MiB,idle-1000"
    code = run.main([
        "--quick", "--impls", "wsstream", "--pairing", "self", "--scenarios", scenarios,
        "--scale", "0.05", "--timeout", "20", "--no-plot", "--out", str(tmp_path),
    ])
    data = json.loads((tmp_path / "results.json").read_text())
    results = data["results"]
    assert {r["scenario"] for r in results} == set(scenarios.split(","))
    for r in results:
        assert r["impl"] == "wsstream"
        assert r["result"]["ok"], r  # the client compared every echo with what it sent
        assert r["result"]["value"] > 0
    assert code == 0
    md = (tmp_path / "results.md").read_text()
    assert "| echo 32 B text, 64 in flight | msgs/s |" in md
    assert "idle memory, 50 conns" in md
    assert "CPU per message, µs, client / server" in md
    for r in results:
        if r["scenario"] != "idle-1000":
            assert r["result"]["client_cpu_us"] > 0 and r["result"]["server_cpu_us"] >= 0
    # A run compared with itself: the same values, nothing worse.
    text, worse = run.compare(tmp_path / "results.json", tmp_path / "results.json")
    assert "| self | echo 32 B text, 64 in flight |" in text
    assert worse == []


def test_harness_flood_and_default_idle_scenarios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One sample of connect-and-echo under a flood of empty continuations
    # (a second or so against today's engine), 50 connections offering
    # deflate with one message each way; the raw floors are skipped there.
    scenarios = "flood-cont,idle-deflate-msg-1000"
    code = run.main([
        "--quick", "--impls", "wsstream,raw-trio", "--pairing", "shared,self",
        "--scenarios", scenarios, "--scale", "0.05", "--timeout", "20", "--no-plot",
        "--out", str(tmp_path),
    ])
    data = json.loads((tmp_path / "results.json").read_text())
    results = data["results"]
    # Client-free scenarios run once (shared pairing), for wsstream only.
    assert sorted((r["scenario"], r["impl"], r["pairing"]) for r in results) == [
        ("flood-cont", "wsstream", "shared"),
        ("idle-deflate-msg-1000", "wsstream", "shared"),
    ]
    for r in results:
        assert r["result"]["ok"], r
        assert r["result"]["value"] > 0
    flood = next(r["result"] for r in results if r["scenario"] == "flood-cont")
    assert flood["flood"]["frames"] > 0  # the flooder did flood
    assert code == 0
    md = (tmp_path / "results.md").read_text()
    assert "| connect+echo, flood of empty continuation frames | ms median (p99) |" in md
    assert "| ↳ flood frames the server took in | k frames/s |" in md
    assert "idle memory, 50 conns, defaults, deflate offered, 1 msg each way" in md


def test_deflate_settings_measures_ratio_cpu_and_memory() -> None:
    # The workloads are fixed by their seeds, and a measurement of one
    # candidate gives a ratio, timings and the contexts' memory.
    from benchmarks import deflate_settings as ds

    chat = ds.chat_events(200)
    assert chat == ds.chat_events(200)
    assert all(20 <= len(event) <= 300 for event in chat)
    result = ds.measure(ds.Candidate(), "chat", chat, repeat=1)
    assert 0.2 < result.ratio < 0.8
    assert result.compress_us > 0 and result.decompress_us > 0
    nct = ds.measure(ds.Candidate(takeover=False), "chat", chat, repeat=1)
    assert nct.ratio > result.ratio  # no context: small messages shrink less
    compressor, decompressor = ds.context_memory(12, 2, chat[0])
    assert 20 * 1024 < compressor < 30 * 1024
    assert 8 * 1024 < decompressor < 16 * 1024


def test_pipeline_wsstream_both_ways(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The stream-processing pipeline: a source server, the pipeline process
    # and a sink server that checks every message's added field and order.
    # The slow sink (a reader that stops reading) exercises backpressure.
    from benchmarks import pipeline

    if importlib.util.find_spec("picows") is None:
        # The source and the fast sink are picows servers (the same for every
        # library measured): it is in the "bench" extra, and .ci/run installs it.
        message = "picows is not installed: pip install -e '.[bench]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    code = pipeline.main([
        "--quick", "--impls", "wsstream,wsstream-batch", "--scale", "0.05",
        "--timeout", "30", "--out", str(tmp_path),
    ])
    data = json.loads((tmp_path / "pipeline.json").read_text())
    results = data["results"]
    assert {(r["scenario"], r["impl"]) for r in results} == {
        (sc.name, impl) for sc in pipeline.SCENARIOS for impl in ("wsstream", "wsstream-batch")
    }
    for r in results:
        assert r["result"]["ok"], r  # the sink answered "done": all there, in order
        assert r["result"]["value"] > 0 and r["result"]["peak_rss_kib"] > 0
    assert code == 0
    md = (tmp_path / "pipeline.md").read_text()
    assert "| JSON ~200 B, fast sink |" in md
