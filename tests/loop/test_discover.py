"""`discover` for any behaviour (issue 17, item 5): one head sweep at the answer position, roles only
with --roles, the backbone kept by default and said, the datasets written as the user gave them,
and a file that lints."""

from __future__ import annotations

import json

from circuitdsl.cli import main
from circuitdsl.compiler import compile_file


def test_discover_on_jsonl_files_writes_a_file_that_lints(induction_files, tmp_path, capsys):
    clean_f, corrupt_f, *_ = induction_files
    out = tmp_path / "drafts" / "d.circuit"
    out.parent.mkdir()
    sweeps = tmp_path / "sweeps.json"
    rc = main(
        [
            "discover",
            "--model",
            "tiny",
            "--dataset",
            str(clean_f),
            "--corrupt",
            str(corrupt_f),
            "-o",
            str(out),
            "--threshold",
            "0.01",
            "--json",
            str(sweeps),
        ]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    text = out.read_text()
    assert 'dataset clean = "../clean.jsonl"' in text and 'dataset corrupt = "../corrupt.jsonl"' in text
    assert "group backbone = embed, pos" in text and "wire backbone, heads, out" in text
    assert "node heads at end depends on input" in text  # the dataset names `end`
    assert "movers" not in text and "inhibition" not in text
    assert "backbone: embed, pos (kept" in cap.out and "lint:" in cap.err
    h = compile_file(out).hypothesis
    assert h is not None and {d.name for d in h.datasets} == {"clean", "corrupt"}
    # the heads chosen are the sweep's top heads by effect
    ranked = [
        r
        for r in json.loads(sweeps.read_text())["heads_end"]["ranked"]
        if r["effect"] is not None and r["effect"] >= 0.01
    ]
    top = [r["node"] for r in sorted(ranked, key=lambda r: -r["effect"])[:4]]
    assert f"group heads = {', '.join(top)}" in text


def test_generator_arguments_are_written_back(tmp_path, capsys):
    out = tmp_path / "g.circuit"
    rc = main(
        [
            "discover",
            "--model",
            "tiny",
            "--dataset",
            "induction",
            "--corrupt",
            "induction",
            "--seed",
            "3",
            "--n",
            "6",
            "--arg",
            "length=8",
            "-o",
            str(out),
            "--no-backbone",
        ]
    )
    # the same generator twice is a corruption equal to the clean run: nothing to find, but a valid file
    assert rc == 0, capsys.readouterr().err
    text = out.read_text()
    assert "dataset clean = induction(n = 6, seed = 3, length = 8)" in text
    assert "group backbone" not in text and "edge embed -> out" in text
    assert compile_file(out).hypothesis is not None


def test_smollm2_backbone_from_saved_sweeps_lints(tmp_path, capsys):
    sweeps = {
        "end": "END",
        "heads_end": {
            "kind": "heads",
            "metric": "logit_diff",
            "dataset": "succ",
            "corruption": "succ_shift",
            "n": 8,
            "positions": ["END"],
            "receivers": [],
            "clean": 3.0,
            "corrupt": -1.0,
            "ranked": [
                {"node": "a20.1", "patched": 1.0, "effect": 0.5},
                {"node": "a3.0", "patched": 2.9, "effect": 0.02},
            ],
        },
    }
    src = tmp_path / "s.json"
    src.write_text(json.dumps(sweeps))
    data = tmp_path / "succ.jsonl"
    data.write_text('{"text": "a b", "answer": " c", "wrong": " d", "positions": {"END": -1}}\n')
    out = tmp_path / "s.circuit"
    assert (
        main(
            [
                "discover",
                "--from-json",
                str(src),
                "--model",
                "smollm2-135m",
                "--dataset",
                str(data),
                "--corrupt",
                str(data),
                "-o",
                str(out),
            ]
        )
        == 0
    ), capsys.readouterr().err
    text = out.read_text()
    assert "group heads = a20.1\n" in text and "group backbone = embed, m0..m29" in text
    assert "set treeify.shared_draws = true" in text
    assert compile_file(out).hypothesis is not None


def test_discover_from_a_patch_head_sweep(induction_files, tmp_path, capsys):
    """`patch --json` then `discover --from-json`: the same heads as discover's own sweep, no second sweep."""
    clean_f, corrupt_f, *_ = induction_files
    sweep = tmp_path / "heads.json"
    common = ["--model", "tiny", "--dataset", str(clean_f), "--corrupt", str(corrupt_f)]
    assert main(["patch", *common, "--positions", "end", "--json", str(sweep)]) == 0
    a, b = tmp_path / "a.circuit", tmp_path / "b.circuit"
    assert main(["discover", *common, "--from-json", str(sweep), "-o", str(a), "--threshold", "0.01"]) == 0
    assert main(["discover", *common, "-o", str(b), "--threshold", "0.01"]) == 0
    capsys.readouterr()
    assert a.read_text() == b.read_text() and "node heads at end" in a.read_text()
