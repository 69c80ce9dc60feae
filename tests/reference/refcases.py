"""Datasets, hypotheses and comparisons shared by the engine-vs-reference tests.

Datasets are built here (not by the engine's generators): two layouts (lengths 5 and 6), ids in an
order unrelated to dataset order (pools are ordered by id), a position naming two indices (`pair`, so
`token at pair` is a tuple), a float field whose equal values differ before rounding to 1e-9
(`score`: k/10 and k*0.1), and some examples scored at two positions.
"""

from __future__ import annotations

import random
from pathlib import Path

from circuitdsl.datasets.core import Dataset, Example
from circuitdsl.ir import (
    IDENTITY,
    Ablation,
    AblationKind,
    Claim,
    DatasetKind,
    DatasetSpec,
    Feature,
    FeatureKind,
    Hypothesis,
    Metric,
    MetricKind,
    ModelRef,
    NodeId,
    NodeKind,
    make_graph,
)
from circuitdsl.models.shapes import resolve_shape

__all__ = [
    "make_datasets",
    "build",
    "head",
    "mlp",
    "EMBED",
    "POS",
    "OUT",
    "FEATURES",
    "POSITIONS",
    "ABLATIONS",
    "per_example_rel",
    "describe",
    "agree",
    "NOTHING",
    "PARITY",
    "FIRST",
    "PAIR",
]

EMBED = NodeId(NodeKind.EMBED)
POS = NodeId(NodeKind.POS)
OUT = NodeId(NodeKind.OUT)
NOTHING = Feature(FeatureKind.CONSTANT)
PARITY = Feature(FeatureKind.FIELD, ("parity",))
FIRST = Feature(FeatureKind.TOKEN_AT, ("first",))
PAIR = Feature(FeatureKind.TOKEN_AT, ("pair",))

FEATURES = (
    IDENTITY,
    NOTHING,
    PARITY,
    Feature(FeatureKind.FIELD, ("score",)),
    Feature(FeatureKind.FIELD, ("first_tok",)),
    FIRST,
    Feature(FeatureKind.TOKEN_AT, ("last",)),
    PAIR,
    Feature(FeatureKind.TUPLE, (), (PARITY, FIRST)),
    Feature(FeatureKind.TUPLE, (), (NOTHING, Feature(FeatureKind.FIELD, ("score",)))),
    Feature(FeatureKind.FUNCTION, ("ref_features:last_mod3",)),
    Feature(FeatureKind.FUNCTION, ("ref_features:first_two",)),
)
POSITIONS = (None, None, None, ("last",), ("first", "last"), ("pair",), ("pair", "last"))
ABLATIONS = (
    Ablation(),
    Ablation(AblationKind.RESAMPLE_FROM, "D2"),
    Ablation(AblationKind.PAIRED, "D2"),
    Ablation(AblationKind.MEAN),
    Ablation(AblationKind.MEAN, "D2"),
    Ablation(AblationKind.ZERO),
)


def head(L: int, H: int) -> NodeId:
    return NodeId(NodeKind.HEAD, L, H)


def mlp(L: int) -> NodeId:
    return NodeId(NodeKind.MLP, L)


def _dataset(name: str, n: int, seed: int, vocab: int, lengths=(5, 6)) -> Dataset:
    rng = random.Random(f"{name}/{seed}")
    ids = rng.sample(range(10_000), n)
    exs = []
    for i in range(n):
        L = lengths[i % len(lengths)]
        toks = [rng.randrange(vocab) for _ in range(L)]
        two = i % 3 == 0
        scored = (L - 2, L - 1) if two else ()
        answers = [rng.randrange(vocab) for _ in range(2 if two else 1)]
        wrongs = [(a + 1 + rng.randrange(vocab - 1)) % vocab for a in answers]
        k = toks[1] % 4
        score = k * 0.1 if (i // 2) % 2 else k / 10  # 3 * 0.1 != 3 / 10 before rounding to 1e-9; both in each layout
        exs.append(
            Example.make(
                toks,
                answers,
                scored=scored,
                wrongs=wrongs,
                positions={"first": 0, "last": L - 1, "pair": [1, 2]},
                fields={"parity": toks[-1] % 2, "first_tok": toks[0], "score": score},
                id=f"{name}-{ids[i]:04d}",
            )
        )
    return Dataset(
        name, tuple(exs), field_names=("first_tok", "parity", "score"), position_names=("first", "last", "pair")
    )


def make_datasets(n: int = 12, seed: int = 0, vocab: int = 5) -> dict[str, Dataset]:
    """D and D2 (row i of D2 has row i of D's layout, for `paired`)."""
    return {"D": _dataset("D", n, seed, vocab), "D2": _dataset("D2", n, seed + 100, vocab)}


def build(
    model_dir: Path | str, claims, edges, *, ablation: Ablation = Ablation(), seed: int = 0, name: str = "h"
) -> Hypothesis:
    """A hypothesis on a model directory: every node an edge touches is claimed (feature input unless
    `claims` says otherwise)."""
    resolved, shape = resolve_shape(str(model_dir))
    claims = tuple(claims)
    have = {c.node for c in claims}
    for e in edges:
        for v in (e.sender, e.receiver):
            if v not in have:
                have.add(v)
                claims += (Claim(v),)
    edges = tuple(sorted(set(edges), key=lambda e: (e.sender.sort_key(), e.receiver.sort_key(), e.port.value)))
    specs = (DatasetSpec("D", DatasetKind.GENERATOR, "test"), DatasetSpec("D2", DatasetKind.GENERATOR, "test"))
    return Hypothesis(
        name=name,
        source_path=None,
        source_text="",
        model=ModelRef(str(model_dir), resolved, shape),
        datasets=specs,
        main_dataset="D",
        metric=Metric(MetricKind.LOGIT_DIFF),
        ablation=ablation,
        claims=claims,
        edges=edges,
        groups=(),
        expects=(),
        seed=seed,
        graph=make_graph(claims, edges),
    )


def per_example_rel(a, b, scale=None) -> list[float]:
    """Per example: max |a - b| over its logits, relative to the largest |b| of that example, or to the
    largest of the example's `scale` logits (its clean logits) when that is larger: logits that are all
    ~0 (a bias-only residual into a final norm) are then compared at the model's scale, not at float noise."""
    out = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        x, y = x.double(), y.double()
        den = float(y.abs().max())
        if scale is not None:
            den = max(den, float(scale[i].double().abs().max()))
        out.append(float((x - y).abs().max()) / max(den, 1e-9))
    return out


def describe(h: Hypothesis) -> str:
    """The hypothesis as `.circuit`-like lines, for failure messages."""
    lines = [f"ablate unclaimed by {h.ablation}", f"set seed = {h.seed}"]
    if getattr(getattr(h, "treeify", None), "shared_draws", False):
        lines.append("set treeify.shared_draws = true")
    for c in h.claims:
        at = f" at {', '.join(c.positions)}" if c.positions else ""
        lines.append(f"node {c.node.name}{at} depends on {c.feature}")
    for e in h.edges:
        lines.append(f"edge {e.sender.name} -> {e.receiver.name}.{e.port.value}")
    return "\n".join(lines)


def agree(fast, ref, tol: float = 1e-5, scale=None) -> tuple[bool, str]:
    """Whether the engine's logits equal the reference's per example to `tol` relative (see per_example_rel)."""
    rel = per_example_rel(fast, ref, scale)
    worst = max(range(len(rel)), key=rel.__getitem__)
    return (
        rel[worst] < tol,
        f"worst example {worst}: relative difference {rel[worst]:.3e}; {sum(r >= tol for r in rel)}/{len(rel)} examples differ",
    )
