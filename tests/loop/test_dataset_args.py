"""Every command that takes a dataset on its command line accepts a registered generator and a JSONL
file alike, with the diagnostics of a `.circuit` file's dataset statement (issue 17, item 1: `patch`
and `discover` refused JSONL files with E401)."""

from __future__ import annotations

import json

import pytest

from circuitdsl.cli import main


def test_patch_takes_jsonl_files_and_matches_the_python_sweep(induction_files, tmp_path, capsys):
    clean_f, corrupt_f, clean, corrupt = induction_files
    out = tmp_path / "sweep.json"
    rc = main(
        [
            "patch",
            "--model",
            "tiny",
            "--dataset",
            str(clean_f),
            "--corrupt",
            str(corrupt_f),
            "--positions",
            "end",
            "--json",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    got = json.loads(out.read_text())
    from circuitdsl import patching

    model = patching.boot_model("tiny")
    ref = patching.head_sweep(model, clean, corrupt, positions=["end"], dataset="x", corruption="y").to_json()
    assert got["n"] == 8 and got["clean"] == pytest.approx(ref["clean"], abs=1e-9)
    assert got["corrupt"] == pytest.approx(ref["corrupt"], abs=1e-9)
    assert [r["node"] for r in got["ranked"]] == [r["node"] for r in ref["ranked"]]
    # a generator still works, on a model without a tokenizer too (induction makes token ids)
    assert (
        main(
            [
                "patch",
                "--model",
                "tiny",
                "--dataset",
                "induction",
                "--corrupt",
                str(corrupt_f),
                "--arg",
                "length=8",
                "--n",
                "8",
            ]
        )
        == 2
    )  # --arg does not apply to a file
    assert "E403" in capsys.readouterr().err


def test_n_takes_the_first_rows_of_a_file(induction_files, tmp_path, capsys):
    clean_f, corrupt_f, *_ = induction_files
    out = tmp_path / "s.json"
    assert (
        main(
            [
                "patch",
                "--model",
                "tiny",
                "--dataset",
                str(clean_f),
                "--corrupt",
                str(corrupt_f),
                "--n",
                "3",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["n"] == 3
    # `tiny` is attention-only: an MLP sweep is a usage error, not an internal one
    assert main(["patch", "--model", "tiny", "--dataset", str(clean_f), "--corrupt", str(corrupt_f), "--mlps"]) == 2
    assert "has no MLPs" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["patch", "discover", "measure"])
def test_unknown_generator_says_files_are_accepted(command, tmp_path, capsys):
    extra = ["-o", str(tmp_path / "d.circuit")] if command == "discover" else []
    rc = main([command, "--model", "tiny", "--dataset", "sucess", "--corrupt", "induction", *extra])
    e = capsys.readouterr().err
    assert rc == 2 and "E402" in e and "JSONL" in e and "Traceback" not in e


@pytest.mark.parametrize("command", ["patch", "discover", "measure"])
def test_missing_file_and_bad_row_point_at_the_file(command, tmp_path, capsys, induction_files):
    clean_f, corrupt_f, *_ = induction_files
    extra = ["-o", str(tmp_path / "d.circuit")] if command == "discover" else []
    rc = main(
        [command, "--model", "tiny", "--dataset", str(tmp_path / "nope.jsonl"), "--corrupt", str(corrupt_f), *extra]
    )
    e = capsys.readouterr().err
    assert rc == 2 and "E404" in e and "nope.jsonl" in e
    bad = tmp_path / "bad.jsonl"
    lines = clean_f.read_text().splitlines()
    lines[2] = lines[2][:-1]  # cut the closing brace of line 3
    bad.write_text("\n".join(lines) + "\n")
    rc = main([command, "--model", "tiny", "--dataset", str(bad), "--corrupt", str(corrupt_f), *extra])
    e = capsys.readouterr().err
    assert rc == 2 and "E420" in e and f"{bad}:3:" in e and "Traceback" not in e


def test_corruption_must_pair_row_by_row(induction_files, tmp_path, capsys):
    clean_f, corrupt_f, clean, corrupt = induction_files
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(corrupt_f.read_text().splitlines()[:5]) + "\n")
    assert main(["patch", "--model", "tiny", "--dataset", str(clean_f), "--corrupt", str(short)]) == 2
    e = capsys.readouterr().err
    assert "E428" in e and "5 examples" in e and "8" in e
    rows = [json.loads(x) for x in corrupt_f.read_text().splitlines()]
    rows[3]["tokens"] = rows[3]["tokens"] + [1]
    longer = tmp_path / "longer.jsonl"
    longer.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["patch", "--model", "tiny", "--dataset", str(clean_f), "--corrupt", str(longer)]) == 2
    e = capsys.readouterr().err
    assert "E428" in e and "row 3" in e and f"{longer}:4:" in e


def test_shared_loader_is_one_function(induction_files):
    """The helper other commands (attribute) call: generators and files, the same Dataset type."""
    from circuitdsl.datasets.source import dataset_from_arg

    clean_f, _, clean, _ = induction_files
    a = dataset_from_arg(str(clean_f), None)
    b = dataset_from_arg("induction", None, n=8, seed=0, args={"length": 8})
    assert [e.tokens for e in a] == [e.tokens for e in b] == [e.tokens for e in clean]
    assert [e.answers for e in a] == [e.answers for e in b]
