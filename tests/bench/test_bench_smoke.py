"""CI smoke test of the benchmark script: `benchmarks/run.py --quick` on the tiny model runs end to
end and writes its JSON and PNG; no timing thresholds (timings are noisy on shared machines), but
the numbers it compares must agree (engine = reference, circuitdsl.patching = transformer-lens)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_on_tiny(tmp_path):
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--model", "tiny", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    jsons = list(tmp_path.glob("tiny-quick-*.json"))
    pngs = list(tmp_path.glob("tiny-quick-*.png"))
    assert len(jsons) == 1 and len(pngs) == 1
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left behind
    res = json.loads(jsons[0].read_text())
    f = res["floor"]
    assert f["S_mean"] >= 1 and f["forward_s"] > 0 and f["engine_s"] > 0
    assert res["reference"]["equal"] and res["reference"]["max_rel_diff"] < 1e-5
    assert res["peer"]["error"] is None and res["peer"]["equal"]
    assert [r["n"] for r in res["scaling"]["by_n"]] == [32, 64]
    assert [r["heads"] for r in res["scaling"]["by_size"]] == [1, 2, 4]
    assert all("peak_rss" in r and r["peak_rss"] > 0 for r in res["memory"])
    assert res["profile"] and all(r["tottime_s"] >= 0 for r in res["profile"])
    # the printed table names the headline figures
    assert "floor = S x forward" in p.stdout and "speedup" in p.stdout
