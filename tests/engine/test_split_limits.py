"""Split components in the engine (docs/FEATURES.md): the limits that must hold up to float rounding, and
subspace patching through plain transformer-lens hooks (no circuitdsl code on the reference side: the
projection is numpy's own QR of the basis file)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from common import engine, max_rel, model_logits, setup

from circuitdsl.compiler.splits import file_digest, split_parts
from circuitdsl.engine import derive
from circuitdsl.ir import Ablation, AblationKind, NodeId, NodeKind, Split, SplitKind
from circuitdsl.splits.sae import SAEWeights, save_sae

pytestmark = pytest.mark.engine

A12 = NodeId(NodeKind.HEAD, 1, 2)
M0 = NodeId(NodeKind.MLP, 0)
EMBED = NodeId(NodeKind.EMBED)


def _subspace(tmp_path, node: NodeId, d: int, k: int, seed: int) -> tuple[Split, np.ndarray]:
    basis = np.random.default_rng(seed).standard_normal((d, k)).astype(np.float32)
    f = tmp_path / f"basis_{node.name}.npy"
    np.save(f, basis)
    parts = split_parts(node, SplitKind.SUBSPACE, "s")
    return Split(node, SplitKind.SUBSPACE, str(f), parts, "s", (), file_digest(f)), basis


def _sae(tmp_path, node: NodeId, d: int, latents: tuple[int, ...], d_sae: int = 12) -> Split:
    rng = np.random.default_rng(7)
    sae = SAEWeights(
        "standard", d, d_sae, f"blocks.{node.layer}.hook_mlp_out", True,
        rng.standard_normal((d, d_sae)).astype(np.float32) * 0.3, rng.standard_normal(d_sae).astype(np.float32) * 0.1,
        rng.standard_normal((d_sae, d)).astype(np.float32) * 0.3, rng.standard_normal(d).astype(np.float32) * 0.1,
    )  # fmt: skip
    save_sae(tmp_path / "sae", sae)
    files = (tmp_path / "sae" / "cfg.json", tmp_path / "sae" / "sae_weights.safetensors")
    parts = split_parts(node, SplitKind.SAE, "", latents)
    return Split(node, SplitKind.SAE, str(tmp_path / "sae"), parts, "", latents, file_digest(*files))


def _with(h, *splits):
    return dataclasses.replace(h, splits=tuple(splits))


@pytest.mark.parametrize(
    "ablation",
    [
        Ablation(AblationKind.RESAMPLE),
        Ablation(AblationKind.PAIRED, "D2"),
        Ablation(AblationKind.ZERO),
    ],
    ids=str,
)
def test_every_part_claimed_with_identity_reproduces_the_model(native_mlp, tmp_path, ablation):
    """The issue's done-when: an SAE latent set plus its error node (and rest), identity features, every
    edge: the model exactly; with a head's subspace split and an embedding split beside it."""
    h0, b, dsets = setup(native_mlp)
    d = b.shape.d_model
    sae = _sae(tmp_path, M0, d, (1, 3, 5))
    sub, _ = _subspace(tmp_path, A12, d, 3, 0)
    emb, _ = _subspace(tmp_path, EMBED, d, 2, 1)
    h = _with(h0, sae, sub, emb)
    M = derive.full(h)
    assert {p for s in (sae, sub, emb) for p in s.parts} <= set(M.claimed_nodes)
    assert M0 not in M.claimed_nodes and A12 not in M.claimed_nodes
    eng = engine(b, dsets, ablation, batch_size=5)
    ref = model_logits(b, dsets["D"])
    assert max_rel(eng.scrub(M).logits, ref) < 1e-5
    # not vacuous: the SAE's error part removed moves the output
    assert max_rel(eng.scrub(derive.remove(M, {sae.parts[-1]})).logits, ref) > 1e-3


def test_every_latent_named_and_err_reproduce_the_model(native_mlp, tmp_path):
    h0, b, dsets = setup(native_mlp)
    d = b.shape.d_model
    sae = _sae(tmp_path, M0, d, tuple(range(12)))
    M = derive.full(_with(h0, sae))
    eng = engine(b, dsets, Ablation(AblationKind.RESAMPLE))
    assert max_rel(eng.scrub(M).logits, model_logits(b, dsets["D"])) < 1e-5


def test_empty_with_splits_is_the_baseline(native_mlp, tmp_path):
    h0, b, dsets = setup(native_mlp)
    sae = _sae(tmp_path, M0, b.shape.d_model, (2,))
    eng = engine(b, dsets, Ablation(AblationKind.RESAMPLE))
    want = eng.scrub(derive.empty(h0)).logits
    got = eng.scrub(derive.empty(_with(h0, sae))).logits
    assert max_rel(got, want) < 1e-5


@pytest.mark.parametrize("kind", [AblationKind.RESAMPLE, AblationKind.PAIRED, AblationKind.MEAN, AblationKind.ZERO])
def test_an_unclaimed_split_changes_nothing(native_mlp, tmp_path, kind):
    """M \\ {a1.2's parts} (both parts ablated) equals M \\ {a1.2} of the unsplit model."""
    h0, b, dsets = setup(native_mlp)
    sub, _ = _subspace(tmp_path, A12, b.shape.d_model, 2, 3)
    abl = Ablation(kind, "D2" if kind is AblationKind.PAIRED else None)
    eng = engine(b, dsets, abl)
    want = eng.scrub(derive.remove(derive.full(h0), {A12})).logits
    got = engine(b, dsets, abl).scrub(derive.remove(derive.full(_with(h0, sub)), set(sub.parts))).logits
    assert max_rel(got, want) < 1e-5
    assert max_rel(want, model_logits(b, dsets["D"])) > 1e-4  # the removal does something


def test_ablating_the_complement_is_subspace_patching_with_plain_hooks(native_mlp, tmp_path):
    """Under paired ablation, M with a1.2[~s]'s outgoing edges removed equals the model run with a1.2's
    output replaced by P clean + (I - P) corrupt at every position (P from numpy's QR of the basis)."""
    h0, b, dsets = setup(native_mlp)
    sub, basis = _subspace(tmp_path, A12, b.shape.d_model, 3, 4)
    h = _with(h0, sub)
    eng = engine(b, dsets, Ablation(AblationKind.PAIRED, "D2"))
    got = eng.scrub(derive.remove(derive.full(h), {sub.parts[1]})).logits
    q, _ = np.linalg.qr(basis.astype(np.float64))
    P = torch.tensor(q @ q.T, dtype=torch.float32)
    D, D2 = dsets["D"], dsets["D2"]
    hook = f"blocks.{A12.layer}.attn.hook_result"
    with torch.no_grad():
        _, c2 = b.model.run_with_cache(b.tokens([e.tokens for e in D2.examples]), names_filter=hook)
        corrupt = c2[hook][:, :, A12.head]

        def patch(t, hook):
            t = t.clone()
            clean = t[:, :, A12.head]
            t[:, :, A12.head] = clean @ P + corrupt @ (torch.eye(P.shape[0]) - P)
            return t

        lg = b.model.run_with_hooks(b.tokens([e.tokens for e in D.examples]), fwd_hooks=[(hook, patch)])
    want = [lg[i, list(e.scored_positions)] for i, e in enumerate(D.examples)]
    assert max_rel(got, want) < 1e-5
    assert max_rel(want, model_logits(b, D)) > 1e-4


def test_mean_ablation_of_sae_parts_is_refused(native_mlp, tmp_path):
    from circuitdsl.diagnostics import CircuitError

    h0, b, dsets = setup(native_mlp)
    sae = _sae(tmp_path, M0, b.shape.d_model, (1,))
    eng = engine(b, dsets, Ablation(AblationKind.MEAN))
    with pytest.raises(CircuitError) as e:
        eng.scrub(derive.full(dataclasses.replace(_with(h0, sae), ablation=Ablation(AblationKind.MEAN))))
    assert e.value.diagnostics[0].code == "E602"
