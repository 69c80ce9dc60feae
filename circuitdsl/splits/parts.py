"""The parts of a split component's output (docs/FEATURES.md): the one implementation the engine uses.

subspace S (orthonormal basis Q):  [s] = x Q Q^T,  [~s] = x - x Q Q^T
sae (latents L named):             [f_i] = a_i W_dec[i] for i in L,  [rest] = b_dec + sum_{j not in L} a_j W_dec[j],
                                   [err] = x - (a W_dec + b_dec)
The parts sum to x up to float rounding, so an unclaimed split changes nothing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from circuitdsl.ir import NodeId, Split, SplitKind
from circuitdsl.splits.basis import load_basis
from circuitdsl.splits.sae import SAEWeights, load_sae

__all__ = ["part_outputs", "encode"]


@lru_cache(maxsize=32)
def _basis(path: str, digest: str) -> np.ndarray:  # digest: a changed file is a new entry
    return load_basis(path)


@lru_cache(maxsize=8)
def _sae(path: str, digest: str) -> SAEWeights:
    return load_sae(path)


def _t(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


def encode(sae: SAEWeights, x: torch.Tensor) -> torch.Tensor:
    """Latent activations [..., d_sae] of x [..., d_in], in x's dtype (SAELens' encoders; sae.py)."""
    b_dec = _t(sae.b_dec, x)
    pre = ((x - b_dec) if sae.apply_b_dec_to_input else x) @ _t(sae.W_enc, x) + _t(sae.b_enc, x)
    if sae.architecture == "standard":
        return torch.relu(pre)
    if sae.architecture == "jumprelu":
        assert sae.threshold is not None
        return pre * (pre > _t(sae.threshold, x))
    assert sae.k is not None
    vals, idx = pre.topk(sae.k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))


def part_outputs(split: Split, out: torch.Tensor) -> dict[NodeId, torch.Tensor]:
    """Each part's output, shaped like `out` ([..., d_model], the component's output)."""
    if split.kind is SplitKind.SUBSPACE:
        q = _t(_basis(split.source, split.digest), out)
        inside = (out @ q) @ q.T
        inner, outer = split.parts
        return {inner: inside, outer: out - inside}
    sae = _sae(split.source, split.digest)
    a = encode(sae, out)
    w_dec = _t(sae.W_dec, out)
    recon = a @ w_dec + _t(sae.b_dec, out)
    res: dict[NodeId, torch.Tensor] = {}
    named = list(split.latents)
    for i, p in zip(named, split.parts):
        res[p] = a[..., i : i + 1] * w_dec[i]
    rest_p, err_p = split.parts[len(named)], split.parts[len(named) + 1]
    if named:
        idx = torch.tensor(named, device=out.device)
        res[rest_p] = recon - a[..., idx] @ w_dec[idx]
    else:
        res[rest_p] = recon
    res[err_p] = out - recon
    return res
