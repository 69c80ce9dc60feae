"""The limits of SEMANTICS.md section 3 that must hold up to float rounding."""

from __future__ import annotations

import pytest
import torch
from common import engine, max_rel, model_logits, setup

from circuitdsl.engine import derive
from circuitdsl.engine.draws import OTHER, pick
from circuitdsl.ir import Ablation, AblationKind, NodeId, NodeKind, Port

pytestmark = pytest.mark.engine

ABLATIONS = [
    Ablation(AblationKind.RESAMPLE),
    Ablation(AblationKind.RESAMPLE_FROM, "D2"),
    Ablation(AblationKind.PAIRED, "D2"),
    Ablation(AblationKind.MEAN),
    Ablation(AblationKind.MEAN, "D2"),
    Ablation(AblationKind.ZERO),
]


@pytest.mark.parametrize("ablation", ABLATIONS, ids=str)
def test_full_hypothesis_reproduces_the_model(any_model, ablation):
    h0, b, dsets = setup(any_model)
    eng = engine(b, dsets, ablation, batch_size=7)
    out = eng.scrub(derive.full(h0))
    ref = model_logits(b, dsets["D"])
    assert max_rel(out.logits, ref) < 1e-5
    # and the empty hypothesis is really different (the test is not vacuous)
    empty = eng.scrub(derive.empty(h0))
    assert max_rel(empty.logits, ref) > 1e-3


def test_empty_is_model_on_other_input_draw(any_model):
    h0, b, dsets = setup(any_model)
    ds = dsets["D"]
    eng = engine(b, dsets, Ablation())
    out = eng.scrub(derive.empty(h0))
    # baseline under resample = the unmodified model on x_r(out), scored at x's positions
    for _layout, pool in ds.layouts().items():
        for i in pool:
            xr = pick(pool, h0.seed, ds.examples[i].id, "out", OTHER)
            with torch.no_grad():
                lg = b.model(b.tokens([ds.examples[xr].tokens]))[0, list(ds.examples[i].scored_positions)]
            assert torch.allclose(out.logits[i], lg, rtol=1e-5, atol=1e-5 * float(lg.abs().max()))


@pytest.mark.parametrize("kind", [AblationKind.MEAN, AblationKind.ZERO, AblationKind.PAIRED])
def test_empty_equals_baseline_under_other_ablations(native_mlp, kind):
    """Empty = out reads the ablated residual: mean residual / biases only / the paired row's residual."""
    h0, b, dsets = setup(native_mlp)
    ds, d2 = dsets["D"], dsets["D2"]
    eng = engine(b, dsets, Ablation(kind, "D2" if kind is AblationKind.PAIRED else None))
    out = eng.scrub(derive.empty(h0))
    with torch.no_grad():
        _, c = b.model.run_with_cache(b.tokens([e.tokens for e in ds.examples]))
        final = c[f"blocks.{b.shape.n_layers - 1}.hook_resid_post"]
        if kind is AblationKind.MEAN:
            resid = final.mean(0, keepdim=True).expand_as(final)
        elif kind is AblationKind.PAIRED:
            _, c2 = b.model.run_with_cache(b.tokens([e.tokens for e in d2.examples]))
            resid = c2[f"blocks.{b.shape.n_layers - 1}.hook_resid_post"]
        else:
            senders = c["hook_embed"] + c["hook_pos_embed"]
            for L in range(b.shape.n_layers):
                senders = senders + c[f"blocks.{L}.attn.hook_result"].sum(2) + c[f"blocks.{L}.hook_mlp_out"]
            resid = final - senders  # biases only
            # biases only: the same on every row
            assert torch.allclose(resid, resid[:1].expand_as(resid), atol=1e-4)
        lg = b.unembed(resid)
    ref = [lg[i, list(e.scored_positions)] for i, e in enumerate(ds.examples)]
    assert max_rel(out.logits, ref) < 1e-5


@pytest.mark.parametrize("which", ["native_attn", "native_mlp", "hf_llama", "hf_gpt2"])
def test_paired_head_removal_equals_activation_patching(request, which):
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir)
    ds, d2 = dsets["D"], dsets["D2"]
    M = derive.full(h0)
    eng = engine(b, dsets, Ablation(AblationKind.PAIRED, "D2"), batch_size=4)
    layer, hd = 1, 1
    target = NodeId(NodeKind.HEAD, layer, hd)
    out = eng.scrub(derive.remove(M, {target}))
    with torch.no_grad():
        _, corrupt = b.model.run_with_cache(b.tokens([e.tokens for e in d2.examples]))
        patched = corrupt[f"blocks.{layer}.attn.hook_result"][:, :, hd].clone()

        def patch(x, hook):
            x = x.clone()
            x[:, :, hd] = patched
            return x

        lg = b.model.run_with_hooks(
            b.tokens([e.tokens for e in ds.examples]), fwd_hooks=[(f"blocks.{layer}.attn.hook_result", patch)]
        )
    ref = [lg[i, list(e.scored_positions)] for i, e in enumerate(ds.examples)]
    assert max_rel(out.logits, ref) < 1e-5
    assert max_rel(out.logits, model_logits(b, ds)) > 1e-4


@pytest.mark.parametrize(
    "which,port",
    [("native_mlp", Port.Q), ("native_mlp", Port.V), ("hf_llama", Port.K), ("hf_llama", Port.Q), ("hf_gpt2", Port.K)],
)
def test_edge_patching_changes_only_that_port(request, which, port):
    """Removing one edge s -> t.port from M under `paired` equals adding the sender's delta
    (paired - clean) to that port input only; on GQA a k/v edge changes the group's input (all its heads)."""
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir)
    ds, d2 = dsets["D"], dsets["D2"]
    M = derive.full(h0)
    sender, _recv = NodeId(NodeKind.HEAD, 0, 2), NodeId(NodeKind.HEAD, 1, 0)
    group = b.shape.group_members(0) if port in (Port.K, Port.V) else (0,)
    drop = {
        e
        for e in M.edges
        if e.sender == sender
        and e.port == port
        and e.receiver.layer == 1
        and e.receiver.kind is NodeKind.HEAD
        and e.receiver.head in group
    }
    import dataclasses

    from circuitdsl.ir import make_graph

    edges = tuple(e for e in M.edges if e not in drop)
    hyp = dataclasses.replace(M, edges=edges, graph=make_graph(M.claims, edges))
    out = engine(b, dsets, Ablation(AblationKind.PAIRED, "D2")).scrub(hyp)
    with torch.no_grad():
        _, cc = b.model.run_with_cache(b.tokens([e.tokens for e in ds.examples]))
        _, c2 = b.model.run_with_cache(b.tokens([e.tokens for e in d2.examples]))
        delta = c2["blocks.0.attn.hook_result"][:, :, 2] - cc["blocks.0.attn.hook_result"][:, :, 2]
        name = {Port.Q: "hook_q_input", Port.K: "hook_k_input", Port.V: "hook_v_input"}[port]
        idx = 0 if port is Port.Q else b.shape.kv_group(0)
        seen = {}

        def add(x, hook):
            x = x.clone()
            x[:, :, idx] += delta
            return x

        def grab(x, hook):
            seen["r"] = x.detach().clone()

        lg = b.model.run_with_hooks(
            b.tokens([e.tokens for e in ds.examples]),
            fwd_hooks=[(f"blocks.1.{name}", add), ("blocks.1.attn.hook_result", grab)],
        )
    ref = [lg[i, list(e.scored_positions)] for i, e in enumerate(ds.examples)]
    assert max_rel(out.logits, ref) < 1e-5
    changed = (seen["r"] - cc["blocks.1.attn.hook_result"]).abs().amax(dim=(0, 1, 3))
    for h in range(b.shape.n_heads):
        if h in group:
            assert changed[h] > 0
        else:
            assert changed[h] == 0
