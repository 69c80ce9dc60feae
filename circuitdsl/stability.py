"""Stability: one hypothesis checked under several seeds (`circuitdsl check FILE --seeds 0..9`).

A score that moves with the seed (draws of the scrub, bootstrap resamples, random circuits of the
tests, and, with `--vary-data`, the generated datasets themselves) is less of a finding than its
point estimate suggests. `Stability` gathers one CheckResult per seed and reports each score's spread
(mean, sd, min, max over seeds) and, for each `expect` clause, on how many seeds it held. No torch.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from dataclasses import dataclass
from typing import Any

from circuitdsl.ir import SCORE_NAMES, DatasetKind, Hypothesis
from circuitdsl.results import CheckResult

__all__ = ["SCHEMA", "parse_seeds", "vary_data", "ScoreSpread", "ExpectSpread", "Stability", "MAX_SEEDS"]

SCHEMA = "circuitdsl-stability/1"
MAX_SEEDS = 1000


def parse_seeds(text: str) -> tuple[int, ...]:
    """`0..9` (inclusive), `0,3,7`, `5`, or a mix (`0..3,10`): distinct non-negative ints in the order given.
    Raises ValueError naming what is wrong."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*\.\.\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise ValueError(f"the seed range `{part}` ends before it starts")
            if b - a + 1 > MAX_SEEDS:
                raise ValueError(f"the seed range `{part}` has more than {MAX_SEEDS} seeds")
            seeds += range(a, b + 1)
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise ValueError(f"`{part}` is not a seed: write seeds as `0..9`, `0,3,7` or both (`0..3,10`)")
    out = tuple(dict.fromkeys(seeds))
    if len(out) > MAX_SEEDS:
        raise ValueError(f"more than {MAX_SEEDS} seeds")
    return out


def vary_data(h: Hypothesis, offset: int) -> Hypothesis:
    """h with the `seed` argument of every generator dataset that has one shifted by `offset` (its
    default when the file does not give it, plus the offset). Every generator moves by the same offset,
    so datasets paired row by row (ioi with ioi_abc at one seed) stay paired. JSONL files do not change."""
    if not offset:
        return h
    from circuitdsl.datasets import registry

    specs = []
    for spec in h.datasets:
        info = registry.get(spec.source) if spec.kind is DatasetKind.GENERATOR else None
        params = dict(info.params) if info is not None else {}
        if "seed" in params:
            args = dict(spec.args)
            args["seed"] = int(args.get("seed", params["seed"] or 0)) + int(offset)
            spec = dataclasses.replace(spec, args=tuple(sorted(args.items())))
        specs.append(spec)
    return dataclasses.replace(h, datasets=tuple(specs))


@dataclass(frozen=True)
class ScoreSpread:
    score: str
    values: tuple[float | None, ...]
    """Per seed, in the order of `Stability.seeds` (None where the score was undefined)."""

    @property
    def defined(self) -> tuple[float, ...]:
        return tuple(v for v in self.values if v is not None and math.isfinite(v))

    @property
    def mean(self) -> float | None:
        d = self.defined
        return statistics.fmean(d) if d else None

    @property
    def sd(self) -> float | None:
        d = self.defined
        return statistics.stdev(d) if len(d) > 1 else None

    @property
    def min(self) -> float | None:
        return min(self.defined) if self.defined else None

    @property
    def max(self) -> float | None:
        return max(self.defined) if self.defined else None


@dataclass(frozen=True)
class ExpectSpread:
    clause: str
    line: int | None
    passed: tuple[bool, ...]
    values: tuple[float | None, ...]

    @property
    def held(self) -> int:
        return sum(self.passed)

    @property
    def every_seed(self) -> bool:
        return all(self.passed)


@dataclass(frozen=True)
class Stability:
    path: str
    seeds: tuple[int, ...]
    results: tuple[CheckResult, ...]
    vary_data: bool = False

    @property
    def scores(self) -> tuple[ScoreSpread, ...]:
        """Every score of ir.SCORE_NAMES that is defined on at least one seed."""
        out = []
        for name in SCORE_NAMES:
            vals = tuple(r.score(name) for r in self.results)
            if any(v is not None for v in vals):
                out.append(ScoreSpread(name, vals))
        return tuple(out)

    @property
    def expects(self) -> tuple[ExpectSpread, ...]:
        if not self.results:
            return ()
        out = []
        for i, x in enumerate(self.results[0].expects):
            per = [r.expects[i] for r in self.results]
            out.append(
                ExpectSpread(
                    f"{x.score} {x.op} {x.threshold:g}",
                    x.line,
                    tuple(e.passed for e in per),
                    tuple(e.value for e in per),
                )
            )
        return tuple(out)

    @property
    def passed(self) -> bool:
        """Every expect clause held on every seed."""
        return all(e.every_seed for e in self.expects)

    def to_json(self) -> dict[str, Any]:
        def f(v):
            return None if v is None or not math.isfinite(v) else v

        return {
            "schema": SCHEMA,
            "path": self.path,
            "seeds": list(self.seeds),
            "vary_data": self.vary_data,
            "passed": self.passed,
            "scores": [
                {
                    "score": s.score,
                    "values": [f(v) if v is not None else None for v in s.values],
                    "mean": f(s.mean),
                    "sd": s.sd,
                    "min": s.min,
                    "max": s.max,
                }
                for s in self.scores
            ],
            "expects": [
                {
                    "clause": e.clause,
                    "line": e.line,
                    "passed": list(e.passed),
                    "values": list(e.values),
                    "held": e.held,
                    "every_seed": e.every_seed,
                }
                for e in self.expects
            ],
            "results": [r.to_json() for r in self.results],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Stability:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} result (schema {d.get('schema')!r})")
        return Stability(
            d["path"],
            tuple(d["seeds"]),
            tuple(CheckResult.from_json(r) for r in d["results"]),
            bool(d.get("vary_data", False)),
        )

    def render_text(self, console=None) -> None:
        from rich.console import Console
        from rich.table import Table

        con = console or Console(highlight=False, soft_wrap=True)

        def g(v):
            return "undefined" if v is None else f"{v + 0.0:.4g}"

        r0 = self.results[0] if self.results else None
        what = "seeds and generated datasets" if self.vary_data else "seeds"
        head = f"[bold]{self.path}[/bold]  stability over {len(self.seeds)} {what}: {_seed_text(self.seeds)}"
        if r0 is not None:
            head += f"  (model {r0.model}, dataset {r0.dataset}, N={r0.n}, metric {r0.metric})"
        con.print(head)
        per = Table(title="per seed")
        for c in ("seed", "recovered [95% interval]", "F(scrubbed)", "expects held"):
            per.add_column(c)
        for s, r in zip(self.seeds, self.results):
            rec = r.recovered
            held = sum(e.passed for e in r.expects)
            per.add_row(
                str(s),
                f"{g(rec.value)} [{g(rec.lower)}, {g(rec.upper)}]",
                g(r.f_scrubbed),
                f"{held}/{len(r.expects)}" if r.expects else "-",
            )
        con.print(per)
        t = Table(title=f"scores over {len(self.seeds)} seeds")
        for c in ("score", "mean", "sd", "min", "max", "defined on"):
            t.add_column(c)
        for sp in self.scores:
            t.add_row(sp.score, g(sp.mean), g(sp.sd), g(sp.min), g(sp.max), f"{len(sp.defined)}/{len(sp.values)} seeds")
        con.print(t)
        for e in self.expects:
            mark = "[green]PASS[/green]" if e.every_seed else "[red]FAIL[/red]"
            where = f" (line {e.line})" if e.line else ""
            vals = [v for v in e.values if v is not None]
            span = f"; values {g(min(vals))} to {g(max(vals))}" if vals else ""
            failed = [str(s) for s, ok in zip(self.seeds, e.passed) if not ok]
            tail = f"; fails on seed{'s' if len(failed) > 1 else ''} {', '.join(failed)}" if failed else ""
            con.print(f"{mark} expect {e.clause}{where}: holds on {e.held}/{len(e.passed)} seeds{span}{tail}")
        if not self.expects:
            con.print("no expect clauses")
        con.print()


def _seed_text(seeds: tuple[int, ...]) -> str:
    if seeds and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}..{seeds[-1]}"
    return ", ".join(map(str, seeds))
