"""The end-to-end real-model check that CI runs by default: `circuitdsl check` on a SmolLM2-135M zoo
hypothesis, through the CLI, from the wheel's GGUF (converted once to the cache if needed) to the
JSON report. The other real-model tests are marked `slow`; this one is the representative subset."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HYPOTHESIS = ROOT / "hypotheses" / "pronoun_smollm2.circuit"

pytestmark = pytest.mark.real


def test_pronoun_hypothesis_on_smollm2_end_to_end(tmp_path):
    pytest.importorskip("transformer_lens")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "circuitdsl.cli", "check", str(HYPOTHESIS), "--format", "json", "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr[-4000:]}"
    (printed,) = json.loads(proc.stdout)
    (written,) = json.loads(out.read_text())
    assert printed == written
    r = printed
    assert r["model"] == "smollm2-135m" and r["n"] == 32 and r["ablation"] == "paired flip"
    # the model really does the behaviour, and the paired name flip really reverses it
    assert r["f_model"] > 2.0 and r["f_baseline"] < -2.0
    # recovered is the ratio of the raw numbers printed beside it, inside its own interval
    rec = r["recovered"]
    ratio = (r["f_scrubbed"] - r["f_baseline"]) / (r["f_model"] - r["f_baseline"])
    assert math.isclose(rec["value"], ratio, rel_tol=1e-9)
    assert rec["lower"] <= rec["value"] <= rec["upper"]
    # every expect clause of the file was evaluated, and the check's exit code agrees with them
    assert [e["score"] for e in r["expects"]] == ["recovered", "recovered.lower"]
    assert all(e["passed"] for e in r["expects"]) and r["passed"]
    # per-example rows carry the raw metric of every example
    assert len(r["examples"]) == 32
    assert all(math.isfinite(row["m_model"]) and math.isfinite(row["m_scrubbed"]) for row in r["examples"])
    assert r["completeness"]["worst"] is not None
