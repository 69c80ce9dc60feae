"""The engine's fast paths agree with the slow ones: a bridge block called directly equals the
bridge's own forward; packed head rows (several heads per block row; one per key/value group in GQA)
equal the reference; a memo over its byte budget is emptied and the numbers do not change."""

from __future__ import annotations

import pytest
import torch
from common import engine, max_rel, setup
from helpers import EMBED, OUT, e, head, hyp, qkv
from reference import reference_scrub  # benchmarks/reference.py (see conftest.py)

from circuitdsl.ir import Ablation, AblationKind, Claim, Feature, FeatureKind, Port

pytestmark = pytest.mark.engine

PARITY = Feature(FeatureKind.FIELD, ("parity",))
FIRST = Feature(FeatureKind.TOKEN_AT, ("first",))


@pytest.mark.parametrize("which", ["hf_llama", "hf_gpt2"])
def test_direct_block_call_equals_forward(request, which):
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir, n=6, length=7)
    toks = b.tokens([x.tokens for x in dsets["D"].examples])
    c = b.clean_run(toks)
    assert all(
        b.block_args.store.get((L, 7)) is not None for L in range(b.shape.n_layers)
    )  # captured during the clean run
    H, G = b.shape.n_heads, b.shape.n_kv_heads
    gen = torch.Generator().manual_seed(0)
    for L in range(b.shape.n_layers):
        # different inputs per head and per key/value group, so that a mixed-up head would show
        q = c.resid_pre[L].unsqueeze(2).repeat(1, 1, H, 1) + 0.1 * torch.randn(6, 7, H, b.shape.d_model, generator=gen)
        kv = c.resid_pre[L].unsqueeze(2).repeat(1, 1, G, 1) + 0.1 * torch.randn(6, 7, G, b.shape.d_model, generator=gen)
        direct = b.run_layer(L, q, kv, kv.flip(2), c.resid_mid[L])
        kept = dict(b.block_args.store)
        b.block_args.store.clear()
        try:
            slow = b.run_layer(L, q, kv, kv.flip(2), c.resid_mid[L])  # forward(start_at_layer=L, stop_at_layer=L+1)
        finally:
            b.block_args.store.update(kept)
        assert torch.equal(direct[0], slow[0]) and torch.equal(direct[1], slow[1])
        # the clean ports reproduce the clean run
        same = b.run_layer(
            L,
            c.resid_pre[L].unsqueeze(2).expand(-1, -1, H, -1),
            c.resid_pre[L].unsqueeze(2).expand(-1, -1, G, -1),
            c.resid_pre[L].unsqueeze(2).expand(-1, -1, G, -1),
            c.resid_mid[L],
        )
        assert torch.allclose(same[0], c.result[L], atol=1e-5) and torch.allclose(same[1], c.mlp_out[L], atol=1e-5)


def _many_heads(model_dir, n_heads):
    # every head of layer 0 and three of layer 1 (heads 0 and 1 share a key/value group in the GQA model)
    l0 = [head(0, i) for i in range(n_heads)]
    l1 = [head(1, 0), head(1, 1), head(1, n_heads - 1)]
    claims = [Claim(v, PARITY) for v in l0[:2]] + [Claim(v, FIRST) for v in l1[:2]]
    edges = [x for v in l0 for x in qkv(EMBED, v)] + [e(v, OUT) for v in l1]
    edges += [e(u, v, Port.Q) for u in l0 for v in l1] + [e(l0[0], v, Port.K) for v in l1] + [e(l0[2], l1[2], Port.V)]
    edges += [x for v in l1 for x in qkv(EMBED, v) if x.port is not Port.Q]
    return hyp(model_dir, claims, edges)


@pytest.mark.parametrize("ablation", [Ablation(), Ablation(AblationKind.PAIRED, "D2")], ids=str)
@pytest.mark.parametrize("which", ["native_attn", "hf_llama"])
def test_packed_heads_agree_with_reference(request, which, ablation):
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir, n=10, lengths=[5, 6])
    h = _many_heads(model_dir, b.shape.n_heads)
    eng = engine(b, dsets, ablation, batch_size=4)
    fast = eng.scrub(h)
    ref = reference_scrub(b, dsets, "D", h, ablation, h.seed)
    assert max_rel(fast.logits, ref) < 1e-5
    # packing: fewer block runs than rows / batch size would need one head per row
    assert eng.block_runs < fast.rows_computed / 4


def test_memo_budget_flushes_and_agrees(native_attn):
    h0, b, dsets = setup(native_attn, n=10)
    h = _many_heads(native_attn, b.shape.n_heads)
    big = engine(b, dsets, Ablation())
    small = engine(b, dsets, Ablation(), cache_bytes=1)
    for _ in range(2):
        a, z = big.scrub(h), small.scrub(h)
        assert max_rel(a.logits, z.logits) == 0.0
    assert big.memo_flushes == 0 and small.memo_flushes == 1
    assert a.rows_computed == 0 and z.rows_computed > 0  # the second scrub: memo hit vs recomputed after the flush
    assert small.memo_bytes() <= big.memo_bytes()
