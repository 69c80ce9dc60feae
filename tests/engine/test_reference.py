"""The fast engine (clean cache + single-block runs + row dedupe) agrees per example, to 1e-5 relative,
with the independent reference (tests/reference/refscrub.py: written from SEMANTICS.md alone, one full
forward pass per treeified node). Random hypotheses: tests/properties/test_engine_vs_reference.py."""

from __future__ import annotations

import pytest
import refscrub  # tests/reference/refscrub.py (see conftest.py)
from common import engine, setup
from helpers import EMBED, OUT, POS, e, head, hyp, mlp, qkv

from circuitdsl.ir import Ablation, AblationKind, Claim, Feature, FeatureKind

pytestmark = pytest.mark.engine

PARITY = Feature(FeatureKind.FIELD, ("parity",))
FIRST = Feature(FeatureKind.TOKEN_AT, ("first",))
NOTHING = Feature(FeatureKind.CONSTANT)


def hypotheses(model_dir, has_pos, has_mlp):
    emb = [EMBED] + ([POS] if has_pos else [])
    edges = [
        *[x for s in emb for x in qkv(s, head(0, 1))],
        *qkv(head(0, 1), head(1, 0)),
        e(EMBED, head(1, 0)),
        e(head(1, 0), OUT),
        e(head(0, 1), OUT),
        e(EMBED, OUT),
    ]
    edges = [x for x in edges if not (x.receiver == head(1, 0) and x.sender == EMBED and x.port.value == "in")]
    edges += qkv(EMBED, head(1, 0))
    claims = [Claim(head(0, 1), PARITY), Claim(head(1, 0), FIRST, positions=("last",))]
    if has_mlp:
        edges += [e(head(1, 0), mlp(1)), e(head(0, 1), mlp(1)), e(mlp(1), OUT)]
        claims.append(Claim(mlp(1), NOTHING))
    return hyp(model_dir, claims, edges)


@pytest.mark.parametrize(
    "ablation",
    [
        Ablation(),
        Ablation(AblationKind.RESAMPLE_FROM, "D2"),
        Ablation(AblationKind.PAIRED, "D2"),
        Ablation(AblationKind.MEAN),
        Ablation(AblationKind.MEAN, "D2"),
        Ablation(AblationKind.ZERO),
    ],
    ids=str,
)
@pytest.mark.parametrize("which", ["native_mlp", "hf_llama"])
def test_engine_agrees_with_reference(request, which, ablation):
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir, n=12, lengths=[5, 6])
    h = hypotheses(model_dir, b.has_pos, b.shape.has_mlp)
    fast = engine(b, dsets, ablation, batch_size=5, seed=h.seed).scrub(h)
    ref = refscrub.reference_scrub(b.model, dsets, "D", h, ablation=ablation, seed=h.seed)
    for i, (x, y) in enumerate(zip(fast.logits, ref, strict=True)):
        rel = float((x.double() - y.double()).abs().max()) / max(float(y.double().abs().max()), 1e-9)
        assert rel < 1e-5, f"example {i}: engine and reference differ by {rel:.2e} relative"
