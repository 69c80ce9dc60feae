"""Issue 11, point 5, end to end: completeness sizes beyond the removable nodes are clamped and said, and an
`expect incompleteness` whose search evaluated only the empty K does not pass."""

from __future__ import annotations

import json
import random

import _models
import pytest

from circuitdsl.cli import main

pytestmark = pytest.mark.engine

CIRCUIT = """model "model"
dataset D = "d.jsonl"
metric logprob
edge embed -> a0.1 -> out
{settings}
set bootstrap = 20
expect incompleteness <= 100
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("compl")
    _models.random_native(d / "model", n_layers=1, n_heads=2, d_model=16, d_head=8, d_vocab=8, seed=4)
    rng = random.Random(1)
    rows = [{"tokens": [rng.randrange(8) for _ in range(4)], "answer": rng.randrange(8)} for _ in range(8)]
    (d / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def _run(folder, name, settings, capsys):
    p = folder / f"{name}.circuit"
    p.write_text(CIRCUIT.format(settings=settings))
    rc = main(["check", "--format", "json", str(p)])
    out, err = capsys.readouterr()
    return rc, json.loads(out)[0], err


def test_sizes_beyond_the_removable_nodes_are_clamped(folder, capsys):
    rc, r, err = _run(
        folder,
        "clamped",
        "set completeness.sizes = [5]\nset completeness.samples = 3\nset completeness.greedy = 0",
        capsys,
    )
    c = r["completeness"]
    assert c["sizes"] == [5] and c["searched_sizes"] == [2]
    assert [t["nodes"] for t in c["trials"] if t["nodes"]] == [["embed", "a0.1"]]
    assert any("size 5" in n for n in r["notes"])
    assert rc == 0 and r["expects"][0]["passed"]


def test_only_the_empty_k_does_not_pass(folder, capsys):
    rc, r, err = _run(folder, "empty", "set completeness.samples = 0\nset completeness.greedy = 0", capsys)
    x = r["expects"][0]
    assert rc == 1 and not x["passed"] and x["value"] is None and "only the empty K" in x["reason"]
