"""The second round of fast paths: rows that are exactly clean are not computed, port inputs of the
full hypothesis are taken from the clean residual ('x' form), heads of a layer share port inputs and
block rows, the MLP is called without its block's attention, and hooks are removed per hook point.
Each must agree with the plain computation (Engine(shortcuts=False), a block run) and the reference."""

from __future__ import annotations

import pytest
import torch
from common import engine, max_rel, model_logits, setup
from helpers import EMBED, OUT, e, head, hyp, mlp, qkv
from reference import reference_scrub  # benchmarks/reference.py (see conftest.py)

from circuitdsl.engine import derive
from circuitdsl.ir import Ablation, AblationKind, Claim, Feature, FeatureKind

pytestmark = pytest.mark.engine

PARITY = Feature(FeatureKind.FIELD, ("parity",))
ABLATIONS = [Ablation(), Ablation(AblationKind.PAIRED, "D2"), Ablation(AblationKind.MEAN), Ablation(AblationKind.ZERO)]


@pytest.mark.parametrize("ablation", ABLATIONS, ids=str)
def test_full_hypothesis_computes_nothing_and_is_the_model(any_model, ablation):
    h0, b, dsets = setup(any_model)
    eng = engine(b, dsets, ablation, batch_size=7)
    out = eng.scrub(derive.full(h0))
    assert out.rows_computed == 0 and eng.block_runs == 0  # every row is the clean activation of its x
    assert max_rel(out.logits, model_logits(b, dsets["D"])) < 1e-5
    # the plain computation (every row computed from its ablated base) agrees
    plain = engine(b, dsets, ablation, batch_size=7, shortcuts=False)
    slow = plain.scrub(derive.full(h0))
    assert slow.rows_computed > 0
    assert max_rel(out.logits, slow.logits) < 1e-5


@pytest.mark.parametrize("ablation", ABLATIONS, ids=str)
@pytest.mark.parametrize("which", ["native_mlp", "hf_llama"])
def test_full_minus_k_agrees_with_plain_and_reference(request, which, ablation):
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir, n=8, lengths=[5, 6])
    M = derive.full(h0)
    fast = engine(b, dsets, ablation, batch_size=5)
    plain = engine(b, dsets, ablation, batch_size=5, shortcuts=False)
    # relative to the clean logits' scale: removing embed under zero ablation leaves logits of ~0 (biases only)
    scale = max(float(x.abs().max()) for x in model_logits(b, dsets["D"]))

    def close(x, y):
        return max(float((p.double() - q.double()).abs().max()) for p, q in zip(x, y)) < 1e-5 * scale

    for k in ({head(1, 0)}, {head(0, 1)}, {EMBED}, {mlp(0), head(1, 1)} if b.shape.has_mlp else {head(0, 0)}):
        h = derive.remove(M, k)
        a, z = fast.scrub(h), plain.scrub(h)
        assert close(a.logits, z.logits)
        assert close(a.logits, reference_scrub(b, dsets, "D", h, ablation, h.seed))
    # removing a node of the last layer leaves every earlier row clean: only what it reaches is computed
    last = head(b.shape.n_layers - 1, 0)
    fresh = engine(b, dsets, ablation, batch_size=5)
    out = fresh.scrub(derive.remove(M, {last}))
    reached = 2 if b.shape.has_mlp else 1  # the last MLP (it reads the heads of its layer) and out
    assert out.rows_computed == reached * len(dsets["D"])


def test_shortcuts_do_not_change_a_sparse_hypothesis(native_mlp):
    """A hypothesis that claims few senders per port uses the ablated base, bitwise as before."""
    h0, b, dsets = setup(native_mlp, n=10)
    edges = [
        *qkv(EMBED, head(0, 1)),
        *qkv(head(0, 1), head(1, 0)),
        e(head(1, 0), OUT),
        e(head(1, 0), mlp(1)),
        e(mlp(1), OUT),
    ]
    h = hyp(native_mlp, [Claim(head(0, 1), PARITY)], edges)
    for ablation in ABLATIONS:
        a = engine(b, dsets, ablation).scrub(h)
        z = engine(b, dsets, ablation, shortcuts=False).scrub(h)
        assert max_rel(a.logits, z.logits) == 0.0


@pytest.mark.parametrize("which", ["hf_llama", "hf_gpt2"])
def test_mlp_without_attention_equals_block_run(request, which):
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir, n=6, length=7)
    c = b.clean_run(b.tokens([x.tokens for x in dsets["D"].examples]))
    gen = torch.Generator().manual_seed(0)
    for L in range(b.shape.n_layers):
        x = c.resid_mid[L] + 0.1 * torch.randn(c.resid_mid[L].shape, generator=gen)
        fast = b.run_mlp(L, x)
        b._extra["mlp_direct"] = False
        try:
            slow = b.run_mlp(L, x)  # a block run with hook_resid_mid replaced
        finally:
            b._extra["mlp_direct"] = True
        assert torch.equal(fast, slow)
        assert torch.equal(b.run_mlp(L, c.resid_mid[L]), c.mlp_out[L])


@pytest.mark.parametrize("which", ["native_attn", "hf_llama"])
def test_hooks_are_removed_per_point_also_after_an_error(request, which):
    from circuitdsl.backends.base import hooks

    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir, n=4, length=5)
    from circuitdsl.backends.protocol import Site

    name = b.hook_name(Site.RESULT, 0)

    def boom(x, hook):
        raise RuntimeError("inside a hook")

    with pytest.raises(RuntimeError):
        with hooks(b.model, [(name, boom)]):
            b.model(b.tokens([dsets["D"].examples[0].tokens]))
    assert not any(hp.fwd_hooks for hp in b.model.hook_dict.values())
    b.run_layer(
        0,
        *(
            b.clean_run(b.tokens([dsets["D"].examples[0].tokens])).resid_pre[0].unsqueeze(2).expand(-1, -1, n, -1)
            for n in (b.shape.n_heads, b.shape.n_kv_heads, b.shape.n_kv_heads)
        ),
        None,
    )
    assert not any(hp.fwd_hooks for hp in b.model.hook_dict.values())
