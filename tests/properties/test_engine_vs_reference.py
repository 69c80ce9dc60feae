"""The engine equals the independent reference (tests/reference/refscrub.py) per example, to 1e-5
relative, on random small hypotheses (SEMANTICS.md section 3 and the appendix of docs/SEMANTICS.md).

Generated: claimed heads and MLPs, claimed edges into random ports (q, k, v, in), features (input,
nothing, fields, a float field, token at a position of one or two indices, tuples, functions),
position restrictions, every ablation and random seeds, on four tiny models: a native attention-only
model, a native model with MLPs, a GQA Llama and a GPT-2 (both through TransformerBridge); and
compiled `.circuit` sources with groups on the embedded `tiny` model and its induction data.

The default run is small (derandomized, about 40 examples). A long, randomized run:
    CIRCUITDSL_REFERENCE_LONG=1 pytest tests/properties/test_engine_vs_reference.py
(25 times the examples; `CIRCUITDSL_REFERENCE_LONG=N` multiplies by N instead). With
CIRCUITDSL_REFERENCE_NO_SHRINK=1 a failure is reported as found, without shrinking it (each shrink step
runs the engine and the reference).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, Phase, assume, given, reject, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))

import refcases as C  # noqa: E402  (tests/reference)
import refmodels  # noqa: E402
import refscrub  # noqa: E402

from circuitdsl.backends.loader import load_backend  # noqa: E402
from circuitdsl.engine.scrub import Engine  # noqa: E402
from circuitdsl.ir import Claim, EdgeId, NodeKind, Port, TreeRule  # noqa: E402

pytestmark = pytest.mark.engine

_LONG = os.environ.get("CIRCUITDSL_REFERENCE_LONG", "").strip()
SCALE = (25 if _LONG in ("1", "true", "yes") else int(_LONG)) if _LONG not in ("", "0") else 0
MAX_TREE = 60 if not SCALE else 200
"""Treeified nodes (before sharing) a generated hypothesis may have: the reference runs two forward
passes per treeified node."""


def profile(n: int):
    kw = {}
    if os.environ.get("CIRCUITDSL_REFERENCE_NO_SHRINK"):  # report the first failure at once (mutation checks)
        kw["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(
        max_examples=n * SCALE if SCALE else n,
        deadline=None,
        derandomize=not SCALE,
        suppress_health_check=list(HealthCheck),
        **kw,
    )


@pytest.fixture(scope="session")
def ref_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("refmodels")

    @functools.cache
    def get(name):
        d = refmodels.model_dir(name, root)
        h0 = C.build(d, [], [])
        return d, load_backend(h0.model)

    return get


@functools.cache
def datasets():
    return C.make_datasets(n=12)


@st.composite
def ir_hypotheses(draw, model_dir, shape):
    inner = [C.head(L, H) for L in range(shape.n_layers) for H in range(shape.n_heads)]
    inner += [C.mlp(L) for L in range(shape.n_layers)] if shape.has_mlp else []
    chosen = draw(st.lists(st.sampled_from(inner), min_size=1, max_size=4, unique=True))
    if shape.n_kv_heads < shape.n_heads and draw(st.booleans()):
        # another query head of a chosen head's key/value group: its k/v edges reach both
        hs = [v for v in chosen if v.kind is NodeKind.HEAD]
        if hs:
            v = hs[0]
            size = shape.n_heads // shape.n_kv_heads
            sib = C.head(v.layer, (v.head // size) * size + (v.head + 1) % size)
            chosen = list(dict.fromkeys(chosen + [sib]))
    emb = [C.EMBED] + ([C.POS] if shape.pos_embed == "learned" else [])
    nodes = sorted(chosen)
    edges = []
    for r in nodes + [C.OUT]:
        up = set(refscrub.upstream(r, shape))
        cands = [s for s in emb + nodes if s in up]
        picked = draw(
            st.lists(st.sampled_from(cands), unique=True, min_size=1 if r is C.OUT else 0, max_size=min(3, len(cands)))
        )
        ports = (Port.Q, Port.K, Port.V) if r.kind is NodeKind.HEAD else (Port.IN,)
        for s in picked:
            for p in draw(st.lists(st.sampled_from(ports), min_size=1, unique=True)):
                edges.append(EdgeId(s, r, p))
    used = {v for e in edges for v in (e.sender, e.receiver)} | set(nodes)
    claims = [
        Claim(v, draw(st.sampled_from(C.FEATURES)), draw(st.sampled_from(C.POSITIONS)))
        for v in emb + nodes
        if v in used
    ]
    ablation = draw(st.sampled_from(C.ABLATIONS))
    seed = draw(st.integers(0, 2**16))
    h = C.build(model_dir, claims, edges, ablation=ablation, seed=seed)
    assume(refscrub.count_treeified(h) <= MAX_TREE)
    if draw(st.integers(0, 4)) == 0:  # now and then the opt-in shared-draw approximation
        h = dataclasses.replace(h, treeify=TreeRule(shared_draws=True))
    return h


_CLEAN: dict = {}


def clean_logits(b, ds):
    """The model's own logits (the scale per_example_rel compares at), once per model and dataset."""
    key = (id(b.model), ds.name, len(ds))
    if key not in _CLEAN:
        _CLEAN[key] = refscrub.model_logits(b.model, ds)
    return _CLEAN[key]


def _check(b, dsets, h, batch_size):
    fast = Engine(b, dsets, h.main_dataset, h.ablation, seed=h.seed, batch_size=batch_size).scrub(h).logits
    ref = refscrub.reference_scrub(b.model, dsets, h.main_dataset, h)
    ok, msg = C.agree(fast, ref, scale=clean_logits(b, dsets[h.main_dataset]))
    assert ok, f"engine != reference: {msg}\n{C.describe(h)}"


@pytest.mark.parametrize("which", refmodels.MODELS)
@profile(8)
@given(data=st.data())
def test_engine_equals_reference_on_random_hypotheses(which, data, ref_model):
    d, b = ref_model(which)
    h = data.draw(ir_hypotheses(d, b.shape), label="hypothesis")
    _check(b, datasets(), h, data.draw(st.sampled_from([4, 64]), label="batch_size"))


# ---- compiled sources with groups, on the embedded tiny model --------------------------------------------
TINY_FEATURES = (
    "input",
    "nothing",
    "token at A1",
    "field B",
    "(token at A1, field wrong)",
    "field A",
    "(nothing, token at end)",
)
TINY_ABLATIONS = ("resample", "resample from alt", "paired alt", "mean", "mean over alt", "zero")


@st.composite
def tiny_sources(draw):
    pick = functools.partial(draw)
    pt = pick(st.lists(st.sampled_from(["a0.0", "a0.1", "a0.2", "a0.3"]), min_size=1, max_size=2, unique=True))
    ih = pick(st.lists(st.sampled_from(["a1.0", "a1.1", "a1.2", "a1.3"]), min_size=1, max_size=3, unique=True))

    def ports():
        return pick(st.lists(st.sampled_from(["q", "k", "v"]), min_size=1, max_size=3, unique=True))

    def into(group):
        return ", ".join(f"{group}.{p}" for p in ports())

    lines = [
        "model tiny",
        "dataset ind = induction(n = 16, seed = 3, length = 8, layouts = 2, vocab = 6)",
        "dataset alt = induction(n = 16, seed = 4, length = 8, layouts = 2, vocab = 6)",
        "metric loss",
        f"ablate unclaimed by {pick(st.sampled_from(TINY_ABLATIONS))}",
        f"group pt = {', '.join(pt)}",
        f"group ih = {', '.join(ih)}",
        f"node embed depends on {pick(st.sampled_from(('input', 'input', 'nothing', 'token at A2')))}",
        f"node pt{pick(st.sampled_from(('', '', ' at B1', ' at A1, B1', ' at prev, end')))} depends on {pick(st.sampled_from(TINY_FEATURES))}",
        f"node ih{pick(st.sampled_from(('', '', ' at end')))} depends on {pick(st.sampled_from(TINY_FEATURES))}",
        f"edge pt -> {into('ih')}",
        f"edge embed -> {into('ih')}",
        f"edge pos -> {into('pt')}",
        "edge ih -> out",
    ]
    if pick(st.booleans()):
        lines.append(f"edge embed -> {into('pt')}")
    if pick(st.booleans()):
        lines.append("edge pt -> out")
    if pick(st.booleans()):
        lines.append("edge embed, pos -> out")
    lines.append(f"set seed = {pick(st.integers(0, 2**16))}")
    return "\n".join(lines) + "\n"


@functools.cache
def _tiny(source_datasets: str):
    from circuitdsl.engine import data as data_mod
    from circuitdsl.testing import compile_hypothesis

    h = compile_hypothesis(source_datasets)
    b = load_backend(h.model)
    return b, data_mod.materialise_all(h, b.tokenizer)


@profile(8)
@given(source=tiny_sources())
def test_engine_equals_reference_on_compiled_tiny_sources(source):
    from circuitdsl.testing import InvalidHypothesis, compile_hypothesis

    try:
        h = compile_hypothesis(source)
    except InvalidHypothesis:
        reject()  # e.g. a q edge between positions that never meet
    assume(refscrub.count_treeified(h) <= MAX_TREE)
    b, dsets = _tiny("\n".join(source.splitlines()[:3]) + "\n")
    fast = Engine(b, dsets, h.main_dataset, h.ablation, seed=h.seed, batch_size=8).scrub(h).logits
    ref = refscrub.reference_scrub(b.model, dsets, h.main_dataset, h)
    ok, msg = C.agree(fast, ref, scale=clean_logits(b, dsets[h.main_dataset]))
    assert ok, f"engine != reference: {msg}\n{source}"
