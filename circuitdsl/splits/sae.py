"""Sparse autoencoders in SAELens' on-disk layout: a directory with cfg.json and sae_weights.safetensors.

Weights: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in], and `threshold` [d_sae] for
JumpReLU. cfg.json keys read: architecture (standard | jumprelu | topk), d_in, d_sae, hook_name,
apply_b_dec_to_input, normalize_activations (only "none" / null is supported: the others rescale inputs by
dataset statistics this layout does not carry), k (topk). Encoding, as SAELens computes it:

    pre = (x - b_dec if apply_b_dec_to_input else x) @ W_enc + b_enc
    standard: a = relu(pre);  jumprelu: a = pre * (pre > threshold);  topk: relu of the k largest of pre, 0 elsewhere
    reconstruction = a @ W_dec + b_dec
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from circuitdsl.diagnostics import CircuitError, Diagnostic

__all__ = ["SAEWeights", "load_sae", "save_sae", "encode_numpy", "ARCHITECTURES"]

ARCHITECTURES = ("standard", "jumprelu", "topk")
CFG, WEIGHTS = "cfg.json", "sae_weights.safetensors"


def _refuse(message: str, hint: str) -> CircuitError:
    return CircuitError([Diagnostic("E709", message, hint=hint)])


@dataclass(frozen=True, eq=False)
class SAEWeights:
    """An SAE as read from disk (float32 numpy arrays; compare by identity)."""

    architecture: str
    d_in: int
    d_sae: int
    hook_name: str
    apply_b_dec_to_input: bool
    W_enc: np.ndarray
    b_enc: np.ndarray
    W_dec: np.ndarray
    b_dec: np.ndarray
    threshold: np.ndarray | None = None
    k: int | None = None


def load_sae(path: str | Path) -> SAEWeights:
    """The SAE in directory `path` (E709 with the reason for anything this module cannot use exactly)."""
    d = Path(path)
    try:
        cfg = json.loads((d / CFG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _refuse(f"{d} has no {CFG}", "SAELens' layout: cfg.json and sae_weights.safetensors") from None
    except (OSError, ValueError) as e:
        raise _refuse(f"cannot read {d / CFG}: {e}", "cfg.json must be a JSON object") from None
    if not isinstance(cfg, dict):
        raise _refuse(f"{d / CFG} is not a JSON object", "cfg.json must be a JSON object")
    arch = str(cfg.get("architecture", "standard"))
    if arch not in ARCHITECTURES:
        raise _refuse(f"architecture `{arch}` is not supported", f"supported: {', '.join(ARCHITECTURES)}")
    norm = cfg.get("normalize_activations") or "none"
    if norm != "none":
        raise _refuse(
            f"normalize_activations = `{norm}` is not supported",
            "the SAE rescales its input by statistics this layout does not carry; fold the scale into W_enc / W_dec "
            "and set normalize_activations to none",
        )
    try:
        from safetensors.numpy import load_file

        w = load_file(str(d / WEIGHTS))
    except FileNotFoundError:
        raise _refuse(f"{d} has no {WEIGHTS}", "SAELens' layout: cfg.json and sae_weights.safetensors") from None
    except Exception as e:
        raise _refuse(f"cannot read {d / WEIGHTS}: {e}", "the weights are a safetensors file") from None
    missing = [n for n in ("W_enc", "b_enc", "W_dec", "b_dec") if n not in w]
    if arch == "jumprelu" and "threshold" not in w:
        missing.append("threshold")
    if missing:
        raise _refuse(f"{d / WEIGHTS} lacks {', '.join(missing)}", "weights: W_enc, b_enc, W_dec, b_dec (+ threshold)")
    try:
        d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    except (KeyError, TypeError, ValueError):
        raise _refuse(f"{d / CFG} lacks integer d_in and d_sae", "cfg.json names the SAE's widths") from None
    arr = {n: np.asarray(v, dtype=np.float32) for n, v in w.items()}
    shapes = {
        "W_enc": (d_in, d_sae),
        "b_enc": (d_sae,),
        "W_dec": (d_sae, d_in),
        "b_dec": (d_in,),
        "threshold": (d_sae,),
    }
    for n, want in shapes.items():
        if n in arr and arr[n].shape != want:
            raise _refuse(
                f"{n} has shape {list(arr[n].shape)}, cfg.json says {list(want)}", "weights and cfg.json disagree"
            )
        if n in arr and not np.isfinite(arr[n]).all():
            raise _refuse(f"{n} holds NaN or infinite values", "the SAE's weights must be finite")
    k = cfg.get("k")
    if arch == "topk" and not (isinstance(k, int) and 0 < k <= d_sae):
        raise _refuse("a topk SAE needs an integer k in 1..d_sae in cfg.json", "set k")
    return SAEWeights(
        arch,
        d_in,
        d_sae,
        str(cfg.get("hook_name", "")),
        bool(cfg.get("apply_b_dec_to_input", False)),
        arr["W_enc"],
        arr["b_enc"],
        arr["W_dec"],
        arr["b_dec"],
        arr.get("threshold"),
        k if arch == "topk" and isinstance(k, int) else None,
    )


def encode_numpy(sae: SAEWeights, x: np.ndarray) -> np.ndarray:
    """Latent activations [..., d_sae] of x [..., d_in] (float64 numpy; the torch path is parts.py)."""
    x = np.asarray(x, dtype=np.float64)
    pre = ((x - sae.b_dec) if sae.apply_b_dec_to_input else x) @ sae.W_enc.astype(np.float64) + sae.b_enc
    if sae.architecture == "standard":
        return np.maximum(pre, 0.0)
    if sae.architecture == "jumprelu":
        assert sae.threshold is not None
        return pre * (pre > sae.threshold)
    assert sae.k is not None
    out = np.zeros_like(pre)
    idx = np.argsort(-pre, axis=-1, kind="stable")[..., : sae.k]
    np.put_along_axis(out, idx, np.maximum(np.take_along_axis(pre, idx, -1), 0.0), -1)
    return out


def save_sae(path: str | Path, sae: SAEWeights, extra_cfg: dict | None = None) -> None:
    """Write `sae` in SAELens' layout; each file replaced atomically (a reader never sees half a file)."""
    from safetensors.numpy import save_file

    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    cfg = {
        "architecture": sae.architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "hook_name": sae.hook_name,
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": "none",
        "dtype": "float32",
        **({"k": sae.k} if sae.k is not None else {}),
        **(extra_cfg or {}),
    }
    tensors = {"W_enc": sae.W_enc, "b_enc": sae.b_enc, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
    if sae.threshold is not None:
        tensors["threshold"] = sae.threshold
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".weights-", suffix=".tmp")
    os.close(fd)
    try:
        save_file({n: np.ascontiguousarray(v, dtype=np.float32) for n, v in tensors.items()}, tmp)
        os.replace(tmp, d / WEIGHTS)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    from circuitdsl.atomic import write_text

    write_text(d / CFG, json.dumps(cfg, indent=1) + "\n")
