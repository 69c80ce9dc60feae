"""The cases issue 11 names, checked on the reference's own draws and against the engine per example:

* one sender into q and k of one receiver is two treeified nodes with independent draws;
* copies reached through identity-feature nodes have their own draws (their paths include the
  identity steps);
* in a GQA model, an edge into a query head's k port reaches every claimed query head of its group,
  each copy with its own path;
* the tiny-model hypothesis of the issue (previous-token heads `depends on nothing` feeding identity
  induction heads through q, k and v).

Each engine comparison also checks that the per-edge rule matters on its hypothesis (the shared-draw
approximation gives other numbers), so the comparison can fail.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import refcases as C
import refscrub

from circuitdsl.engine.scrub import Engine
from circuitdsl.ir import IDENTITY, Ablation, AblationKind, Claim, EdgeId, Feature, FeatureKind, Port, TreeRule

pytestmark = pytest.mark.engine


def e(s, r, p=Port.IN):
    return EdgeId(s, r, p)


def qkv(s, r):
    return [EdgeId(s, r, p) for p in (Port.Q, Port.K, Port.V)]


def traced(b, dsets, h, **kw):
    r = refscrub.ReferenceScrub(b.model, dsets, "D", trace=[], **kw)
    return r.scrub(h), r.trace


def class_paths(trace, node_name):
    return sorted({p for kind, p, _, _ in trace if kind == "class" and p.rsplit("/", 1)[-1].split(">")[0] == node_name})


def engine_logits(b, dsets, h):
    return Engine(b, dsets, "D", h.ablation, seed=h.seed, batch_size=5).scrub(h).logits


def assert_engine_agrees_and_rule_matters(b, dsets, h):
    """engine == reference under the exact rule, and under the opt-in shared-draw rule; the two differ."""
    ref = refscrub.reference_scrub(b.model, dsets, "D", h)
    hs = dataclasses.replace(h, treeify=TreeRule(shared_draws=True))
    shared = refscrub.reference_scrub(b.model, dsets, "D", hs)
    assert max(C.per_example_rel(shared, ref)) > 1e-3, "the hypothesis does not tell the treeification rules apart"
    ok, msg = C.agree(engine_logits(b, dsets, h), ref)
    assert ok, f"engine != reference: {msg}\n{C.describe(h)}"
    ok, msg = C.agree(engine_logits(b, dsets, hs), shared)
    assert ok, f"engine != reference under `set treeify.shared_draws = true`: {msg}\n{C.describe(h)}"


def by_hand(seed, root_id, path, kind, pool_ids):
    """The appendix's draw, spelled out: blake2b, 8 bytes, big-endian, modulo the id-ordered pool."""
    digest = hashlib.blake2b(f"{seed}\x1f{root_id}\x1f{path}\x1f{kind}".encode(), digest_size=8).digest()
    pool = sorted(pool_ids)
    return pool[int.from_bytes(digest, "big") % len(pool)]


@pytest.mark.parametrize("ablation", [Ablation(), Ablation(AblationKind.ZERO)], ids=str)
def test_one_sender_into_q_and_k_is_two_copies_with_independent_draws(ref_model, ablation):
    d, b = ref_model("native_attn")
    dsets = C.make_datasets(n=12)
    a00, a10 = C.head(0, 0), C.head(1, 0)
    h = C.build(
        d,
        [Claim(a00, C.NOTHING)],
        [*qkv(C.EMBED, a00), e(a00, a10, Port.Q), e(a00, a10, Port.K), e(C.EMBED, a10, Port.V), e(a10, C.OUT)],
        ablation=ablation,
        seed=7,
    )
    _, trace = traced(b, dsets, h)
    assert class_paths(trace, "a0.0") == ["out/a1.0>in/a0.0>k", "out/a1.0>in/a0.0>q"]
    drawn = {p: ids for kind, p, ids, _ in trace if kind == "class" and p.endswith(("a0.0>q", "a0.0>k"))}
    q, k = drawn["out/a1.0>in/a0.0>q"], drawn["out/a1.0>in/a0.0>k"]
    assert sum(a != c for a, c in zip(q, k)) >= 3  # independent draws from classes of 6: mostly different
    # the draws are exactly the appendix's, recomputed here by hand for every root
    D = dsets["D"]
    for kind, path, ids, roots in trace:
        if kind != "class":
            continue
        for rid, got in zip(roots, ids):
            x = D.examples[D.index_of(rid)]
            layout_ids = [y.id for y in D.examples if len(y.tokens) == len(x.tokens)]  # `nothing`: the whole layout
            assert got == by_hand(7, rid, path, "class", layout_ids)
    assert_engine_agrees_and_rule_matters(b, dsets, h)


def test_copies_through_identity_nodes_have_their_own_draws(ref_model):
    d, b = ref_model("native_attn")
    dsets = C.make_datasets(n=12)
    a00, a10, a20 = C.head(0, 0), C.head(1, 0), C.head(2, 0)
    edges = [
        *qkv(C.EMBED, a00),
        e(a00, a10, Port.Q),
        e(a00, a20, Port.Q),
        e(a10, a20, Port.K),
        e(C.EMBED, a10, Port.V),
        e(C.EMBED, a20, Port.V),
        e(a10, C.OUT),
        e(a20, C.OUT),
    ]
    h = C.build(d, [Claim(a00, C.PARITY), Claim(a10, IDENTITY), Claim(a20, IDENTITY)], edges, seed=3)
    _, trace = traced(b, dsets, h)
    assert class_paths(trace, "a0.0") == ["out/a1.0>in/a0.0>q", "out/a2.0>in/a0.0>q", "out/a2.0>in/a1.0>k/a0.0>q"]
    # under the shared-draw approximation the three copies are one node, drawn once at `a0.0`
    _, shared = traced(b, dsets, h, shared_draws=True)
    assert class_paths(shared, "a0.0") == ["a0.0"]
    assert_engine_agrees_and_rule_matters(b, dsets, h)


def test_gqa_k_edge_reaches_every_claimed_query_head_of_the_group(ref_model):
    d, b = ref_model("hf_llama")
    assert b.shape.n_kv_heads == 2 and b.shape.n_heads == 4  # heads 0, 1 share key/value head 0
    dsets = C.make_datasets(n=12)
    a00, a10, a11 = C.head(0, 0), C.head(1, 0), C.head(1, 1)
    edges = [
        *qkv(C.EMBED, a00),
        e(a00, a10, Port.K),
        e(C.EMBED, a10, Port.Q),
        e(C.EMBED, a11, Port.Q),
        e(a10, C.OUT),
        e(a11, C.OUT),
    ]
    h = C.build(d, [Claim(a00, C.FIRST)], edges, seed=11)
    _, trace = traced(b, dsets, h)
    assert class_paths(trace, "a0.0") == ["out/a1.0>in/a0.0>k", "out/a1.1>in/a0.0>k"]
    assert refscrub.claimed_edges_into(h, a11, b.shape) == [(C.EMBED, Port.Q), (a00, Port.K)]
    assert_engine_agrees_and_rule_matters(b, dsets, h)


# ---- the tiny-model case of issue 11 ---------------------------------------------------------------------------
TINY_CASE = """model tiny
dataset ind = induction(n = {n}, seed = 0, length = 16, layouts = 4)
metric loss
ablate unclaimed by resample
group prev_token = a0.0, a0.2
group induction = a1.0, a1.1, a1.2, a1.3
node embed depends on input
node pos depends on input
node prev_token depends on nothing
node induction depends on input
edge pos -> prev_token.q, prev_token.k
edge embed -> prev_token.v
edge prev_token -> induction
edge embed -> induction.q, induction.v
edge induction -> out
set seed = {seed}
"""
"""Issue 11's measurement: the previous-token heads claimed `depends on nothing` feed the identity
induction heads through q, k and v (the rest as in hypotheses/induction_refined.circuit). Measured
there at n = 512 over seeds 0-5: recovered 0.252 +- 0.003 with the shared-draw rule, 0.271 +- 0.003
per edge."""


def tiny_case(n: int, seed: int):
    from circuitdsl.backends.loader import load_backend
    from circuitdsl.engine import data as data_mod
    from circuitdsl.testing import compile_hypothesis

    h = compile_hypothesis(TINY_CASE.format(n=n, seed=seed))
    b = load_backend(h.model)
    return h, b, data_mod.materialise_all(h, b.tokenizer)


def reference_recovered(h, b, dsets, **kw) -> float:
    """recovered with loss as m, every number from the reference (the baseline is the empty hypothesis)."""
    from circuitdsl.ir import make_graph

    ds = dsets[h.main_dataset]
    empty = dataclasses.replace(h, claims=(Claim(C.OUT),), edges=(), graph=make_graph((Claim(C.OUT),), ()))
    model = refscrub.metric("loss", refscrub.model_logits(b.model, ds), ds.examples)
    scrubbed = refscrub.metric("loss", refscrub.reference_scrub(b.model, dsets, h.main_dataset, h, **kw), ds.examples)
    base = refscrub.metric("loss", refscrub.reference_scrub(b.model, dsets, h.main_dataset, empty, **kw), ds.examples)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return refscrub.recovered(mean(model), mean(scrubbed), mean(base))


def test_tiny_induction_case_engine_equals_reference():
    h, b, dsets = tiny_case(32, 0)
    assert refscrub.count_treeified(h) == 1 + 4 * (
        1 + 2 * 3 * (1 + 3) + 2
    )  # out; 4 heads, each: 6 copies of a0.x (4 nodes) + embed q, v
    ref = {}
    for rule in (TreeRule(), TreeRule(shared_draws=True)):
        hr = dataclasses.replace(h, treeify=rule)
        ref[rule.shared_draws] = refscrub.reference_scrub(b.model, dsets, h.main_dataset, hr)
        fast = Engine(b, dsets, h.main_dataset, h.ablation, seed=h.seed, batch_size=16).scrub(hr).logits
        ok, msg = C.agree(fast, ref[rule.shared_draws])
        assert ok, f"{rule}: {msg}"
    assert max(C.per_example_rel(ref[True], ref[False])) > 1e-3


@pytest.mark.slow
def test_tiny_induction_case_recovers_the_per_edge_value():
    """Six seeds at n = 512 (about a minute): the per-edge value of issue 11, and the shared-draw one."""
    per_edge, shared = [], []
    for seed in range(6):
        h, b, dsets = tiny_case(512, seed)
        per_edge.append(reference_recovered(h, b, dsets))
        shared.append(reference_recovered(h, b, dsets, shared_draws=True))
    pe, sh = sum(per_edge) / 6, sum(shared) / 6
    assert pe == pytest.approx(0.271, abs=0.01), per_edge
    assert sh == pytest.approx(0.252, abs=0.01), shared


def test_feature_functions_come_from_the_file_beside_each_circuit(tmp_path):
    """Two folders each hold a `feats.py` with a function of one name: each hypothesis uses its own."""
    from circuitdsl.backends.loader import load_backend
    from circuitdsl.engine import data as data_mod
    from circuitdsl.testing import compile_hypothesis

    source = TINY_CASE.format(n=24, seed=1).replace(
        "node prev_token depends on nothing", "node prev_token depends on feats:f"
    )
    got = {}
    for folder, body in (("a", "dict(e.fields)['A'] % 2"), ("b", "dict(e.fields)['A'] % 3")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "feats.py").write_text(f"def f(e):\n    return {body}\n")
        (tmp_path / folder / "h.circuit").write_text(source)
        h = compile_hypothesis(tmp_path / folder / "h.circuit")
        b = load_backend(h.model)
        dsets = data_mod.materialise_all(h, b.tokenizer)
        got[folder] = refscrub.reference_scrub(b.model, dsets, h.main_dataset, h)
        fast = Engine(b, dsets, h.main_dataset, h.ablation, seed=h.seed, batch_size=8).scrub(h).logits
        ok, msg = C.agree(fast, got[folder])
        assert ok, f"{folder}: {msg}"
    assert max(C.per_example_rel(got["a"], got["b"])) > 1e-3


def test_float_feature_values_meet_after_rounding(ref_model):
    """`field score` holds 3 * 0.1 on some examples and 0.3 on others: one class (SEMANTICS: floats
    compared after rounding to 1e-9), so the draws of the engine and the reference agree only if both round."""
    d, b = ref_model("native_mlp")
    dsets = C.make_datasets(n=24)
    D = dsets["D"]
    raw = [dict(x.fields)["score"] for x in D.examples]
    assert 3 * 0.1 in raw and 0.3 in raw
    score = Feature(FeatureKind.FIELD, ("score",))
    a00, m0 = C.head(0, 0), C.mlp(0)
    h = C.build(
        d,
        [Claim(a00, score), Claim(m0, score)],
        [*qkv(C.EMBED, a00), e(a00, m0), e(C.EMBED, m0), e(m0, C.OUT), e(a00, C.OUT)],
        seed=4,
    )
    _, trace = traced(b, dsets, h)
    drew_other_spelling = 0
    for kind, _, ids, roots in trace:
        for rid, got in zip(roots, ids):
            x, y = dict(D.examples[D.index_of(rid)].fields)["score"], dict(D.examples[D.index_of(got)].fields)["score"]
            assert round(x, 9) == round(y, 9) or kind == "other"
            drew_other_spelling += kind == "class" and x != y
    assert drew_other_spelling > 0  # the rounding changed some draws
    ok, msg = C.agree(engine_logits(b, dsets, h), refscrub.reference_scrub(b.model, dsets, "D", h))
    assert ok, f"engine != reference: {msg}\n{C.describe(h)}"


@pytest.mark.parametrize("fn", ["tiny_float32", "dict_value"])
def test_function_values_of_other_types_make_one_class_in_the_reference(fn):
    values = {
        refscrub.feature_value(Feature(FeatureKind.FUNCTION, (f"ref_features:{fn}",)), x)
        for x in C.make_datasets(n=12)["D"].examples
    }
    assert len(values) == 1


@pytest.mark.parametrize("fn", ["tiny_float32", "dict_value"])
def test_function_values_of_other_types_engine_equals_reference(ref_model, fn):
    d, b = ref_model("native_attn")
    dsets = C.make_datasets(n=12)
    a00 = C.head(0, 0)
    h = C.build(
        d, [Claim(a00, Feature(FeatureKind.FUNCTION, (f"ref_features:{fn}",)))], [*qkv(C.EMBED, a00), e(a00, C.OUT)]
    )
    ok, msg = C.agree(engine_logits(b, dsets, h), refscrub.reference_scrub(b.model, dsets, "D", h))
    assert ok, f"engine != reference: {msg}\n{C.describe(h)}"
