"""Forward-pass equivalents per check phase (issue 16): `cost["forward_equiv.<phase>"]` in the JSON."""

from __future__ import annotations

import json

import pytest

from circuitdsl.compiler import compile_source

pytestmark = pytest.mark.engine

SRC = """model tiny
dataset ind = induction(n = 24, seed = 0, length = 16, layouts = 2)
metric loss
ablate unclaimed by resample
group prev = a0.0, a0.2
node prev depends on nothing
edge embed, pos -> prev
edge prev -> a1.0.q, a1.0.k, a1.0.v
edge embed -> a1.0
edge a1.0 -> out
set bootstrap = 20
set completeness.sizes = [1]
set completeness.samples = 1
set completeness.greedy = 0
"""


def test_each_phase_reports_its_forward_pass_equivalents_and_removals_share_the_clean_runs():
    import torch

    from circuitdsl.backends.loader import load_backend
    from circuitdsl.engine import data as data_mod
    from circuitdsl.engine import derive, search
    from circuitdsl.engine.check import run_check
    from circuitdsl.engine.scrub import Engine

    h = compile_source(SRC, "x.circuit").hypothesis
    r = run_check(h)
    cost = json.loads(json.dumps(r.to_json()))["cost"]
    fe = {k.split(".", 1)[1]: v for k, v in cost.items() if k.startswith("forward_equiv.")}
    assert {"clean_run", "scrub", "minimality", "completeness"} <= set(fe)
    # resample within the dataset: the clean runs are one forward pass over the N examples
    assert fe["clean_run"] == pytest.approx(1.0)
    assert all(fe[k] > 0 for k in ("scrub", "minimality", "completeness"))
    # minimality scrubs each removal in the check's engine (clean runs computed once, rows shared):
    # never more work than a fresh engine per removal, whose own clean runs are excluded here
    backend = load_backend(h.model)
    ds = data_mod.materialise_all(h, backend.tokenizer)
    alone = 0.0
    with torch.no_grad():
        for v in search.removable_nodes(h):
            with Engine(backend, ds, h.main_dataset, h.ablation, seed=h.seed) as e:
                before = e.forward_equiv()
                e.scrub(derive.remove(h, {v}))
                alone += e.forward_equiv() - before
    assert 0 < fe["minimality"] <= alone + 1e-3  # the JSON rounds to 3 decimals
