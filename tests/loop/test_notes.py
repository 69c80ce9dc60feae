"""The grouped-query N301 note is shown once per file, and CIRCUITDSL_QUIET=N301 silences it (issue 17,
item 10); errors are never silenced, and `lint --format json` keeps every diagnostic."""

from __future__ import annotations

import json

from circuitdsl.cli import main
from circuitdsl.compiler import compile_file

SRC = """model smollm2-135m
dataset d = ioi(n = 4)
metric logit_diff
edge embed -> a3.0.k
edge embed -> a5.1.v
edge embed -> a7.2.k
edge a3.0 -> out
edge a5.1 -> out
edge a7.2 -> out
"""


def test_note_once_per_file_then_silenced(tmp_path, capsys, monkeypatch):
    f = tmp_path / "g.circuit"
    f.write_text(SRC)
    n301 = [d for d in compile_file(f).diagnostics if d.code == "N301"]
    assert len(n301) == 3  # the compiler's own count: one per k/v edge
    monkeypatch.delenv("CIRCUITDSL_QUIET", raising=False)
    assert main(["lint", str(f)]) == 0
    e = capsys.readouterr().err
    assert e.count("note[N301]") == 1 and "2 more N301 notes in this file" in e and "CIRCUITDSL_QUIET=N301" in e
    monkeypatch.setenv("CIRCUITDSL_QUIET", "N301")
    assert main(["lint", str(f)]) == 0
    assert "N301" not in capsys.readouterr().err
    assert main(["lint", "--format", "json", str(f)]) == 0
    assert sum(d["code"] == "N301" for d in json.loads(capsys.readouterr().out)) == 3


def test_errors_are_never_silenced(tmp_path, capsys, monkeypatch):
    f = tmp_path / "bad.circuit"
    f.write_text(SRC.replace("a7.2 -> out", "a7.99 -> out"))
    monkeypatch.setenv("CIRCUITDSL_QUIET", "notes,E201,E203")
    assert main(["lint", str(f)]) == 2
    e = capsys.readouterr().err
    assert "error[" in e and "note[" not in e
