"""The result of `circuitdsl check`: frozen dataclasses with a JSON form (schema `circuitdsl-check/1`).

The HTML report and the pytest plugin read this JSON. Every number is in the metric's raw units
(logits for logit_diff, nats for logprob/loss/kl) unless its name says `fraction`. No torch here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA",
    "Recovered",
    "KTrial",
    "Completeness",
    "NodeRemoval",
    "Minimality",
    "ExpectResult",
    "ExampleRow",
    "CheckResult",
    "write_json_atomic",
]

SCHEMA = "circuitdsl-check/1"


@dataclass(frozen=True)
class Recovered:
    """(F(scrubbed) - F(baseline)) / (F(model) - F(baseline)) with a bootstrap 95% interval."""

    value: float | None
    lower: float | None
    upper: float | None
    resamples: int
    undefined_reason: str | None = None
    gap: float | None = None
    """F(model) - F(baseline), raw units (reported whether or not recovered is defined)."""
    gap_se: float | None = None
    """Standard error of the mean per-example gap m(model, x) - m(baseline, x); None for one example."""


@dataclass(frozen=True)
class KTrial:
    nodes: tuple[str, ...]
    how: str
    """'empty', 'random', 'all' (every subset of a size with no more subsets than samples) or 'greedy'."""
    f_c_minus_k: float
    f_m_minus_k: float
    incompleteness: float


@dataclass(frozen=True)
class Completeness:
    sizes: tuple[int, ...]
    samples: int
    greedy_steps: int
    trials: tuple[KTrial, ...]
    worst: KTrial | None
    scrubs: int
    """Scrubs run by the search (C \\ K and M \\ K each count one)."""
    skipped: str | None = None
    """Why the search did not run (e.g. --no-completeness), else None."""
    searched_sizes: tuple[int, ...] = ()
    """The sizes of K actually drawn: `sizes` clamped to the number of removable nodes (see notes)."""
    notes: tuple[str, ...] = ()
    """What the search could not do as asked (sizes clamped, only the empty K evaluated)."""

    @property
    def evaluated_nonempty(self) -> bool:
        """Whether some non-empty K was evaluated; otherwise the `incompleteness` score is undefined."""
        return any(t.nodes for t in self.trials)


@dataclass(frozen=True)
class NodeRemoval:
    node: str
    f_without: float
    """F(C \\ {v})."""
    raw: float
    """F(C) - F(C \\ {v}), signed, raw units."""
    fraction: float | None
    """raw / (F(model) - F(baseline)); None where that is undefined."""
    changed_nothing: bool
    """True when removing v changed no example's metric (see SEMANTICS.md section 3, note for reports)."""


@dataclass(frozen=True)
class Minimality:
    removals: tuple[NodeRemoval, ...]
    score: float | None
    """The smallest single-node removal fraction (the `minimality` score)."""
    joint_raw: float | None
    """F(C) - F(C \\ V), V = every claimed head and MLP removed together."""
    sum_single_raw: float
    redundancy_note: str | None


@dataclass(frozen=True)
class ExpectResult:
    score: str
    op: str
    threshold: float
    value: float | None
    passed: bool
    reason: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class ExampleRow:
    id: str
    text: str | None
    tokens: tuple[int, ...]
    m_model: float
    m_scrubbed: float
    m_baseline: float
    abs_delta: float


@dataclass(frozen=True)
class CheckResult:
    name: str
    source_path: str | None
    model: str
    metric: str
    ablation: str
    dataset: str
    seed: int
    n: int
    f_model: float
    f_scrubbed: float
    f_baseline: float
    recovered: Recovered
    mean_abs_delta: float
    median_abs_delta: float
    p90_abs_delta: float
    kl: float
    """Mean KL(model || scrubbed) at the scored positions (nats)."""
    kl_baseline: float
    reused_class_of_one: int
    class_draws: int
    completeness: Completeness
    minimality: Minimality
    expects: tuple[ExpectResult, ...]
    examples: tuple[ExampleRow, ...]
    timings: tuple[tuple[str, float], ...]
    notes: tuple[str, ...]
    cost: tuple[tuple[str, int], ...] = ()
    """forward passes, block runs, rows computed."""
    treeify: str = "exact"
    """The treeification rule: "exact" (one treeified node per claimed path, SEMANTICS.md section 3), or
    "shared draws" (the opt-in approximation; a note says so too)."""
    tree_nodes: int = 0
    """Distinct treeified nodes of the hypothesis (per example)."""
    schema: str = SCHEMA

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.expects)

    def score(self, name: str) -> float | None:
        """The value of a score named in `ir.SCORE_NAMES`."""
        vals = {
            "recovered": self.recovered.value,
            "recovered.lower": self.recovered.lower,
            "recovered.upper": self.recovered.upper,
            "incompleteness": self.completeness.worst.incompleteness
            if self.completeness.worst and self.completeness.evaluated_nonempty else None,
            "mean_abs_delta": self.mean_abs_delta,
            "median_abs_delta": self.median_abs_delta,
            "p90_abs_delta": self.p90_abs_delta,
            "kl": self.kl,
            "minimality": self.minimality.score,
        }
        if name not in vals:
            raise KeyError(name)
        return vals[name]

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["timings"] = dict(self.timings)
        d["cost"] = dict(self.cost)
        d["passed"] = self.passed
        return _clean(d)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @staticmethod
    def from_json(d: dict[str, Any]) -> "CheckResult":
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} result (schema {d.get('schema')!r})")
        comp = d["completeness"]
        trials = tuple(_kt(t) for t in comp["trials"])
        mini = d["minimality"]
        return CheckResult(
            name=d["name"], source_path=d["source_path"], model=d["model"], metric=d["metric"],
            ablation=d["ablation"], dataset=d["dataset"], seed=d["seed"], n=d["n"],
            f_model=d["f_model"], f_scrubbed=d["f_scrubbed"], f_baseline=d["f_baseline"],
            recovered=Recovered(**d["recovered"]),
            mean_abs_delta=d["mean_abs_delta"], median_abs_delta=d["median_abs_delta"], p90_abs_delta=d["p90_abs_delta"],
            kl=d["kl"], kl_baseline=d["kl_baseline"], reused_class_of_one=d["reused_class_of_one"], class_draws=d["class_draws"],
            completeness=Completeness(
                sizes=tuple(comp["sizes"]), samples=comp["samples"], greedy_steps=comp["greedy_steps"], trials=trials,
                worst=_kt(comp["worst"]) if comp["worst"] else None, scrubs=comp["scrubs"], skipped=comp["skipped"],
                searched_sizes=tuple(comp.get("searched_sizes", ())), notes=tuple(comp.get("notes", ())),
            ),
            minimality=Minimality(
                removals=tuple(NodeRemoval(**r) for r in mini["removals"]), score=mini["score"],
                joint_raw=mini["joint_raw"], sum_single_raw=mini["sum_single_raw"], redundancy_note=mini["redundancy_note"],
            ),
            expects=tuple(ExpectResult(**e) for e in d["expects"]),
            examples=tuple(ExampleRow(**{**r, "tokens": tuple(r["tokens"])}) for r in d["examples"]),
            timings=tuple(d["timings"].items()),
            notes=tuple(d["notes"]),
            cost=tuple(d.get("cost", {}).items()),
            treeify=d.get("treeify", "exact"),
            tree_nodes=d.get("tree_nodes", 0),
        )


def _kt(t: dict) -> KTrial:
    return KTrial(**{**t, "nodes": tuple(t["nodes"])})


def _clean(v: Any) -> Any:
    """JSON-safe: tuples -> lists, NaN/inf -> None."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_json_atomic(path: str | Path, data: dict | list) -> None:
    """Write JSON to `path` atomically: a temp file in the same folder, then os.replace."""
    from circuitdsl.atomic import write_text

    write_text(path, json.dumps(data, indent=2) + "\n", parents=True)
