"""Subspace bases: one tensor of shape [d_model, k] in an npy or safetensors file, orthonormalised here.

The columns span the subspace S; the split's parts are x Q Q^T (`[s]`) and x - x Q Q^T (`[~s]`) with Q the
orthonormal basis of S (docs/FEATURES.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from circuitdsl.diagnostics import CircuitError, Diagnostic

__all__ = ["load_basis", "read_tensor", "orthonormal"]

RANK_TOL = 1e-6
"""A basis is rank-deficient when a singular value is below RANK_TOL times the largest."""


def _refuse(code: str, message: str, hint: str, label: str = "") -> CircuitError:
    return CircuitError([Diagnostic(code, message, label=label, hint=hint)])


def read_tensor(path: str | Path) -> np.ndarray:
    """The one tensor of an npy or safetensors file, as float64 (E704 for anything else)."""
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.numpy import load_file

            tensors = load_file(str(p))
            if len(tensors) != 1:
                raise _refuse(
                    "E704",
                    f"{p} holds {len(tensors)} tensors ({', '.join(sorted(tensors)) or 'none'})",
                    "a basis file holds exactly one tensor of shape [d_model, k]",
                )
            (a,) = tensors.values()
        else:
            with open(p, "rb") as f:
                magic = f.read(6)
            if magic != b"\x93NUMPY":
                raise _refuse(
                    "E704",
                    f"{p} is not an npy file (it does not start with numpy's header)",
                    "a basis is one finite tensor of shape [d_model, k], saved by numpy.save or safetensors",
                )
            a = np.load(p, allow_pickle=False)
    except CircuitError:
        raise
    except Exception as e:  # numpy / safetensors say why in their own words
        raise _refuse(
            "E704",
            f"cannot read {p}: {e}",
            "a basis is one finite tensor of shape [d_model, k] in an npy or safetensors file",
        ) from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
        raise _refuse("E704", f"{p} is not a numeric array", "save a float array of shape [d_model, k]")
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise _refuse(
            "E705", f"{p} has {a.ndim} dimensions, shape {list(a.shape)}", "a basis has shape [d_model, k]", "not 2-d"
        )
    if not np.isfinite(a).all():
        raise _refuse("E704", f"{p} holds NaN or infinite values", "a basis must be finite", "not finite")
    return a


def orthonormal(a: np.ndarray) -> np.ndarray:
    """An orthonormal basis [d, k] of the column span of `a` (E706 when the columns span fewer than k dims)."""
    d, k = a.shape
    if k == 0:
        raise _refuse("E706", "the basis has no columns", "a subspace needs at least one direction", "k = 0")
    s = np.linalg.svd(a, compute_uv=False)
    if s[0] == 0 or s[-1] < RANK_TOL * s[0]:
        rank = int((s >= RANK_TOL * s[0]).sum()) if s[0] > 0 else 0
        raise _refuse(
            "E706",
            f"the basis' {k} columns span only {rank} dimension{'s' * (rank != 1)}",
            "drop the dependent columns (or let `orthonormal` of a fitted basis keep its top singular directions)",
            "rank-deficient",
        )
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diag(r))[None, :]  # deterministic signs: column i points along a's column i


def load_basis(path: str | Path) -> np.ndarray:
    """The orthonormal basis [d_model, k] stored in `path` (npy or safetensors), float64."""
    return orthonormal(read_tensor(path))
