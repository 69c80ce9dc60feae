from __future__ import annotations

import torch
from helpers import hyp, random_dataset

from circuitdsl.backends.loader import load_backend
from circuitdsl.engine.scrub import Engine


def setup(model_dir, *, n=10, length=6, seed=0, lengths=None):
    h0 = hyp(model_dir, [], [])
    b = load_backend(h0.model)
    vocab = min(b.shape.vocab_size or 16, 500)
    ds = random_dataset("D", n=n, length=length, vocab=vocab, seed=seed, lengths=lengths)
    d2 = random_dataset("D2", n=n, length=length, vocab=vocab, seed=seed + 100, lengths=lengths)
    return h0, b, {"D": ds, "D2": d2}


def engine(b, dsets, ablation, **kw):
    return Engine(b, dsets, "D", ablation, **kw)


def max_rel(a, b):
    num = max(float((x.double() - y.double()).abs().max()) for x, y in zip(a, b))
    den = max(float(y.double().abs().max()) for y in b)
    return num / max(den, 1e-12)


def model_logits(b, ds, rows=None):
    """Clean logits at scored positions by plain forward passes (no engine)."""
    rows = rows if rows is not None else list(range(len(ds)))
    out = []
    with torch.no_grad():
        for i in rows:
            e = ds.examples[i]
            lg = b.model(b.tokens([e.tokens]))[0]
            out.append(lg[list(ds.examples[i].scored_positions if False else e.scored_positions)])
    return out
