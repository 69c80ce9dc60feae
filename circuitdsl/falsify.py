"""Counterexample search: inputs from a hypothesis' dataset family on which the scrubbed model departs
most from the real one, found and shrunk with hypothesis.

    from circuitdsl.falsify import falsify
    cx = falsify(h, max_examples=40, seed=0)
    assert not cx.found, cx.render()

For a generated input x the departure is |m(scrub, x) - m(model, x)| (SEMANTICS.md section 4, the
per-example faithfulness of x). x is scrubbed as one more example of the file's main dataset D:
its equivalence classes and other-inputs draws are drawn from D's examples of x's layout together
with x (draws are made within a layout, so D's other layouts play no part). Inputs whose layout D
does not have are rejected (nothing of D could be drawn for them).

The search is hypothesis' own, in two runs with one seed. First, random generation and then its
targeted phase, which climbs toward larger departures (`hypothesis.target`): the largest departure seen
is reported as `worst`. Second, the same generation stopping at the first input whose departure
reaches `threshold` (a counterexample), which hypothesis shrinks to the simplest input that still
departs that much (smaller tokens, simpler prompts). The default threshold is half the gap |F(model) - F(baseline)| measured on D: the scrubbed
model is off, on that one input, by half of what the whole circuit claims to explain on average.
Under `ablate unclaimed by paired D2` the search draws pairs (x, x'): x from D's family and x' its
paired row (`circuitdsl.strategies.family_pairs`, x'.layout == x.layout). The engine pairs D2's row i
with D's row i, so x is scrubbed in sub datasets aligned by index: D's examples of x's layout then x,
and D2's rows at the same indices then x'. An x that is already a row of D is scrubbed with D's own
pair (its row of D2), whatever x' was drawn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from circuitdsl.datasets.core import Dataset, Example
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import AblationKind, Hypothesis

__all__ = ["ScoredInput", "Counterexample", "Falsifier", "falsify", "DEFAULT_GAP_FRACTION"]

DEFAULT_GAP_FRACTION = 0.5
"""Default threshold: this fraction of |F(model) - F(baseline)| on the file's dataset."""


@dataclass(frozen=True)
class ScoredInput:
    example: Example
    m_model: float
    m_scrubbed: float
    abs_delta: float
    """|m(scrubbed, x) - m(model, x)| in the metric's raw units."""
    in_dataset: bool
    """True when x is already an example of the file's dataset."""
    paired: Example | None = None
    """Under a `paired` ablation: x's paired row x' (the corrupted input its unclaimed parts ran on)."""

    def describe(self, tokenizer: Any = None) -> str:
        """The input as text, its positions, fields, answers (as tokens when `tokenizer` is given) and scores."""
        from circuitdsl.datasets.source import show_token

        e = self.example

        def ans(ts) -> str:
            return "[" + ", ".join(show_token(tokenizer, t) for t in ts) + "]"

        def toks(x: Example) -> str:
            return x.text if x.text is not None else " ".join(map(str, x.tokens))

        pos = ", ".join(f"{k}={'/'.join(map(str, v))}" for k, v in e.positions)
        fields = ", ".join(f"{k}={v}" for k, v in e.fields)
        paired = ""
        if self.paired is not None:
            p = self.paired
            diff = ", ".join(f"{k}={v}" for k, v in p.fields if dict(e.fields).get(k, object()) != v)
            paired = f"\n  paired: {toks(p)}" + (f"\n  paired fields (those that differ): {diff}" if diff else "")
        return (
            f"tokens: {toks(e)}\n  positions: {pos}\n  fields: {fields}\n  answers: {ans(e.answers)}"
            f"{', wrong: ' + ans(e.wrongs) if e.wrongs else ''}{paired}\n"
            f"  m(model) {self.m_model:.4g}, m(scrubbed) {self.m_scrubbed:.4g}, |delta| {self.abs_delta:.4g}"
            + (" (an example of the dataset)" if self.in_dataset else "")
        )


@dataclass(frozen=True)
class Counterexample:
    """The outcome of a search. `found`: some input departed by at least `threshold`; `shrunk` is the
    simplest such input hypothesis found; `worst` is the largest departure seen."""

    hypothesis: str
    metric: str
    threshold: float
    threshold_reason: str
    found: bool
    shrunk: ScoredInput | None
    worst: ScoredInput | None
    tried: int
    """Distinct inputs scored."""
    rejected: int
    """Inputs rejected because the dataset has no example of their layout (or, paired, x' has another layout than x)."""
    dataset_mean_abs_delta: float
    dataset_max_abs_delta: float
    gap: float
    """F(model) - F(baseline) on the file's dataset."""
    seed: int
    paired: bool = False
    """The search drew pairs (x, x') for a `paired` ablation."""
    tokenizer: Any = dataclasses.field(default=None, compare=False, repr=False)
    """The model's tokenizer, to print answers as tokens (None: token ids)."""

    def render(self) -> str:
        from circuitdsl.ir import metric_unit

        unit = metric_unit(self.metric)
        lines = [
            f"falsify {self.hypothesis}: metric {self.metric} ({unit}), seed {self.seed}",
            f"threshold |delta| >= {self.threshold:.4g} ({self.threshold_reason})",
            f"on the file's dataset: F(model) - F(baseline) = {self.gap:.4g}; |delta| mean {self.dataset_mean_abs_delta:.4g}, "
            f"max {self.dataset_max_abs_delta:.4g}",
            f"{self.tried} distinct inputs scored ({self.rejected} rejected: layout not in the dataset"
            + (" or pair of two layouts" if self.paired else "")
            + ")",
        ]
        if self.found and self.shrunk is not None:
            lines.append("COUNTEREXAMPLE (shrunk):\n  " + self.shrunk.describe(self.tokenizer))
        else:
            lines.append("no input reached the threshold")
        if self.worst is not None:
            lines.append("largest departure seen:\n  " + self.worst.describe(self.tokenizer))
        return "\n".join(lines)


class _Departs(Exception):
    pass


class Falsifier:
    """Scores single inputs against a hypothesis, reusing one loaded model and the materialised datasets."""

    def __init__(
        self,
        h: Hypothesis,
        *,
        seed: int | None = None,
        device: str = "cpu",
        batch_size: int | None = None,
        cache: bool = True,
    ):
        from circuitdsl.backends.base import BackendError
        from circuitdsl.backends.loader import load_backend
        from circuitdsl.backends.loader import model_diagnostic as _model_diagnostic
        from circuitdsl.engine import data as data_mod
        from circuitdsl.engine import metrics
        from circuitdsl.models.shapes import ShapeError

        self.h = h
        self.paired = h.ablation.kind is AblationKind.PAIRED
        self.seed = h.seed if seed is None else int(seed)
        self.batch_size = batch_size
        self.cache = cache
        """Read and write the on-disk activation cache (engine/diskcache.py) for the file's datasets."""
        try:
            self.backend = load_backend(h.model, device)
        except (BackendError, ShapeError) as e:
            raise CircuitError([_model_diagnostic(h, e)]) from None
        self.datasets = data_mod.materialise_all(h, self.backend.tokenizer)
        self.ds: Dataset = self.datasets[h.main_dataset]
        self.other: Dataset | None = None
        """Under a `paired` ablation: the paired dataset D2 (row i pairs with row i of D)."""
        if self.paired:
            self.other = self.datasets.get(h.ablation.dataset or "")
            if self.other is None:
                raise CircuitError(
                    [Diagnostic("E418", f"ablation dataset `{h.ablation.dataset}` is not declared", h.model.span)]
                )
            if len(self.other) < len(self.ds):
                raise CircuitError(
                    [
                        Diagnostic(
                            "E417",
                            f"`paired {self.other.name}` needs a row for each of the {len(self.ds)} examples of "
                            f"`{self.ds.name}`; it has {len(self.other)}",
                            h.model.span,
                        )
                    ]
                )
        metrics.check_metric(h.metric.kind, self.ds.examples, d_vocab_out=self.backend.d_vocab_out)
        self._pools = self.ds.layouts()
        self._cache: dict[tuple[str, str | None], ScoredInput | None] = {}
        self.rejected = 0

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    def _engine(self, datasets: dict[str, Dataset]):
        from circuitdsl.engine.diskcache import open_cache
        from circuitdsl.engine.scrub import Engine

        return Engine(
            self.backend,
            datasets,
            self.h.main_dataset,
            self.h.ablation,
            seed=self.seed,
            batch_size=self.batch_size,
            disk_cache=open_cache(self.backend, enabled=self.cache),
        )

    def dataset_scores(self) -> tuple[Any, Any, Any]:
        """Per-example m(model), m(scrubbed), m(baseline) on the file's dataset (numpy arrays)."""
        import torch

        from circuitdsl.engine import derive, metrics

        with torch.no_grad():
            eng = self._engine(self.datasets)
            clean = eng.clean_logits()
            kind = self.h.metric.kind
            mm = metrics.metric_values(kind, clean, self.ds.examples, clean)
            ms = metrics.metric_values(kind, eng.scrub(self.h).logits, self.ds.examples, clean)
            mb = metrics.metric_values(kind, eng.scrub(derive.empty(self.h)).logits, self.ds.examples, clean)
        return mm, ms, mb

    def score(self, x: Example | tuple[Example, Example]) -> ScoredInput | None:
        """x scrubbed together with the dataset's examples of its layout; None if no example has x's layout.
        Under a `paired` ablation, x is a pair (x, x'): x' is x's paired row (a row of D needs no pair: its
        own row of D2 is used); None also when x' has another layout than x."""
        pair: Example | None = None
        if isinstance(x, tuple):
            if len(x) != 2 or not all(isinstance(e, Example) for e in x):
                raise TypeError(f"score takes an Example or a pair (x, x') of Examples, got {x!r:.80}")
            x, pair = x
            if not self.paired:
                raise TypeError(f"the ablation is `{self.h.ablation}`, not paired: score takes one Example, not a pair")
        elif not isinstance(x, Example):
            raise TypeError(f"score takes an Example or a pair (x, x') of Examples, got {x!r:.80}")
        row = None
        if self.paired:
            try:
                row = self.ds.index_of(x.id)
            except KeyError:
                row = None
        if row is not None:
            pair = self.other.examples[row]  # type: ignore[union-attr]
        elif self.paired and pair is None:
            raise TypeError(
                f"the ablation is `{self.h.ablation}`: an input that is not a row of `{self.ds.name}` "
                "needs its paired row, score((x, x'))"
            )
        key = (x.id, pair.id if pair is not None else None)
        if key in self._cache:
            return self._cache[key]
        pool = self._pools.get(x.layout)
        if pool is None or (pair is not None and pair.layout != x.layout):
            self.rejected += 1
            self._cache[key] = None
            return None
        import torch

        from circuitdsl.engine import data as data_mod
        from circuitdsl.engine import metrics

        probe = Dataset(self.ds.name, (x,) if pair is None else (x, pair))
        data_mod.validate(probe, self.backend.n_ctx, self.backend.shape.vocab_size, vocab_out=self.backend.d_vocab_out)
        members = tuple(self.ds.examples[i] for i in pool)
        in_ds = any(e.id == x.id for e in members)
        examples = members if in_ds else members + (x,)
        sub = dataclasses.replace(self.ds, examples=examples, _by_id={})
        datasets = {**self.datasets, self.ds.name: sub}
        if self.paired:
            assert self.other is not None and pair is not None
            rows = tuple(self.other.examples[i] for i in pool)
            datasets[self.other.name] = dataclasses.replace(
                self.other, examples=rows if in_ds else rows + (pair,), _by_id={}
            )
        with torch.no_grad():
            eng = self._engine(datasets)
            clean = eng.clean_logits()
            scrubbed = eng.scrub(self.h).logits
        j = next(i for i, e in enumerate(examples) if e.id == x.id)
        kind = self.h.metric.kind
        mm = float(metrics.metric_values(kind, [clean[j]], [x], [clean[j]])[0])
        ms = float(metrics.metric_values(kind, [scrubbed[j]], [x], [clean[j]])[0])
        s = ScoredInput(x, mm, ms, abs(ms - mm), in_ds, pair)
        self._cache[key] = s
        return s

    @property
    def tried(self) -> int:
        return sum(1 for v in self._cache.values() if v is not None)


def falsify(
    h: Hypothesis,
    *,
    max_examples: int = 50,
    seed: int = 0,
    threshold: float | None = None,
    strategy=None,
    device: str = "cpu",
    progress: Callable[[ScoredInput], None] | None = None,
    cache: bool = True,
) -> Counterexample:
    """Search h's dataset family for an input whose departure |m(scrub, x) - m(model, x)| reaches
    `threshold` (default: DEFAULT_GAP_FRACTION x |F(model) - F(baseline)| on the file's dataset), and
    shrink it. `seed` seeds both the search and the scrub's draws; `strategy` overrides the inputs
    (default `circuitdsl.strategies.family_examples(h)`, or `family_pairs(h)` under a `paired` ablation:
    then the strategy draws pairs (x, x'))."""
    from hypothesis import HealthCheck, Phase, assume, given, settings, target
    from hypothesis import seed as hseed

    from circuitdsl import strategies

    if not isinstance(h, Hypothesis):
        raise TypeError(f"h must be a compiled circuitdsl.ir.Hypothesis, got {type(h).__name__}")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive int, got {max_examples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold <= 0
    ):
        raise ValueError(f"threshold must be a positive number, got {threshold!r}")

    fz = Falsifier(h, seed=seed, device=device, cache=cache)
    mm, ms, mb = fz.dataset_scores()
    deltas = abs(ms - mm)
    gap = float(mm.mean() - mb.mean())
    from circuitdsl.engine.scores import undefined_reason

    if threshold is not None:
        thr, why = float(threshold), "given"
    elif undefined_reason(mm, mb) is None:
        thr, why = DEFAULT_GAP_FRACTION * abs(gap), f"{DEFAULT_GAP_FRACTION:g} x |F(model) - F(baseline)|"
    else:
        thr, why = (
            float(max(deltas.max(), 1e-6)),
            "the largest |delta| on the dataset (F(model) - F(baseline) is too small to use)",
        )
    if strategy is not None:
        strat = strategy
    elif fz.paired:
        try:
            strat = strategies.family_pairs(h, tokenizer=fz.tokenizer)
        except ValueError as e:
            raise CircuitError(
                [
                    Diagnostic(
                        "E930",
                        f"falsify cannot draw pairs for `ablate unclaimed by {h.ablation}`: {e}",
                        h.model.span,
                        hint="paired datasets must pair row by row with matching layouts",
                    )
                ]
            ) from None
    else:
        strat = strategies.family_examples(h, tokenizer=fz.tokenizer)

    worst: list[ScoredInput | None] = [None]
    last_fail: list[ScoredInput | None] = [None]

    def scored(x: Example | tuple[Example, Example]) -> ScoredInput:
        s = fz.score(x)
        assume(s is not None)
        assert s is not None
        target(s.abs_delta, label="|m(scrubbed) - m(model)|")
        if worst[0] is None or s.abs_delta > worst[0].abs_delta:
            worst[0] = s
            if progress:
                progress(s)
        return s

    common: dict[str, Any] = dict(
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )

    # 1. explore: random generation, then hypothesis' targeted phase climbing toward larger departures.
    @hseed(seed)
    @settings(max_examples=max_examples, phases=(Phase.generate, Phase.target), **common)
    @given(strat)
    def explore(x: Example | tuple[Example, Example]) -> None:
        scored(x)

    # 2. the first input reaching the threshold, shrunk by hypothesis (inputs scored in 1 are cached).
    @hseed(seed)
    @settings(max_examples=max_examples, phases=(Phase.generate, Phase.target, Phase.shrink), **common)
    @given(strat)
    def search(x: Example | tuple[Example, Example]) -> None:
        s = scored(x)
        if s.abs_delta >= thr:
            last_fail[0] = s
            raise _Departs()

    found = False
    try:
        explore()
        search()
    except _Departs:
        found = True
    except Exception as e:  # hypothesis' own "could not generate" errors: report, never a traceback
        from hypothesis.errors import HypothesisException

        if not isinstance(e, HypothesisException):
            raise
        raise CircuitError(
            [
                Diagnostic(
                    "E931",
                    f"the input search failed: {type(e).__name__}: {e}",
                    hint="no generated input has a layout of the dataset?",
                )
            ]
        ) from None
    return Counterexample(
        hypothesis=h.name,
        metric=h.metric.kind.value,
        threshold=thr,
        threshold_reason=why,
        found=found,
        shrunk=last_fail[0] if found else None,
        worst=worst[0],
        tried=fz.tried,
        rejected=fz.rejected,
        dataset_mean_abs_delta=float(deltas.mean()),
        dataset_max_abs_delta=float(deltas.max()),
        gap=gap,
        seed=seed,
        paired=fz.paired,
        tokenizer=fz.tokenizer,
    )
