"""The patching sweeps (`circuitdsl patch`, `discover`) go through the same backend as the engine: on a
GQA model, on parallel blocks and on a family whose heads circuitdsl computes itself (GPT-J), a head
sweep and a path sweep into a shared k port agree with plain-hook patching of the Hugging Face model."""

from __future__ import annotations

import hf_patching as ref
import pytest
import torch
from family_matrix import _datasets
from family_specs import BY_NAME

pytestmark = pytest.mark.engine


def _ld(logits, examples) -> float:
    a = torch.tensor([e.answers[0] for e in examples])
    w = torch.tensor([e.wrongs[0] for e in examples])
    return float((logits.gather(1, a[:, None]) - logits.gather(1, w[:, None])).double().mean())


@pytest.mark.parametrize("name", ["llama", "gptj", "pythia", "phi", "falcon"])
def test_sweeps_agree_with_plain_hooks(family_models, name):
    from circuitdsl import patching as P
    from circuitdsl.backends.loader import evict

    d = family_models(name)
    fam = BY_NAME[name]
    ds = _datasets()
    clean, corrupt = ds["D"].examples, ds["D2"].examples
    ct = torch.tensor([e.tokens for e in clean])
    xt = torch.tensor([e.tokens for e in corrupt])
    model = P.boot_model(d)
    try:
        hf = ref.load(d)
        heads = P.head_sweep(model, clean, corrupt, max_rows=8)
        assert heads.clean == pytest.approx(_ld(ref.logits(hf, ct)[:, -1], clean), abs=1e-4)
        for L, H in ((0, 1), (1, 3)):
            want = _ld(ref.patch_head(hf, fam, ct, xt, L, H)[:, -1], clean)
            assert heads.patched[L][H] == pytest.approx(want, abs=1e-4)
        path = P.path_sweep(model, clean, corrupt, P.parse_receiver("a1.0.k"), include_mlps=False)
        theirs = ref.patch_key_group(
            hf,
            fam,
            ct,
            xt,
            (0, 2),
            1,
            model.shape.kv_group(0),
            resid_scale=float(getattr(hf.config, "residual_multiplier", None) or 1.0),
        )
        assert path.patched[0][2] == pytest.approx(_ld(theirs[:, -1], clean), abs=1e-4)
        assert abs(path.patched[0][2] - path.clean) > 1e-3  # the edge matters
    finally:
        evict(d)
