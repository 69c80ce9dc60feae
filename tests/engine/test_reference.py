"""The fast engine (clean cache + single-block runs + row dedupe) agrees with the reference
(one full forward pass per treeified node) to 1e-5 relative."""

from __future__ import annotations

import pytest

from circuitdsl.ir import Ablation, AblationKind, Claim, Feature, FeatureKind
from common import engine, max_rel, setup
from helpers import EMBED, OUT, POS, e, head, hyp, mlp, qkv
from reference import reference_scrub  # benchmarks/reference.py (see conftest.py)

pytestmark = pytest.mark.engine

PARITY = Feature(FeatureKind.FIELD, ("parity",))
FIRST = Feature(FeatureKind.TOKEN_AT, ("first",))
NOTHING = Feature(FeatureKind.CONSTANT)


def hypotheses(model_dir, has_pos, has_mlp):
    emb = [EMBED] + ([POS] if has_pos else [])
    edges = [*[x for s in emb for x in qkv(s, head(0, 1))], *qkv(head(0, 1), head(1, 0)), e(EMBED, head(1, 0)), e(head(1, 0), OUT),
             e(head(0, 1), OUT), e(EMBED, OUT)]
    edges = [x for x in edges if not (x.receiver == head(1, 0) and x.sender == EMBED and x.port.value == "in")]
    edges += qkv(EMBED, head(1, 0))
    claims = [Claim(head(0, 1), PARITY), Claim(head(1, 0), FIRST, positions=("last",))]
    if has_mlp:
        edges += [e(head(1, 0), mlp(1)), e(head(0, 1), mlp(1)), e(mlp(1), OUT)]
        claims.append(Claim(mlp(1), NOTHING))
    return hyp(model_dir, claims, edges)


@pytest.mark.parametrize("ablation", [Ablation(), Ablation(AblationKind.RESAMPLE_FROM, "D2"), Ablation(AblationKind.PAIRED, "D2"),
                                      Ablation(AblationKind.MEAN), Ablation(AblationKind.ZERO)], ids=str)
@pytest.mark.parametrize("which", ["native_mlp", "hf_llama"])
def test_engine_agrees_with_reference(request, which, ablation):
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir, n=12, lengths=[5, 6])
    h = hypotheses(model_dir, b.has_pos, b.shape.has_mlp)
    fast = engine(b, dsets, ablation, batch_size=5).scrub(h)
    ref = reference_scrub(b, dsets, "D", h, ablation, h.seed)
    assert max_rel(fast.logits, ref) < 1e-5
