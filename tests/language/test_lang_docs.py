"""Every ```circuit block in the docs and the README is valid: a complete file (one with a `model`
line) compiles without errors, a fragment parses. A reference whose examples do not lint teaches
the wrong language."""

import re
from pathlib import Path

import pytest

from circuitdsl.compiler import compile_source
from circuitdsl.diagnostics import Severity
from circuitdsl.parser import parse_source

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```circuit\n(.*?)```", re.S)


def _blocks():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 2
            yield pytest.param(doc, m.group(1), id=f"{doc.name}:{line}")


@pytest.mark.parametrize(("doc", "source"), list(_blocks()))
def test_documented_example_is_valid(doc, source):
    if not re.search(r"^model ", source, re.M):
        parse_source(source, str(doc))  # a fragment: a syntax error raises CircuitError
        return
    result = compile_source(source, str(doc))
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
    assert not errors, result.render("concise")
    assert result.hypothesis is not None


def test_the_docs_have_examples():
    assert len(list(_blocks())) >= 3
