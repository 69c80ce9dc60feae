"""The reference against SEMANTICS.md's own limits and invariances, without the engine:

* claiming every edge with the identity feature reproduces the model, under every ablation;
* the empty hypothesis under `resample` is the unmodified model on x_r(out), drawn here by hand;
* under `paired`, removing one head's outgoing edges from the full hypothesis equals patching that
  head's output with the paired row in one forward pass of the model;
* results do not depend on sharing, root chunking or dataset order;
* feature values: tuples of tokens at a position of several indices, floats rounded to 1e-9.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import refcases as C
import refscrub
import torch

from circuitdsl.datasets.core import Dataset
from circuitdsl.ir import IDENTITY, Ablation, AblationKind, Claim, EdgeId, Feature, FeatureKind, NodeKind, Port

pytestmark = pytest.mark.engine


def full(d, shape, *, ablation=Ablation(), seed=0, drop_from=None):
    """M: every model node claimed with the identity feature, every edge of the model graph claimed
    (without the outgoing edges of `drop_from`)."""
    nodes = refscrub._nodes(shape) + [C.OUT]
    edges = []
    for r in nodes:
        if r.kind in (NodeKind.EMBED, NodeKind.POS):
            continue
        for s in refscrub.upstream(r, shape):
            if s == drop_from:
                continue
            edges += [EdgeId(s, r, p) for p in ((Port.Q, Port.K, Port.V) if r.kind is NodeKind.HEAD else (Port.IN,))]
    return C.build(d, [Claim(v, IDENTITY) for v in nodes], edges, ablation=ablation, seed=seed)


def max_rel(a, b):
    return max(C.per_example_rel(a, b))


@pytest.mark.parametrize("ablation", C.ABLATIONS, ids=str)
@pytest.mark.parametrize("which", ["native_mlp", "hf_llama"])
def test_full_identity_hypothesis_reproduces_the_model(ref_model, which, ablation):
    d, b = ref_model(which)
    dsets = C.make_datasets(n=8)
    h = full(d, b.shape, ablation=ablation)
    got = refscrub.reference_scrub(b.model, dsets, "D", h)
    assert max_rel(got, refscrub.model_logits(b.model, dsets["D"])) < 1e-5


@pytest.mark.parametrize("which", ["native_attn", "hf_gpt2"])
def test_empty_hypothesis_is_the_model_on_the_other_inputs_draw(ref_model, which):
    d, b = ref_model(which)
    dsets = C.make_datasets(n=10)
    D = dsets["D"]
    h = C.build(d, [Claim(C.OUT)], [], seed=5)
    got = refscrub.reference_scrub(b.model, dsets, "D", h)
    for i, x in enumerate(D.examples):
        pool = sorted(y.id for y in D.examples if len(y.tokens) == len(x.tokens))
        key = hashlib.blake2b(f"5\x1f{x.id}\x1fout\x1fother".encode(), digest_size=8).digest()
        xr = D.examples[D.index_of(pool[int.from_bytes(key, "big") % len(pool)])]
        with torch.no_grad():
            want = b.model(torch.tensor([list(xr.tokens)]))[0, list(refscrub.scored_positions(x))]
        assert max_rel([got[i]], [want]) < 1e-5


def test_paired_removal_of_one_head_equals_patching_it(ref_model):
    d, b = ref_model("native_mlp")
    dsets = C.make_datasets(n=8)
    D, D2 = dsets["D"], dsets["D2"]
    a = C.head(0, 2)
    h = full(d, b.shape, ablation=Ablation(AblationKind.PAIRED, "D2"), drop_from=a)
    got = refscrub.reference_scrub(b.model, dsets, "D", h)
    for i, x in enumerate(D.examples):
        with torch.no_grad():
            cache = {}
            b.model.run_with_hooks(
                torch.tensor([list(D2.examples[i].tokens)]),
                fwd_hooks=[("blocks.0.attn.hook_result", lambda t, hook: cache.setdefault("r", t.clone()))],
            )

            def patch(t, hook):
                t = t.clone()
                t[:, :, 2] = cache["r"][:, :, 2]
                return t

            want = b.model.run_with_hooks(
                torch.tensor([list(x.tokens)]), fwd_hooks=[("blocks.0.attn.hook_result", patch)]
            )
        assert max_rel([got[i]], [want[0, list(refscrub.scored_positions(x))]]) < 1e-5


def _mixed(d):
    a00, a10, m0 = C.head(0, 0), C.head(1, 0), C.mlp(0)
    claims = [Claim(a00, C.PARITY, ("last",)), Claim(m0, C.FIRST), Claim(a10, IDENTITY, ("pair", "last"))]
    edges = [
        EdgeId(C.EMBED, a00, Port.V),
        EdgeId(C.POS, a00, Port.K),
        EdgeId(a00, m0, Port.IN),
        EdgeId(C.EMBED, m0, Port.IN),
        EdgeId(a00, a10, Port.Q),
        EdgeId(m0, a10, Port.K),
        EdgeId(C.EMBED, a10, Port.V),
        EdgeId(a10, C.OUT, Port.IN),
        EdgeId(m0, C.OUT, Port.IN),
    ]
    return claims, edges


@pytest.mark.parametrize("ablation", C.ABLATIONS, ids=str)
def test_sharing_chunking_and_dataset_order_change_nothing(ref_model, ablation):
    d, b = ref_model("native_mlp")
    dsets = C.make_datasets(n=12)
    claims, edges = _mixed(d)
    h = C.build(d, claims, edges, ablation=ablation, seed=2)
    ref = refscrub.reference_scrub(b.model, dsets, "D", h)
    assert max_rel(refscrub.reference_scrub(b.model, dsets, "D", h, share=False), ref) == 0.0
    assert max_rel(refscrub.reference_scrub(b.model, dsets, "D", h, chunk=2), ref) < 1e-6
    # the same examples in reverse order (paired rows stay paired): the same result per example
    rev = {k: Dataset(v.name, v.examples[::-1], v.field_names, v.position_names) for k, v in dsets.items()}
    got = refscrub.reference_scrub(b.model, rev, "D", h)
    assert max_rel(got[::-1], ref) < 1e-6


def test_feature_values():
    D = C.make_datasets(n=12)["D"]
    x = D.examples[0]
    assert refscrub.feature_value(C.PAIR, x) == (x.tokens[1], x.tokens[2])
    assert refscrub.feature_value(C.FIRST, x) == x.tokens[0]
    score = Feature(FeatureKind.FIELD, ("score",))
    raw = {dict(y.fields)["score"] for y in D.examples}
    assert 3 * 0.1 in raw and 0.3 in raw  # both spellings of 0.3 occur in the data...
    assert {refscrub.feature_value(score, y) for y in D.examples} == {0.0, 0.1, 0.2, 0.3}  # ...and meet after rounding
    assert 0.1 * 3 != 3 / 10 and refscrub.feature_value(Feature(FeatureKind.FUNCTION, ("ref_features:first_two",)), x)[
        2
    ] in (0.0, 0.3)
    tup = Feature(FeatureKind.TUPLE, (), (IDENTITY, C.NOTHING))
    assert refscrub.feature_value(tup, x) != refscrub.feature_value(tup, D.examples[1])
    with pytest.raises(refscrub.ReferenceError):
        refscrub.feature_value(Feature(FeatureKind.FIELD, ("nope",)), x)


def test_upstream_rule():
    from circuitdsl.ir import ModelShape

    seq = ModelShape(n_layers=2, n_heads=2, n_kv_heads=2, d_model=8, pos_embed="rotary", has_mlp=True)
    par = dataclasses.replace(seq, parallel_attn_mlp=True)
    names = lambda v, s: [u.name for u in refscrub.upstream(v, s)]  # noqa: E731
    assert names(C.head(1, 0), seq) == ["embed", "a0.0", "a0.1", "m0"]
    assert names(C.mlp(1), seq) == ["embed", "a0.0", "a0.1", "m0", "a1.0", "a1.1"]
    assert names(C.mlp(1), par) == ["embed", "a0.0", "a0.1", "m0"]
    assert names(C.OUT, seq) == ["embed", "a0.0", "a0.1", "m0", "a1.0", "a1.1", "m1"]
    assert names(C.head(0, 1), dataclasses.replace(seq, pos_embed="learned")) == ["embed", "pos"]
