"""Non-finite model outputs are a diagnostic (E511), not a score of `nan`.

After the clean run, `check_finite` looks at the clean logits. If any example's are NaN or infinite,
it runs the model once more on the first such example with a forward hook on every module, and names
the first module (in execution order) whose output is not finite -- a hook point such as
`blocks.1.attn.hook_z` in a transformer-lens model, a submodule such as `model.layers.3.mlp` in a
Hugging Face one -- with its layer, and any weights that are not finite themselves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from circuitdsl.diagnostics import CircuitError, Diagnostic

__all__ = ["check_finite", "first_nonfinite_module", "nonfinite_weights"]

_LAYER = re.compile(r"(?:^|\.)(?:blocks|layers|h|layer)\.(\d+)(?:\.|$)")


def _layer_of(name: str) -> str:
    m = _LAYER.search(name)
    return f" (layer {m.group(1)})" if m else ""


def _finite(x: Any) -> bool:
    if torch.is_tensor(x):
        return not x.is_floating_point() or bool(torch.isfinite(x).all())
    if isinstance(x, tuple | list):
        return all(_finite(y) for y in x)
    if isinstance(x, dict):
        return all(_finite(y) for y in x.values())
    return True


def nonfinite_weights(model: Any) -> list[str]:
    """Names of the model's parameters and buffers that hold a NaN or an infinity."""
    bad = []
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad.append(name)
    return bad


@torch.no_grad()
def first_nonfinite_module(backend: Any, tokens: Sequence[int]) -> str | None:
    """The name of the first module, in execution order, whose output is not finite when the model
    runs on `tokens` (None if none is, or if the model cannot be run this way)."""
    model = backend.model
    found: list[str] = []
    handles = []

    def watch(name):
        def hook(module, inputs, output):
            if not found and not _finite(output):
                found.append(name)

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(watch(name)))
        backend._forward(backend.tokens([list(tokens)]))
    except Exception:
        return found[0] if found else None
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def check_finite(backend: Any, ds: Any, clean_logits: Sequence[torch.Tensor], span=None) -> None:
    """E511 if the model's clean outputs are not all finite, naming where they first go bad."""
    bad = [i for i, lg in enumerate(clean_logits) if not bool(torch.isfinite(lg).all())]
    if not bad:
        return
    ex = ds.examples[bad[0]]
    where = first_nonfinite_module(backend, ex.tokens)
    weights = nonfinite_weights(backend.model)
    msg = f"the model's outputs are not finite (NaN or infinite) on {len(bad)} of {len(ds)} examples of `{ds.name}`"
    if where:
        msg += f"; on example `{ex.id}` they first appear at `{where}`{_layer_of(where)}"
    if weights:
        shown = ", ".join(f"`{w}`" for w in weights[:3]) + (f" and {len(weights) - 3} more" if len(weights) > 3 else "")
        hint = (
            f"these weights hold NaN or infinite values: {shown}; the weights file is damaged or the training diverged"
        )
    else:
        hint = "the weights are finite: the values overflow (try float32) or the input reaches a position the model cannot take"
    raise CircuitError([Diagnostic("E511", msg, span, hint=hint)])
