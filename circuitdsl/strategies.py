"""hypothesis strategies for circuitdsl: inputs from dataset families, hypothesis variants, `.circuit` sources.

Every strategy is a small public function with keyword-only options, validated when the strategy is
built: a bad option raises ValueError/TypeError naming the option and the value. No torch here.

Inputs (circuitdsl.datasets.core.Example, shaped exactly like the registered generators' rows, so a
hypothesis about the generator's dataset applies to them):
  induction_examples, repeat_examples   random-token induction inputs (the tiny model: tokenizer None)
  ioi_prompts                           IOI prompts from the templates and name pools (pass a tokenizer)
  generator_examples                    rows of any registered generator under other seeds
  jsonl_rows                            rows sampled from a JSONL dataset file
  family_examples                       the family of a hypothesis' main dataset (used by `falsify`)
  family_pairs                          (x, x') pairs from the family of a `paired` hypothesis' two datasets
Hypothesis variants (ir.Hypothesis -> ir.Hypothesis, every claimed path still runs embed -> out):
  drop_node, drop_edge, add_edge, coarsen_feature, variants
Sources: circuit_sources (from the grammar with hypothesis.extra.lark.from_lark).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
from hypothesis import strategies as st

from circuitdsl.datasets.core import Example
from circuitdsl.ir import (
    IDENTITY,
    Claim,
    DatasetKind,
    EdgeId,
    Feature,
    FeatureKind,
    Hypothesis,
    NodeId,
    NodeKind,
    Port,
    make_graph,
)

__all__ = [
    "induction_examples",
    "repeat_examples",
    "ioi_prompts",
    "generator_examples",
    "jsonl_rows",
    "family_examples",
    "family_pairs",
    "drop_node",
    "drop_edge",
    "add_edge",
    "coarsen_feature",
    "variants",
    "coarser_features",
    "circuit_sources",
]


# ---- argument validation ------------------------------------------------------------------------
def _int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be {'>= ' + str(lo) if hi is None else f'between {lo} and {hi}'}, got {value!r}")
    return value


def _hyp(h: Any) -> Hypothesis:
    if not isinstance(h, Hypothesis):
        raise TypeError(f"expected a compiled circuitdsl.ir.Hypothesis, got {type(h).__name__}: {h!r:.80}")
    return h


# ---- inputs -------------------------------------------------------------------------------------
def _vocab_ids(name: str, tokenizer: Any, vocab: int, length: int) -> tuple[int, ...]:
    from circuitdsl.datasets import induction as ind

    if tokenizer is None:
        _int("vocab", vocab, 4, ind.TINY_VOCAB)
        if length > ind.TINY_N_CTX:
            raise ValueError(
                f"length: sequences of {length} tokens are longer than the tiny model's context ({ind.TINY_N_CTX})"
            )
        return tuple(range(vocab))
    if not hasattr(tokenizer, "encode"):
        raise TypeError(f"tokenizer must have encode(text) -> list[int], got {tokenizer!r:.80}")
    pool = ind.word_pool(tokenizer)
    _int("vocab", vocab, 4, len(pool))
    return tuple(i for i, _ in pool[:vocab])


def induction_examples(
    *, length: int = 16, vocab: int = 48, a1_positions: tuple[int, ...] | None = None, tokenizer: Any = None
) -> st.SearchStrategy[Example]:
    """`... A B C ... A` -> B, as the `induction` generator builds them (same fields and positions).

    a1_positions: the indices A1 may take (each is one layout); default every valid index."""
    _int("length", length, 5)
    ids = _vocab_ids("induction", tokenizer, vocab, length)
    valid = tuple(range(0, length - 3))
    if a1_positions is None:
        a1_positions = valid
    if not isinstance(a1_positions, tuple | list) or not a1_positions:
        raise ValueError(f"a1_positions must be a non-empty tuple of ints, got {a1_positions!r}")
    for p in a1_positions:
        if isinstance(p, bool) or not isinstance(p, int) or p not in valid:
            raise ValueError(f"a1_positions: {p!r} is not a valid A1 index for length {length} (0..{length - 4})")
    positions = tuple(a1_positions)

    @st.composite
    def build(draw):
        a1 = draw(st.sampled_from(positions))
        a, b = draw(st.lists(st.sampled_from(ids), min_size=2, max_size=2, unique=True))
        filler = [t for t in ids if t not in (a, b)]
        toks = draw(st.lists(st.sampled_from(filler), min_size=length, max_size=length))
        b1, c1, a2 = a1 + 1, a1 + 2, length - 1
        toks[a1], toks[b1], toks[a2] = a, b, a
        return Example.make(
            toks,
            b,
            wrongs=toks[c1],
            positions={"A1": a1, "B1": b1, "C1": c1, "prev": a2 - 1, "A2": a2, "end": a2},
            fields={"A": a, "B": b, "wrong": toks[c1]},
            text=None if tokenizer is None else tokenizer.decode(list(toks)),
        )

    return build()


def repeat_examples(*, length: int = 8, vocab: int = 48, tokenizer: Any = None) -> st.SearchStrategy[Example]:
    """A sequence of `length` distinct tokens repeated twice, as the `repeat` generator builds them."""
    _int("length", length, 2)
    ids = _vocab_ids("repeat", tokenizer, vocab, 2 * length)
    if length > len(ids):
        raise ValueError(f"length = {length} needs {length} distinct tokens but vocab has {len(ids)}")

    def make(half: list[int]) -> Example:
        toks = half + half
        scored = list(range(length, 2 * length - 1))
        return Example.make(
            toks,
            [toks[p + 1] for p in scored],
            scored=scored,
            wrongs=[toks[p] for p in scored],
            positions={
                "first_half": list(range(length)),
                "second_half": list(range(length, 2 * length)),
                "end": 2 * length - 1,
            },
            fields={"half": tuple(half)},
            text=None if tokenizer is None else tokenizer.decode(toks),
        )

    return st.lists(st.sampled_from(ids), min_size=length, max_size=length, unique=True).map(make)


def ioi_prompts(
    *,
    tokenizer: Any,
    templates: tuple[int, ...] | int = 1,
    order: str = "mixed",
    names: int = 0,
    corrupted: bool = False,
) -> st.SearchStrategy[Example]:
    """IOI prompts built from the `ioi` generator's templates and name/place/object pools.

    templates: a count k (the first k templates) or a tuple of template indices; order "mixed", "ABBA"
    or "BABA"; names: 0 for every single-token name, else the first `names` names; corrupted: build the
    ABC version (three other names in the IO, S1 and S2 slots; answers stay the clean IO and S)."""
    from circuitdsl.datasets import ioi

    rows = _ioi_rows(tokenizer, templates, order, names, names if corrupted else None, min_names=6 if corrupted else 3)
    return rows.map(lambda r: ioi.prompt(tokenizer, **r[0], abc=r[1]))


def _ioi_rows(
    tokenizer: Any, templates: Any, order: str, names: int, abc_names: int | None, *, min_names: int | None = None
) -> st.SearchStrategy[tuple[dict[str, Any], tuple[str, str, str] | None]]:
    """(keyword arguments of `datasets.ioi.prompt` for one drawn prompt, its ABC names or None): template,
    order, IO and S (from the first `names` names), place, object, then, when abc_names is not None, three
    other names from the first `abc_names` names. Arguments are validated as `ioi_prompts` documents
    (`names` against min_names when given)."""
    from circuitdsl.datasets import ioi

    if tokenizer is None or not hasattr(tokenizer, "encode") or not hasattr(tokenizer, "decode"):
        raise TypeError(f"tokenizer must have encode(text) and decode(ids), got {tokenizer!r:.80}")
    count = len(ioi.BABA_TEMPLATES)
    if isinstance(templates, int) and not isinstance(templates, bool):
        _int("templates", templates, 1, count)
        chosen = tuple(range(templates))
    elif isinstance(templates, tuple | list) and templates:
        for t in templates:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < count:
                raise ValueError(f"templates: {t!r} is not a template index (0..{count - 1})")
        chosen = tuple(templates)
    else:
        raise ValueError(f"templates must be a count or a non-empty tuple of indices, got {templates!r}")
    if order not in ("mixed", "ABBA", "BABA"):
        raise ValueError(f'order must be "mixed", "ABBA" or "BABA", got {order!r}')
    if min_names is not None and (
        isinstance(names, bool) or not isinstance(names, int) or names < 0 or 0 < names < min_names
    ):
        raise ValueError(f"names must be 0 (all) or at least {min_names}, got {names!r}")
    pool, places, objects = ioi.vocabulary(tokenizer, names)
    abc_pool = None if abc_names is None else ioi.vocabulary(tokenizer, abc_names)[0]
    orders = ("ABBA", "BABA") if order == "mixed" else (order,)

    @st.composite
    def build(draw):
        t = draw(st.sampled_from(chosen))
        o = draw(st.sampled_from(orders))
        io, s = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2, unique=True))
        place, obj = draw(st.sampled_from(places)), draw(st.sampled_from(objects))
        abc = None
        if abc_pool is not None:
            others = [x for x in abc_pool if x not in (io, s)]
            if len(others) < 3:
                raise ValueError(f"fewer than 3 names besides the IO ({io}) and S ({s}) for the ABC corruption")
            abc = tuple(draw(st.lists(st.sampled_from(others), min_size=3, max_size=3, unique=True)))
        return {"template": t, "order": o, "io": io, "s": s, "place": place, "object": obj}, abc

    return build()


@functools.lru_cache(maxsize=64)
def _generated(name: str, tokenizer: Any, args: tuple, seed: int, n: int) -> tuple[Example, ...]:
    from circuitdsl.datasets import registry

    return registry.build(name, tokenizer, {**dict(args), "seed": seed, "n": n}).examples


def generator_examples(
    name: str, *, tokenizer: Any = None, params: dict[str, Any] | None = None, max_seed: int = 2**16, rows: int = 8
) -> st.SearchStrategy[Example]:
    """Rows of a registered generator run with other seeds: draws a seed in 0..max_seed and one of the
    first `rows` rows (the generator's other parameters from `params`, else its defaults)."""
    from circuitdsl.datasets import registry

    info = registry.get(name) if isinstance(name, str) else None
    if info is None:
        raise ValueError(f"unknown dataset generator {name!r}; registered: {', '.join(registry.names())}")
    params = dict(params or {})
    known = dict(info.params)
    for k in params:
        if k not in known:
            raise ValueError(f"generator {name!r} has no parameter {k!r}; it takes {', '.join(sorted(known))}")
    _int("max_seed", max_seed, 0)
    _int("rows", rows, 1)
    if "seed" not in known or "n" not in known:
        raise ValueError(f"generator {name!r} takes no `seed`/`n`: it cannot be sampled")
    args = tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k not in ("seed", "n"))
    )
    try:
        hash((tokenizer, args))
        fetch: Callable[..., tuple[Example, ...]] = _generated
    except TypeError:
        fetch = _generated.__wrapped__
    return st.builds(
        lambda seed, i: fetch(name, tokenizer, args, seed, rows)[i],
        st.integers(0, max_seed),
        st.integers(0, rows - 1),
    )


def jsonl_rows(path: str | Path, *, tokenizer: Any = None, vocab_size: int | None = None) -> st.SearchStrategy[Example]:
    """Rows sampled from a JSONL dataset file (docs/DATASETS.md), loaded and validated once."""
    from circuitdsl.datasets import jsonl

    if not isinstance(path, str | Path):
        raise TypeError(f"path must be a str or Path, got {path!r}")
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"path {str(p)!r} is not a readable JSONL file")
    ds = jsonl.load(p, tokenizer, p.stem, vocab_size=vocab_size)
    if not len(ds):
        raise ValueError(f"path {str(p)!r} holds no rows")
    return st.sampled_from(ds.examples)


def family_examples(h: Hypothesis, *, tokenizer: Any = None) -> st.SearchStrategy[Example]:
    """Inputs from the family of `h`'s main dataset: for `induction`, `repeat` and `ioi`, structured
    inputs with the dataset's length and layouts (they shrink toward small tokens and simple prompts);
    for any other generator, its rows under other seeds; for a JSONL file, its rows."""
    from circuitdsl.datasets import induction as ind
    from circuitdsl.datasets import registry

    h = _hyp(h)
    spec = h.dataset(h.main_dataset)
    if spec.kind is DatasetKind.FILE:
        return jsonl_rows(spec.source, tokenizer=tokenizer)
    info = registry.get(spec.source)
    if info is None:
        raise ValueError(f"unknown dataset generator {spec.source!r} for dataset {spec.name!r}")
    args = {**dict(info.params), **dict(spec.args)}
    if spec.source == "induction":
        a1 = ind._a1_positions(args["length"], args["layouts"], args["a1"])
        return induction_examples(
            length=args["length"], vocab=args["vocab"], a1_positions=tuple(a1), tokenizer=tokenizer
        )
    if spec.source == "repeat":
        return repeat_examples(length=args["length"], vocab=args["vocab"], tokenizer=tokenizer)
    if spec.source in ("ioi", "ioi_abc"):
        t = args["templates"]
        t = tuple(range(16)) if t == "all" else t
        return ioi_prompts(
            tokenizer=tokenizer,
            templates=t,
            order=args["order"],
            names=args["names"],
            corrupted=spec.source == "ioi_abc",
        )
    return generator_examples(
        spec.source, tokenizer=tokenizer, params={k: v for k, v in args.items() if k not in ("n", "seed")}
    )


def _gen_args(spec) -> dict[str, Any]:
    from circuitdsl.datasets import registry

    info = registry.get(spec.source)
    if info is None:
        raise ValueError(f"unknown dataset generator {spec.source!r} for dataset {spec.name!r}")
    return {**dict(info.params), **dict(spec.args)}


def _frozen_args(args: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in args.items() if k not in ("seed", "n")))


def _rows_of(spec, tokenizer: Any) -> tuple[Example, ...]:
    """The rows of one of the file's datasets, as the file declares it (no torch)."""
    if spec.kind is DatasetKind.FILE:
        from circuitdsl.datasets import jsonl

        return jsonl.load(Path(spec.source), tokenizer, spec.name).examples
    from circuitdsl.datasets import registry

    return registry.build(spec.source, tokenizer, dict(spec.args), spec.name).examples


def _same_layout(pair: tuple[Example, Example]) -> bool:
    return pair[0].layout == pair[1].layout


def family_pairs(
    h: Hypothesis, *, tokenizer: Any = None, max_seed: int = 2**16
) -> st.SearchStrategy[tuple[Example, Example]]:
    """(x, x') pairs for a hypothesis with `ablate unclaimed by paired D2`: x from the family of its main
    dataset D, x' its paired row (the corruption of x), always of x's layout.

    - D = ioi(...), D2 = ioi_abc(...): one drawn prompt (template, order, IO, S, place, object; D's
      arguments) and three other names (from D2's name pool) for its ABC corruption; shrinks toward
      the first template, names, places and objects.
    - two registered generators taking `seed` and `n`: a seed offset k and a row j; both datasets are
      generated with the file's arguments (their own `n`) and their seeds shifted by k, and row j of each
      is returned (the file's two datasets pair row by row; shifting both seeds alike keeps that).
    - anything else (JSONL files, generators without a seed): row j of both datasets as the file declares them.
    """
    from circuitdsl.ir import AblationKind

    h = _hyp(h)
    _int("max_seed", max_seed, 0)
    if h.ablation.kind is not AblationKind.PAIRED or not h.ablation.dataset:
        raise ValueError(
            f"hypothesis {h.name!r} does not use `ablate unclaimed by paired D2` (it uses {h.ablation}): "
            "use family_examples"
        )
    d1, d2 = h.dataset(h.main_dataset), h.dataset(h.ablation.dataset)
    gen = DatasetKind.GENERATOR
    if d1.kind is gen and d2.kind is gen and (d1.source, d2.source) == ("ioi", "ioi_abc"):
        from circuitdsl.datasets import ioi

        a1, a2 = _gen_args(d1), _gen_args(d2)
        t = a1["templates"]
        ioi_rows = _ioi_rows(
            tokenizer, tuple(range(len(ioi.BABA_TEMPLATES))) if t == "all" else t, a1["order"], a1["names"], a2["names"]
        )
        return ioi_rows.map(lambda r: (ioi.prompt(tokenizer, **r[0]), ioi.prompt(tokenizer, **r[0], abc=r[1]))).filter(
            _same_layout
        )
    if d1.kind is gen and d2.kind is gen:
        from circuitdsl.datasets import registry

        i1, i2 = registry.get(d1.source), registry.get(d2.source)
        if (
            i1 is not None
            and i2 is not None
            and {"seed", "n"} <= set(dict(i1.params))
            and {"seed", "n"} <= set(dict(i2.params))
        ):
            a1, a2 = _gen_args(d1), _gen_args(d2)
            rows = min(int(a1["n"]), int(a2["n"]))
            f1, f2 = _frozen_args(a1), _frozen_args(a2)
            try:
                hash((tokenizer, f1, f2))
                fetch: Callable[..., tuple[Example, ...]] = _generated
            except TypeError:
                fetch = _generated.__wrapped__

            def pair(k: int, j: int) -> tuple[Example, Example]:
                x = fetch(d1.source, tokenizer, f1, int(a1["seed"]) + k, int(a1["n"]))
                y = fetch(d2.source, tokenizer, f2, int(a2["seed"]) + k, int(a2["n"]))
                return x[j], y[j]

            return st.builds(pair, st.integers(0, max_seed), st.integers(0, rows - 1)).filter(_same_layout)
    r1, r2 = _rows_of(d1, tokenizer), _rows_of(d2, tokenizer)
    pairs = [(x, y) for x, y in zip(r1, r2) if x.layout == y.layout]
    if not pairs:
        raise ValueError(f"no row of {d1.name!r} has the layout of the same row of {d2.name!r}")
    return st.sampled_from(pairs)


# ---- hypothesis variants ------------------------------------------------------------------------
_EMBEDS = (NodeKind.EMBED, NodeKind.POS)
_OUT = NodeId(NodeKind.OUT)


def _rebuild(h: Hypothesis, claims: list[Claim], edges: list[EdgeId], label: str) -> Hypothesis:
    """Keep only nodes on a claimed path embedding -> out (and out), so the variant stays valid."""
    g = nx.DiGraph()
    g.add_nodes_from(c.node for c in claims)
    g.add_edges_from((e.sender, e.receiver) for e in edges)
    keep = {_OUT}
    if _OUT in g:
        to_out = nx.ancestors(g, _OUT) | {_OUT}
        from_embed = set()
        for v in g:
            if v.kind in _EMBEDS:
                from_embed |= nx.descendants(g, v) | {v}
        keep = (to_out & from_embed) | {_OUT}
    claims = [c for c in claims if c.node in keep]
    edges = sorted({e for e in edges if e.sender in keep and e.receiver in keep})
    claims_t = tuple(sorted(claims, key=lambda c: c.node.sort_key()))
    return dataclasses.replace(
        h, name=f"{h.name} [{label}]", claims=claims_t, edges=tuple(edges), graph=make_graph(claims_t, tuple(edges))
    )


def drop_node(h: Hypothesis) -> st.SearchStrategy[Hypothesis]:
    """`h` without one claimed node (not `out`) and its edges; nodes left off every embed -> out path go too."""
    h = _hyp(h)
    nodes = [c.node for c in h.claims if c.node != _OUT]
    if not nodes:
        raise ValueError(f"hypothesis {h.name!r} claims no node besides out: nothing to drop")
    return st.sampled_from(sorted(nodes)).map(
        lambda v: _rebuild(
            h,
            [c for c in h.claims if c.node != v],
            [e for e in h.edges if v not in (e.sender, e.receiver)],
            f"- {v.name}",
        )
    )


def drop_edge(h: Hypothesis) -> st.SearchStrategy[Hypothesis]:
    """`h` without one claimed edge; nodes left off every embed -> out path go too."""
    h = _hyp(h)
    if not h.edges:
        raise ValueError(f"hypothesis {h.name!r} claims no edge: nothing to drop")
    return st.sampled_from(h.edges).map(lambda x: _rebuild(h, list(h.claims), [e for e in h.edges if e != x], f"- {x}"))


def _addable(h: Hypothesis) -> list[EdgeId]:
    from circuitdsl.engine.derive import upstream  # numpy/networkx only (derive imports no torch)

    shape = h.model.shape
    g = h.graph
    claimed = set(h.claimed_nodes)
    senders = {
        v for v in claimed if v.kind in _EMBEDS or any(nx.has_path(g, u, v) for u in claimed if u.kind in _EMBEDS)
    }
    senders |= {NodeId(NodeKind.EMBED)} | ({NodeId(NodeKind.POS)} if shape.pos_embed == "learned" else set())
    receivers = [v for v in claimed if v.kind not in _EMBEDS and (v == _OUT or nx.has_path(g, v, _OUT))]
    have = set(h.edges)
    out = []
    for r in sorted(receivers):
        ups = set(upstream(r, shape))
        ports = (Port.Q, Port.K, Port.V) if r.kind is NodeKind.HEAD else (Port.IN,)
        for s in sorted(senders):
            if s in ups:
                out += [EdgeId(s, r, p) for p in ports if EdgeId(s, r, p) not in have]
    return out


def add_edge(h: Hypothesis) -> st.SearchStrategy[Hypothesis]:
    """`h` with one more claimed edge from a node reachable from an embedding (or an embedding) into a
    port of a node that reaches `out` (a newly claimed embedding gets the identity feature)."""
    h = _hyp(h)
    cands = _addable(h)
    if not cands:
        raise ValueError(f"hypothesis {h.name!r} has no forward edge left to add")

    def add(e: EdgeId) -> Hypothesis:
        claims = list(h.claims)
        if h.claim(e.sender) is None:
            claims.append(Claim(e.sender, IDENTITY))
        return _rebuild(h, claims, list(h.edges) + [e], f"+ {e}")

    return st.sampled_from(cands).map(add)


def coarser_features(feature: Feature, *, fields: tuple[str, ...] = ()) -> tuple[Feature, ...]:
    """Features whose equivalence classes are unions of `feature`'s classes (each is a function of it):
    identity -> any field of `fields` or nothing; a tuple -> each sub-tuple with one part left out (or
    that part coarsened); anything else -> nothing."""
    if not isinstance(feature, Feature):
        raise TypeError(f"feature must be an ir.Feature, got {feature!r}")
    nothing = Feature(FeatureKind.CONSTANT)
    k = feature.kind
    if k is FeatureKind.CONSTANT:
        return ()
    if k is FeatureKind.IDENTITY:
        return tuple(Feature(FeatureKind.FIELD, (f,)) for f in fields) + (nothing,)
    if k is FeatureKind.TUPLE:
        out: list[Feature] = []
        for i, _p in enumerate(feature.parts):
            rest = feature.parts[:i] + feature.parts[i + 1 :]
            out.append(rest[0] if len(rest) == 1 else Feature(FeatureKind.TUPLE, parts=rest) if rest else nothing)
        out.append(nothing)
        return tuple(dict.fromkeys(out))
    return (nothing,)


def _fields_of(h: Hypothesis) -> tuple[str, ...]:
    from circuitdsl.datasets import registry

    spec = h.dataset(h.main_dataset)
    if spec.kind is DatasetKind.GENERATOR:
        info = registry.get(spec.source)
        return info.fields if info else ()
    from circuitdsl.datasets import jsonl

    try:
        return jsonl.read_schema(Path(spec.source))[0]
    except Exception:  # an unreadable file: coarsen to `nothing` only
        return ()


def coarsen_feature(h: Hypothesis) -> st.SearchStrategy[Hypothesis]:
    """`h` with one claimed node's feature replaced by a coarser one (see `coarser_features`)."""
    h = _hyp(h)
    fields = _fields_of(h)
    cands = [(c, f) for c in h.claims if c.node != _OUT for f in coarser_features(c.feature, fields=fields)]
    if not cands:
        raise ValueError(f"hypothesis {h.name!r} has no feature that can be coarsened")

    def apply(cf: tuple[Claim, Feature]) -> Hypothesis:
        c, f = cf
        claims = [dataclasses.replace(x, feature=f) if x.node == c.node else x for x in h.claims]
        return _rebuild(h, claims, list(h.edges), f"{c.node.name}: {c.feature} -> {f}")

    return st.sampled_from(cands).map(apply)


def variants(h: Hypothesis) -> st.SearchStrategy[Hypothesis]:
    """One of drop_node, drop_edge, add_edge or coarsen_feature applied to `h` (those that apply)."""
    h = _hyp(h)
    options = []
    for make in (drop_node, drop_edge, add_edge, coarsen_feature):
        try:
            options.append(make(h))
        except ValueError:
            continue
    if not options:
        raise ValueError(f"hypothesis {h.name!r} has no variant")
    return st.one_of(options)


# ---- .circuit sources ---------------------------------------------------------------------------
def circuit_sources(
    *,
    names: tuple[str, ...] = ("embed", "pos", "out", "a0", "a1", "m0", "g", "d", "x"),
    models: tuple[str, ...] = ("tiny",),
) -> st.SearchStrategy[str]:
    """`.circuit` texts generated from the grammar (hypothesis.extra.lark.from_lark). Every text parses;
    most do not compile (compiling them must give diagnostics, never a traceback)."""
    from hypothesis.extra.lark import from_lark

    from circuitdsl.ast import KEYWORDS
    from circuitdsl.grammar import get_parser

    for label, values in (("names", names), ("models", models)):
        if not isinstance(values, tuple | list) or not values:
            raise ValueError(f"{label} must be a non-empty tuple of strings, got {values!r}")
    for v in names:
        if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) or v in KEYWORDS:
            raise ValueError(f"names: {v!r} is not an identifier the grammar accepts (or it is a keyword)")
    for v in models:
        if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", v):
            raise ValueError(f"models: {v!r} is not a model name the grammar accepts")
    lit = {
        "NAME": st.sampled_from(list(names)),
        "MODEL_NAME": st.sampled_from(list(models)),
        "INT": st.sampled_from(["0", "1", "2", "3"]),
        "NUMBER": st.sampled_from(["0", "1", "0.5", "-2", "1e-3"]),
        "STRING": st.sampled_from(['"x.jsonl"', '"other.circuit"']),
        "OP": st.sampled_from([">=", "<=", ">", "<"]),
        "_NL": st.just("\n"),
        "_COMMA": st.just(", "),
        "_ARROW": st.just(" -> "),
        "_LPAR": st.just("("),
        "_RPAR": st.just(")"),
        "_LBRACK": st.just("["),
        "_RBRACK": st.just("]"),
        "COMMENT": st.just(" "),
        "WS": st.just(" "),
    }
    parser = get_parser()
    for term in parser.terminals:
        if term.pattern.type == "str" and term.name not in lit:
            lit[term.name] = st.just(f" {term.pattern.value} ")
    return from_lark(parser, start="start", explicit=lit)
