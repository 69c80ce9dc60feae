"""A model whose mechanism is known by construction: head a0.0 copies the previous token; a0.1 is noise.
The right hypothesis recovers the model; one that drops a0.0 scores clearly lower. Also: hooks are removed
after an exception inside a scrub."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from _models import write_native
from helpers import EMBED, OUT, POS, e, head, hyp

from circuitdsl.backends.loader import load_backend
from circuitdsl.datasets.core import Dataset, Example
from circuitdsl.engine import derive
from circuitdsl.engine.metrics import metric_values
from circuitdsl.engine.scrub import Engine
from circuitdsl.ir import Ablation, AblationKind, Claim, Feature, FeatureKind, MetricKind, Port

pytestmark = pytest.mark.engine

V, NCTX = 8, 8


@pytest.fixture(scope="module")
def prev_token_model(tmp_path_factory):
    d_model = 2 * V + NCTX
    dh = max(V, NCTX)
    rng = np.random.default_rng(0)
    w = {"embed.W_E": np.zeros((V, d_model)), "pos_embed.W_pos": np.zeros((NCTX, d_model))}
    w["embed.W_E"][:, :V] = np.eye(V)
    w["pos_embed.W_pos"][:, V : V + NCTX] = np.eye(NCTX)
    WQ, WK, WV, WO = (
        (np.zeros((2, d_model, dh)) for _ in range(3)) + (np.zeros((2, dh, d_model)),)
        if False
        else (
            np.zeros((2, d_model, dh)),
            np.zeros((2, d_model, dh)),
            np.zeros((2, d_model, dh)),
            np.zeros((2, dh, d_model)),
        )
    )
    for p in range(NCTX):
        WQ[0, V + p, p] = 30.0  # query: my position
        if p + 1 < NCTX:
            WK[0, V + p, p + 1] = 30.0  # key: position + 1  -> position p+1 attends to p
    WV[0, :V, :V] = np.eye(V)  # value: the token
    WO[0, :V, V + NCTX :] = np.eye(V)  # write it to the "previous token" subspace
    WQ[1] = rng.standard_normal((d_model, dh)) * 0.3
    WK[1] = rng.standard_normal((d_model, dh)) * 0.3
    WV[1] = rng.standard_normal((d_model, dh)) * 0.3
    WO[1] = rng.standard_normal((dh, d_model)) * 0.1
    w["blocks.0.attn.W_Q"], w["blocks.0.attn.W_K"], w["blocks.0.attn.W_V"], w["blocks.0.attn.W_O"] = WQ, WK, WV, WO
    for k in ("b_Q", "b_K", "b_V"):
        w[f"blocks.0.attn.{k}"] = np.zeros((2, dh))
    w["blocks.0.attn.b_O"] = np.zeros(d_model)
    w["unembed.W_U"] = np.zeros((d_model, V))
    w["unembed.W_U"][V + NCTX :, :] = 5 * np.eye(V)
    w["unembed.b_U"] = np.zeros(V)
    cfg = dict(
        n_layers=1,
        n_heads=2,
        d_model=d_model,
        d_head=dh,
        d_mlp=None,
        act_fn=None,
        attention="causal",
        positional="learned",
        n_ctx=NCTX,
        d_vocab=V,
        d_vocab_out=V,
        description="previous-token copier",
    )
    return write_native(tmp_path_factory.mktemp("prev"), cfg, w)


def _dataset(n=24, length=6):
    rng = random.Random(3)
    exs = []
    for i in range(n):
        toks = [rng.randrange(V) for _ in range(length)]
        ans = toks[-2]
        wrong = (ans + 1) % V
        exs.append(
            Example.make(
                toks,
                ans,
                wrongs=wrong,
                positions={"last": length - 1, "prev": length - 2},
                fields={"prev_tok": ans},
                id=f"p{i:02d}",
            )
        )
    return Dataset("D", tuple(exs), ("prev_tok",), ("last", "prev"))


def _f(eng, h, ds, clean):
    return float(metric_values(MetricKind.LOGIT_DIFF, eng.scrub(h).logits, ds.examples, clean).mean())


def test_wrong_hypothesis_scores_lower(prev_token_model):
    ds = _dataset()
    right = hyp(
        prev_token_model,
        [Claim(head(0, 0), Feature(FeatureKind.TOKEN_AT, ("prev",)))],
        [e(EMBED, head(0, 0), Port.V), e(POS, head(0, 0), Port.Q), e(POS, head(0, 0), Port.K), e(head(0, 0), OUT)],
    )
    wrong = hyp(
        prev_token_model,
        [Claim(head(0, 1))],
        [e(EMBED, head(0, 1), Port.V), e(POS, head(0, 1), Port.Q), e(POS, head(0, 1), Port.K), e(head(0, 1), OUT)],
    )
    b = load_backend(right.model)
    eng = Engine(b, {"D": ds}, "D", Ablation(), seed=0)
    clean = eng.clean_logits()
    f_model = float(metric_values(MetricKind.LOGIT_DIFF, clean, ds.examples, clean).mean())
    f_base = _f(eng, derive.empty(right), ds, clean)
    rec_right = (_f(eng, right, ds, clean) - f_base) / (f_model - f_base)
    rec_wrong = (_f(eng, wrong, ds, clean) - f_base) / (f_model - f_base)
    assert f_model > 3.0  # the copier works
    assert rec_right > 0.95
    assert rec_wrong < 0.3
    # a feature the head does not compute (the first token) breaks the right graph too
    bad_feature = hyp(prev_token_model, [Claim(head(0, 0), Feature(FeatureKind.TOKEN_AT, ("last",)))], right.edges)
    assert (_f(eng, bad_feature, ds, clean) - f_base) / (f_model - f_base) < 0.5


def test_hooks_removed_after_an_error(prev_token_model, monkeypatch):
    ds = _dataset(8)
    h = hyp(prev_token_model, [], [e(EMBED, head(0, 0), Port.V), e(head(0, 0), OUT)])
    b = load_backend(h.model)
    eng = Engine(b, {"D": ds}, "D", Ablation(AblationKind.ZERO))
    before = eng.clean_logits()

    def boom(*a, **k):
        raise RuntimeError("boom inside the block")

    monkeypatch.setattr(b.model.blocks[0].attn, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        eng.scrub(h)
    monkeypatch.undo()
    assert all(len(hp._forward_hooks) == 0 for hp in b.model.hook_dict.values())
    with torch.no_grad():
        after = b.model(b.tokens([x.tokens for x in ds.examples]))
    for i, x in enumerate(ds.examples):
        assert torch.equal(after[i, list(x.scored_positions)], before[i])
