"""Hand-built hypotheses and datasets for engine tests (the compiler is tested elsewhere)."""

from __future__ import annotations

import random

from circuitdsl.datasets.core import Dataset, Example
from circuitdsl.ir import (
    Ablation,
    Claim,
    DatasetKind,
    DatasetSpec,
    EdgeId,
    Hypothesis,
    Metric,
    MetricKind,
    ModelRef,
    NodeId,
    NodeKind,
    Port,
    SearchBudget,
    make_graph,
)
from circuitdsl.models.shapes import resolve_shape

EMBED = NodeId(NodeKind.EMBED)
POS = NodeId(NodeKind.POS)
OUT = NodeId(NodeKind.OUT)


def head(L, H):
    return NodeId(NodeKind.HEAD, L, H)


def mlp(L):
    return NodeId(NodeKind.MLP, L)


def random_dataset(name, *, n, length, vocab, seed=0, n_wrong=True, lengths=None, fields=True) -> Dataset:
    rng = random.Random(seed)
    exs = []
    for i in range(n):
        ln = lengths[i % len(lengths)] if lengths else length
        toks = [rng.randrange(vocab) for _ in range(ln)]
        ans = rng.randrange(vocab)
        wrong = (ans + 1 + rng.randrange(vocab - 1)) % vocab
        exs.append(
            Example.make(
                toks,
                ans,
                wrongs=wrong if n_wrong else (),
                positions={"last": ln - 1, "first": 0},
                fields={"parity": toks[-1] % 2, "first_tok": toks[0]} if fields else None,
                id=f"{name}-{i:03d}",
            )
        )
    return Dataset(name, tuple(exs), field_names=("parity", "first_tok"), position_names=("first", "last"))


def hyp(
    model_dir,
    claims,
    edges,
    *,
    ablation=Ablation(),
    metric=MetricKind.LOGIT_DIFF,
    seed=0,
    expects=(),
    budget=SearchBudget(sizes=(1,), samples=2, greedy_steps=1),
    bootstrap=200,
    datasets=None,
    name="h",
) -> Hypothesis:
    resolved, shape = resolve_shape(str(model_dir))
    claims = tuple(claims)
    claimed = {c.node for c in claims}
    claims = claims + tuple(
        Claim(v) for e in edges for v in (e.sender, e.receiver) if v not in claimed and not claimed.add(v)
    )
    edges = tuple(sorted(set(edges), key=lambda e: (e.sender.sort_key(), e.receiver.sort_key(), e.port.value)))
    ds = datasets or (DatasetSpec("D", DatasetKind.GENERATOR, "test"),)
    return Hypothesis(
        name=name,
        source_path=None,
        source_text="",
        model=ModelRef(str(model_dir), resolved, shape),
        datasets=tuple(ds),
        main_dataset=ds[0].name,
        metric=Metric(metric),
        ablation=ablation,
        claims=claims,
        edges=edges,
        groups=(),
        expects=tuple(expects),
        budget=budget,
        seed=seed,
        bootstrap=bootstrap,
        graph=make_graph(claims, edges),
    )


def e(s, r, port=Port.IN):
    return EdgeId(s, r, port)


def qkv(s, r):
    return [EdgeId(s, r, p) for p in (Port.Q, Port.K, Port.V)]


__all__ = [n for n in dir() if not n.startswith("_")]
