"""`circuitdsl patch` and `circuitdsl discover`: usage errors, discover from saved sweeps, and the
heatmap; the end-to-end runs on SmolLM2 are marked slow."""

from __future__ import annotations

import json
import math

import pytest

from circuitdsl.cli import main


def _sweep(kind, ranked, receivers=()):
    return {
        "kind": kind, "metric": "logit_diff", "dataset": "ioi", "corruption": "ioi_abc", "n": 16,
        "positions": ["END"], "receivers": list(receivers), "clean": 4.9, "corrupt": 0.6,
        "ranked": [{"node": n, "patched": 0.0, "effect": e} for n, e in ranked],
    }  # fmt: skip


SWEEPS = {
    "heads_end": _sweep("heads", [("a23.3", 0.6), ("a20.0", 0.4), ("a29.0", -0.1), ("a19.2", 0.2), ("a5.5", 0.01)]),
    "path_movers_q": _sweep("path", [("a20.0", 0.3), ("a17.4", 0.2), ("m18", 0.5), ("a9.9", 0.02)], ["a23.3.q"]),
    "path_inhibition_kv": _sweep("path", [("a8.1", 0.15), ("a14.3", 0.1), ("a17.4", 0.3)], ["a17.4.k"]),
}


def test_discover_from_json_writes_a_circuit(tmp_path, capsys):
    src = tmp_path / "sweeps.json"
    src.write_text(json.dumps(SWEEPS))
    out = tmp_path / "draft.circuit"
    rc = main(["discover", "--from-json", str(src), "-o", str(out), "--n", "16", "--roles", "--no-backbone"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    text = out.read_text()
    assert "group movers = a23.3, a20.0, a19.2" in text  # ranked by effect, negatives and small ones dropped
    assert "group inhibition = a17.4" in text  # movers and MLPs are not reused
    assert "group duplicate = a8.1, a14.3" in text
    assert "model smollm2-135m" in text and "dataset clean = ioi(n = 16, seed = 0)" in text
    assert "ablate unclaimed by paired corrupt" in text
    assert "edge inhibition -> movers.q" in text and "edge duplicate -> inhibition.k, inhibition.v" in text
    assert "# expect recovered >= 0.8" in text
    assert "movers: a23.3 +0.60" in cap.out and "wrote" in cap.err


def test_discover_never_overwrites_without_force(tmp_path, capsys):
    src = tmp_path / "sweeps.json"
    src.write_text(json.dumps(SWEEPS))
    out = tmp_path / "draft.circuit"
    out.write_text("# mine\n")
    rc = main(["discover", "--from-json", str(src), "-o", str(out)])
    cap = capsys.readouterr()
    assert rc == 2 and out.read_text() == "# mine\n"
    assert "E904" in cap.err and "--force" in cap.err and cap.out == ""
    assert main(["discover", "--from-json", str(src), "-o", str(out), "--force"]) == 0
    assert "group movers" in out.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_discover_bad_json_is_a_diagnostic(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert main(["discover", "--from-json", str(bad), "-o", str(tmp_path / "o.circuit")]) == 2
    assert "E905" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, code",
    [
        (["patch", "--dataset", "nope"], "E402"),  # the codes of a .circuit file's dataset statement
        (["patch", "--n", "0"], "E902"),
        (["patch", "--path-to", "a3.1.z"], "E903"),
        (["patch", "--arg", "bogus=1"], "E403"),
        (["patch", "--arg", "oops"], "E901"),
    ],
)
def test_patch_usage_errors(argv, code, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == 2
    assert code in cap.err and cap.out == ""


def test_heatmap_png(tmp_path):
    pytest.importorskip("matplotlib")
    from circuitdsl.cli.patch import heatmap_png
    from circuitdsl.patching import SweepResult

    nan = math.nan
    r = SweepResult("path", "logit_diff", "ioi", "ioi_abc", 8, ("END",), ("a2.1.q",), 4.0, 1.0,
                    ((3.0, 4.0), (2.0, 4.5), (nan, nan)), 1.0, (4.0, 3.5, nan))  # fmt: skip
    png = heatmap_png(r)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert r.ranked()[0][0] == "a1.0" and r.ranked()[0][2] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_patch_cli_end_to_end_on_smollm2(tmp_path, capsys):
    png, js = tmp_path / "h.png", tmp_path / "h.json"
    rc = main(["patch", "--n", "4", "--positions", "END", "--layers", "23", "-o", str(png), "--json", str(js)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "a23.3" in cap.out and "Patching head outputs at END" in cap.out
    data = json.loads(js.read_text())
    assert data["clean"] > 2 and data["corrupt"] < data["clean"]
    assert png.read_bytes()[:4] == b"\x89PNG"
