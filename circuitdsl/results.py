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
    "NullTest",
    "NodeTest",
    "MinimalityTest",
    "EquivalenceTest",
    "Tests",
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
    skipped: str | None = None
    """Why minimality was not run (--no-minimality), else None."""


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
class NullTest:
    """A test of an observed statistic against R null draws (SEMANTICS.md section 5; docs/TESTS.md):
    p = (1 + #null draws at least as extreme) / (1 + R)."""

    __test__ = False  # not a pytest test class

    name: str
    """`sufficiency` or `necessity`."""
    statistic: str
    """What `observed` and each null draw are, in words."""
    direction: str
    """When a null draw is at least as extreme: `greater`, `less` or `closer_to_1` (circuitdsl.engine.stats)."""
    observed: float | None
    null: tuple[float | None, ...]
    """The R null draws (None where a draw's statistic is undefined; such draws count in R and are never
    at least as extreme)."""
    r: int
    p: float | None
    seed: int
    scrubs: int = 0
    seconds: float = 0.0
    undefined_reason: str | None = None
    """Why no p-value was computed (e.g. recovered undefined, E601 on a random circuit)."""
    unit: str = ""
    """Unit of `observed` and `null` ("recovered" for ratios, else the metric's unit)."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeTest:
    node: str
    kind: str
    observed: float
    """Removal cost of the node, signed so that positive means removing it makes the metric worse (raw units)."""
    p: float | None
    p_holm: float | None


@dataclass(frozen=True)
class MinimalityTest:
    """Per-node minimality (SEMANTICS.md section 5): each claimed node's removal cost against the costs of
    removing one random node of its kind from random circuits of C's size; Holm-Bonferroni across nodes."""

    __test__ = False

    nodes: tuple[NodeTest, ...]
    null: tuple[tuple[str, tuple[float | None, ...]], ...]
    """Per node kind: the R null removal costs."""
    r: int
    p: float | None
    """The largest Holm-adjusted p-value (every node needed at level alpha iff p <= alpha)."""
    seed: int
    scrubs: int = 0
    seconds: float = 0.0
    undefined_reason: str | None = None
    unit: str = ""


@dataclass(frozen=True)
class EquivalenceTest:
    """Two one-sided binomial tests (SEMANTICS.md section 5): is P(m(scrubbed, x) > m(model, x)) within
    [1/2 - eps, 1/2 + eps]? Exact: no null draws."""

    __test__ = False

    eps: float
    n: int
    """Examples compared (ties left out)."""
    above: int
    """Examples where m(scrubbed, x) > m(model, x)."""
    ties: int
    """Examples where the two agree to 1e-6 relative (left out, as in a sign test)."""
    p_lower: float | None
    """P(X >= above | theta = 1/2 - eps)."""
    p_upper: float | None
    """P(X <= above | theta = 1/2 + eps)."""
    p: float | None
    undefined_reason: str | None = None


@dataclass(frozen=True)
class Tests:
    """The statistical tests a check ran (None for each test it did not run)."""

    __test__ = False

    r: int
    seed: int
    sufficiency: NullTest | None = None
    necessity: NullTest | None = None
    equivalence: EquivalenceTest | None = None
    minimality: MinimalityTest | None = None
    random_circuits: str = ""
    """How the random circuits were built (wiring rule, counts per node kind)."""
    scrubs: int = 0
    """Scrubs run by the tests (all through the check's one Engine)."""
    block_runs: int = 0
    """Block runs those scrubs needed (batched single-layer runs; clean activations are shared)."""
    rows: int = 0
    """Rows (treeified node x example) those scrubs computed; each is one head's or MLP's output on one
    example, so rows / (heads + MLPs of the model) is the work in forward passes of one example."""
    pass_nodes: int = 0
    """Heads + MLPs of the model: the rows one forward pass of one example computes."""
    seconds: float = 0.0

    def get(self, name: str):
        return getattr(self, name)

    @staticmethod
    def from_json(d: dict[str, Any]) -> Tests:
        def null_test(x):
            if not x:
                return None
            return NullTest(**{**x, "null": tuple(x["null"]), "notes": tuple(x.get("notes", ()))})

        mt = d.get("minimality")
        mini = (
            None
            if not mt
            else MinimalityTest(
                **{
                    **mt,
                    "nodes": tuple(NodeTest(**n) for n in mt["nodes"]),
                    "null": tuple((k, tuple(v)) for k, v in mt["null"]),
                }
            )
        )
        eq = d.get("equivalence")
        return Tests(
            r=d["r"],
            seed=d["seed"],
            sufficiency=null_test(d.get("sufficiency")),
            necessity=null_test(d.get("necessity")),
            equivalence=EquivalenceTest(**eq) if eq else None,
            minimality=mini,
            random_circuits=d.get("random_circuits", ""),
            scrubs=d.get("scrubs", 0),
            block_runs=d.get("block_runs", 0),
            rows=d.get("rows", 0),
            pass_nodes=d.get("pass_nodes", 0),
            seconds=d.get("seconds", 0.0),
        )


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
    cost: tuple[tuple[str, float], ...] = ()
    """forward passes, block runs, rows computed."""
    treeify: str = "exact"
    """The treeification rule: "exact" (one treeified node per claimed path, SEMANTICS.md section 3), or
    "shared draws" (the opt-in approximation; a note says so too)."""
    tree_nodes: int = 0
    """Distinct treeified nodes of the hypothesis (per example)."""
    tests: Tests | None = None
    """The statistical tests of SEMANTICS.md section 5 (None: none was run, as in results written before them)."""
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
            if self.completeness.worst and self.completeness.evaluated_nonempty
            else None,
            "mean_abs_delta": self.mean_abs_delta,
            "median_abs_delta": self.median_abs_delta,
            "p90_abs_delta": self.p90_abs_delta,
            "kl": self.kl,
            "minimality": self.minimality.score,
        }
        for test in ("sufficiency", "necessity", "equivalence", "minimality"):
            t = self.tests.get(test) if self.tests is not None else None
            vals[f"{test}.p"] = t.p if t is not None else None
        if name not in vals:
            raise KeyError(name)
        return vals[name]

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["timings"] = dict(self.timings)
        d["cost"] = dict(self.cost)
        d["passed"] = self.passed
        d["phases"] = self.phases
        return _clean(d)

    @property
    def phases(self) -> dict[str, bool]:
        """Which phases of the check ran (--only, --no-minimality, --no-completeness, --no-tests, or the
        file's `set ...enabled = false`); derived, so a result read back reports the same."""
        return {
            "scores": True,
            "minimality": self.minimality.skipped is None,
            "completeness": self.completeness.skipped is None,
            "tests": self.tests is not None,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @staticmethod
    def from_json(d: dict[str, Any]) -> CheckResult:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} result (schema {d.get('schema')!r})")
        comp = d["completeness"]
        trials = tuple(_kt(t) for t in comp["trials"])
        mini = d["minimality"]
        return CheckResult(
            name=d["name"],
            source_path=d["source_path"],
            model=d["model"],
            metric=d["metric"],
            ablation=d["ablation"],
            dataset=d["dataset"],
            seed=d["seed"],
            n=d["n"],
            f_model=d["f_model"],
            f_scrubbed=d["f_scrubbed"],
            f_baseline=d["f_baseline"],
            recovered=Recovered(**d["recovered"]),
            mean_abs_delta=d["mean_abs_delta"],
            median_abs_delta=d["median_abs_delta"],
            p90_abs_delta=d["p90_abs_delta"],
            kl=d["kl"],
            kl_baseline=d["kl_baseline"],
            reused_class_of_one=d["reused_class_of_one"],
            class_draws=d["class_draws"],
            completeness=Completeness(
                sizes=tuple(comp["sizes"]),
                samples=comp["samples"],
                greedy_steps=comp["greedy_steps"],
                trials=trials,
                worst=_kt(comp["worst"]) if comp["worst"] else None,
                scrubs=comp["scrubs"],
                skipped=comp["skipped"],
                searched_sizes=tuple(comp.get("searched_sizes", ())),
                notes=tuple(comp.get("notes", ())),
            ),
            minimality=Minimality(
                removals=tuple(NodeRemoval(**r) for r in mini["removals"]),
                score=mini["score"],
                joint_raw=mini["joint_raw"],
                sum_single_raw=mini["sum_single_raw"],
                redundancy_note=mini["redundancy_note"],
                skipped=mini.get("skipped"),
            ),
            expects=tuple(ExpectResult(**e) for e in d["expects"]),
            examples=tuple(ExampleRow(**{**r, "tokens": tuple(r["tokens"])}) for r in d["examples"]),
            timings=tuple(d["timings"].items()),
            notes=tuple(d["notes"]),
            cost=tuple(d.get("cost", {}).items()),
            treeify=d.get("treeify", "exact"),
            tree_nodes=d.get("tree_nodes", 0),
            tests=Tests.from_json(d["tests"]) if d.get("tests") else None,
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
