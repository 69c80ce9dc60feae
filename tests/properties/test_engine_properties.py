"""Engine properties checked with hypothesis on the tiny model (SEMANTICS.md sections 3-5):
the identity hypothesis recovers exactly 1 under any ablation, the empty hypothesis exactly 0, results
do not depend on dataset order or chunk size, seeds reproduce, coarsening a feature never raises
agreement, and every variant of a hypothesis scrubs."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuitdsl import strategies as S
from circuitdsl.backends.loader import load_backend
from circuitdsl.datasets.core import Dataset
from circuitdsl.engine import data as data_mod
from circuitdsl.engine import derive, metrics, scores
from circuitdsl.engine.check import run_check
from circuitdsl.engine.draws import CLASS, FeatureIndex, pick
from circuitdsl.engine.scrub import Engine
from circuitdsl.ir import Ablation, AblationKind
from circuitdsl.testing import compile_hypothesis

FEW = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))

SOURCE = """model tiny
dataset ind = induction(n = 40, seed = 0, length = 10, layouts = 2)
metric loss
group prev_token = a0.0, a0.2
group induction = a1.0, a1.1, a1.2, a1.3
node embed depends on input
node pos depends on input
node prev_token depends on (token at A1, field wrong)
node induction depends on (field B, field A)
edge pos -> prev_token.q, prev_token.k
edge embed -> prev_token.v
edge prev_token -> induction.k
edge embed -> induction.q, induction.v
edge induction -> out
"""


@functools.lru_cache(maxsize=1)
def setup():
    h = compile_hypothesis(SOURCE)
    backend = load_backend(h.model)
    datasets = data_mod.materialise_all(h, backend.tokenizer)
    return h, backend, datasets


def scrub_metric(h, datasets, *, seed=0, batch_size=None, ablation=None):
    """Per-example (m(model), m(scrubbed)) keyed by example id."""
    _, backend, _ = setup()
    ds = datasets[h.main_dataset]
    with torch.no_grad():
        eng = Engine(backend, datasets, h.main_dataset, ablation or h.ablation, seed=seed, batch_size=batch_size)
        clean = eng.clean_logits()
        out = eng.scrub(h)
    mm = metrics.metric_values(h.metric.kind, clean, ds.examples, clean)
    ms = metrics.metric_values(h.metric.kind, out.logits, ds.examples, clean)
    return {e.id: (a, b) for e, a, b in zip(ds.examples, mm, ms)}, clean, out.logits


ABLATIONS = st.sampled_from([Ablation(AblationKind.RESAMPLE), Ablation(AblationKind.MEAN), Ablation(AblationKind.ZERO)])


@FEW
@given(ablation=ABLATIONS, seed=st.integers(0, 1000))
def test_identity_hypothesis_reproduces_the_model_and_recovers_1(ablation, seed):
    h, _, datasets = setup()
    full = dataclasses.replace(derive.full(h), ablation=ablation)
    _, clean, logits = scrub_metric(full, datasets, seed=seed, ablation=ablation)
    for c, s in zip(clean, logits):
        torch.testing.assert_close(s, c, rtol=1e-5, atol=1e-5)
    ds = datasets[h.main_dataset]
    with torch.no_grad():
        eng = Engine(setup()[1], datasets, h.main_dataset, ablation, seed=seed)
        base = eng.scrub(derive.empty(full)).logits
    mm = metrics.metric_values(h.metric.kind, clean, ds.examples, clean)
    ms = metrics.metric_values(h.metric.kind, logits, ds.examples, clean)
    mb = metrics.metric_values(h.metric.kind, base, ds.examples, clean)
    rec = scores.recovered(mm, ms, mb, resamples=50, seed=seed)
    assert rec.value == pytest.approx(1.0, abs=1e-5)


@FEW
@given(seed=st.integers(0, 1000))
def test_empty_hypothesis_recovers_exactly_0(seed):
    h, _, _ = setup()
    r = run_check(derive.empty(h), seed=seed, completeness=False)
    assert r.f_scrubbed == r.f_baseline
    assert r.recovered.value == 0.0


@FEW
@given(order=st.randoms(use_true_random=False), batch_size=st.integers(1, 48))
def test_results_do_not_depend_on_dataset_order_or_chunk_size(order, batch_size):
    h, _, datasets = setup()
    ref, _, _ = scrub_metric(h, datasets)
    ds = datasets[h.main_dataset]
    ex = list(ds.examples)
    order.shuffle(ex)
    shuffled = {**datasets, ds.name: Dataset(ds.name, tuple(ex), ds.field_names, ds.position_names)}
    got, _, _ = scrub_metric(h, shuffled, batch_size=batch_size)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-5)


@FEW
@given(seed=st.integers(0, 10**6))
def test_seeds_reproduce(seed):
    h, _, datasets = setup()
    a, _, _ = scrub_metric(h, datasets, seed=seed)
    b, _, _ = scrub_metric(h, datasets, seed=seed)
    assert a == b


def _agreement(h, ds, seed):
    """(sampled fraction of class draws equal to x, expected fraction) over claims with a non-identity
    feature, drawn as the engine draws a claim's class at depth one (path = the node's name)."""
    fidx = FeatureIndex(ds)
    hits = exp = draws = 0
    for c in h.claims:
        if c.feature.kind.value in ("input",) or c.node.kind.value == "out":
            continue
        for i, e in enumerate(ds.examples):
            cls = fidx.cls(c.feature, i)
            hits += pick(cls, seed, e.id, c.node.name, CLASS) == i
            exp += 1 / len(cls)
            draws += 1
    return hits / draws, exp / draws, draws


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), seed=st.integers(0, 1000))
def test_coarsening_a_feature_never_raises_agreement(data, seed):
    h, _, datasets = setup()
    ds = datasets[h.main_dataset]
    coarse = data.draw(S.coarsen_feature(h))
    fidx = FeatureIndex(ds)
    changed = [
        (c, coarse.claim(c.node))
        for c in h.claims
        if coarse.claim(c.node) and coarse.claim(c.node).feature != c.feature
    ]
    assert len(changed) == 1
    fine, crude = changed[0][0].feature, changed[0][1].feature
    # the coarse class of x contains x's fine class: no example can become "more agreed" with x
    for i in range(len(ds)):
        assert set(fidx.cls(fine, i)) <= set(fidx.cls(crude, i))
    f_hits, f_exp, n = _agreement(h, ds, seed)
    c_hits, c_exp, _ = _agreement(coarse, ds, seed)
    assert c_exp <= f_exp + 1e-12
    # the sampled fraction, with a binomial allowance for the independent hashes of the two draws
    sd = np.sqrt(max(f_exp * (1 - f_exp), c_exp * (1 - c_exp), 1e-3) / n)
    assert c_hits <= f_hits + 4 * sd


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_variant_scrubs_to_finite_logits(data):
    h, _, datasets = setup()
    v = data.draw(S.variants(h))
    got, _, logits = scrub_metric(v, datasets)
    assert all(torch.isfinite(t).all() for t in logits)
    assert all(np.isfinite(b) for _, b in got.values())
