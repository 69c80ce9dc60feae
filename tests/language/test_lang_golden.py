"""Golden tests: for every diagnostic code, `golden/<CODE>.circuit` renders (full) as `<CODE>.expected`.

Regenerate after an intended change with `CIRCUITDSL_UPDATE_GOLDEN=1 pytest tests/language/test_lang_golden.py`
(then read the diff).
"""

from __future__ import annotations

import os
import re

import pytest

from circuitdsl.compiler import CODES, compile_file

from .conftest import GOLDEN

_NAME = re.compile(r"^([EWN][0-9]{3})\.circuit$")
GOLDEN_CODES = sorted(m.group(1) for p in GOLDEN.iterdir() if (m := _NAME.match(p.name)))


def test_every_code_has_a_golden_and_every_golden_a_code():
    assert set(GOLDEN_CODES) == set(CODES)


@pytest.mark.parametrize("code", GOLDEN_CODES)
def test_golden(code, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    result = compile_file(f"{code}.circuit")
    codes = [d.code for d in result.diagnostics]
    assert code in codes, f"{code}.circuit produced {codes}"
    assert (result.hypothesis is None) == any(c.startswith("E") for c in codes)
    text = result.render("full") + "\n"
    expected = GOLDEN / f"{code}.expected"
    if os.environ.get("CIRCUITDSL_UPDATE_GOLDEN"):
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")
