"""The interpretability illusion of subspace patching (Makelov, Lange and Nanda 2023; docs/FEATURES.md),
on a constructed component whose mechanism is known, patched through circuitdsl's own part maps.

The component writes y = (0, f, f) for a binary feature f in {-1, +1}:
- e0 is *dormant*: the readout reads it, but it is 0 on every input;
- e1 is *disconnected*: it carries f, but the readout ignores it;
- e2 is the mechanism: it carries f and the readout reads it.
Readout: out(y) = y0 + y2, so out = f on clean inputs.

Patching the 1-d subspace v = (e0 + e1)/sqrt(2) from an input with the other f moves the output halfway,
although neither e0 nor e1 alone has any effect: the patch writes e1's difference into e0, waking the
dormant pathway. A `split C by subspace v` claim would see a large effect from a direction the component
never uses to carry f.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from circuitdsl.compiler.splits import split_parts  # noqa: E402
from circuitdsl.ir import NodeId, NodeKind, Split, SplitKind  # noqa: E402
from circuitdsl.splits.parts import part_outputs  # noqa: E402

C = NodeId(NodeKind.MLP, 0)


def _component(f: float) -> torch.Tensor:
    return torch.tensor([0.0, f, f], dtype=torch.float64)


def _readout(y: torch.Tensor) -> float:
    return float(y[0] + y[2])


def _patch_effect(tmp_path, name: str, basis: np.ndarray) -> float:
    """Output change when the subspace part is taken from f' = -1 and the complement from f = +1."""
    np.save(tmp_path / f"{name}.npy", basis)
    split = Split(
        C, SplitKind.SUBSPACE, str(tmp_path / f"{name}.npy"), split_parts(C, SplitKind.SUBSPACE, "s"), "s", (), name
    )
    inner, outer = split.parts
    clean, other = _component(1.0), _component(-1.0)
    patched = part_outputs(split, other)[inner] + part_outputs(split, clean)[outer]
    return _readout(patched) - _readout(clean)


def test_a_mixed_subspace_shows_an_effect_its_directions_do_not_have(tmp_path):
    full = _readout(_component(-1.0)) - _readout(_component(1.0))  # flipping f moves the output by -2
    assert full == -2.0
    v = _patch_effect(tmp_path, "v", np.array([[1.0], [1.0], [0.0]]) / np.sqrt(2))
    dormant = _patch_effect(tmp_path, "u", np.array([[1.0], [0.0], [0.0]]))
    disconnected = _patch_effect(tmp_path, "w", np.array([[0.0], [1.0], [0.0]]))
    mechanism = _patch_effect(tmp_path, "m", np.array([[0.0], [0.0], [1.0]]))
    # the illusion: half the full effect from v, none from either of its directions alone
    assert v == pytest.approx(-1.0, abs=1e-12)
    assert dormant == pytest.approx(0.0, abs=1e-12) and disconnected == pytest.approx(0.0, abs=1e-12)
    # the real mechanism carries the whole effect
    assert mechanism == pytest.approx(full, abs=1e-12)


def test_the_signature_the_patch_writes_values_the_component_never_produces(tmp_path):
    """Guard 4 of docs/FEATURES.md: on clean inputs y0 is always 0; the v-patch writes y0 = -1."""
    np.save(tmp_path / "v.npy", np.array([[1.0], [1.0], [0.0]]) / np.sqrt(2))
    split = Split(C, SplitKind.SUBSPACE, str(tmp_path / "v.npy"), split_parts(C, SplitKind.SUBSPACE, "s"), "s", (), "v")
    inner, outer = split.parts
    patched = part_outputs(split, _component(-1.0))[inner] + part_outputs(split, _component(1.0))[outer]
    assert all(float(_component(f)[0]) == 0.0 for f in (-1.0, 1.0))
    assert float(patched[0]) == pytest.approx(-1.0, abs=1e-12)
