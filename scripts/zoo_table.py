"""Check every hypothesis of the zoo and regenerate the README's zoo table from the results.

    .venv/bin/python scripts/zoo_table.py [--only NAME ...] [--no-write]

`--only` checks those files (stems, e.g. `hist induction_refined`) and replaces their rows, keeping the
README's other rows (a row from a table with other columns is dropped, so run the whole zoo once after
changing the columns).

Each row is produced by `circuitdsl check` on the file as it is today (full completeness search
and minimality, the file's own seed); the table goes between the ZOO-TABLE markers of README.md
(written atomically) and the JSON results to `hypotheses/results/` for the record.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- ZOO-TABLE -->", "<!-- /ZOO-TABLE -->"


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "undefined"
    if abs(v) < 0.5 * 10**-digits:
        v = 0.0
    return f"{v:.{digits}f}"


def zoo_files() -> list[Path]:
    """Every hypothesis file of the zoo: `hypotheses/*.circuit` and the compiled ground truth
    `hypotheses/tracr/*.circuit` (shared imports live in other subfolders)."""
    return sorted((ROOT / "hypotheses").glob("*.circuit")) + sorted((ROOT / "hypotheses" / "tracr").glob("*.circuit"))


def row(path: Path) -> tuple[str, dict]:
    from circuitdsl.compiler import compile_file
    from circuitdsl.engine.check import run_check
    from circuitdsl.results import write_json_atomic

    compiled = compile_file(path)
    if compiled.hypothesis is None:
        raise SystemExit(compiled.render("full"))
    h = compiled.hypothesis
    t = time.perf_counter()
    r = run_check(h)
    wall = time.perf_counter() - t
    out = _result_path(path)
    out.parent.mkdir(exist_ok=True)
    write_json_atomic(out, r.to_json())
    return _line(path, r, wall), {"file": path.name, "passed": r.passed, "wall_s": wall}


def _result_path(path: Path) -> Path:
    rel = path.relative_to(ROOT / "hypotheses")
    return ROOT / "hypotheses" / "results" / (str(rel.with_suffix("")).replace("/", "-") + ".json")


def row_from_result(path: Path) -> tuple[str, dict]:
    """The row of a file from the result its last check saved (hypotheses/results/), not checked again;
    its time is that check's own total."""
    import json

    from circuitdsl.results import CheckResult

    d = json.loads(_result_path(path).read_text(encoding="utf-8"))
    r = CheckResult.from_json(d[0] if isinstance(d, list) else d)
    wall = dict(r.timings).get("total", 0.0)
    return _line(path, r, wall), {"file": path.name, "passed": r.passed, "wall_s": wall, "from": "saved result"}


def _line(path: Path, r, wall: float) -> str:
    rel = path.relative_to(ROOT / "hypotheses")
    rec = r.recovered
    interval = f"[{_fmt(rec.lower)}, {_fmt(rec.upper)}]" if rec.lower is not None else ""
    worst = r.completeness.worst
    incompleteness = f"{_fmt(worst.incompleteness)} (K={{{', '.join(worst.nodes)}}})" if worst else "not run"
    tree = f"exact ({r.tree_nodes:,})" if r.treeify == "exact" else f"**{r.treeify}** (approximation)"
    tests = _tests_cell(r.tests)
    expects = ", ".join(f"{'pass' if e.passed else 'FAIL'}: {e.score} {e.op} {e.threshold:g}" for e in r.expects)
    line = (
        f"| [`{rel}`](hypotheses/{rel}) | {r.model} | {r.metric} | {r.ablation} | {tree} | {r.n} "
        f"| {_fmt(r.f_model)} / {_fmt(r.f_scrubbed)} / {_fmt(r.f_baseline)} "
        f"| {_fmt(rec.value)} {interval} | {_fmt(r.mean_abs_delta)} / {_fmt(r.p90_abs_delta)} "
        f"| {incompleteness} | {tests} | {expects} | {wall:.0f} s |"
    )
    return line


HEADER = (
    "| hypothesis | model | metric | ablation | treeification (nodes) | N | F model / scrubbed / baseline "
    "| recovered [95% CI] | mean / p90 abs delta | incompleteness (worst K) | p: sufficiency / necessity (R) "
    "| expects | time |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _tests_cell(tests) -> str:
    """The sufficiency and necessity p-values (SEMANTICS.md section 5) with R, or why there are none."""
    if tests is None or (tests.sufficiency is None and tests.necessity is None):
        return "not run"

    def p(t) -> str:
        if t is None:
            return "-"
        return f"{t.p:.3g}" if t.p is not None else "undefined"

    return f"{p(tests.sufficiency)} / {p(tests.necessity)} (R={tests.r})"


def write_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text:
        raise SystemExit(f"README.md has no {BEGIN} marker")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1] if END in rest else rest
    new = f"{head}{BEGIN}\n{table}\n{END}{tail}"
    from circuitdsl.atomic import write_text

    write_text(readme, new, keep_mode=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="file stems to check (default: the whole zoo)")
    ap.add_argument(
        "--from-results",
        action="store_true",
        help="with --only: rows from the results the last check of each file saved, without checking",
    )
    ap.add_argument("--no-write", action="store_true", help="print the table, leave README.md alone")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    files = [p for p in zoo_files() if args.only is None or p.stem in args.only]
    lines = []
    for p in files:
        print(f"checking {p.name} ...", file=sys.stderr, flush=True)
        line, info = row_from_result(p) if args.from_results else row(p)
        print(f"  {info}", file=sys.stderr, flush=True)
        lines.append(line)
    stamp = (
        f"Regenerated by `make zoo` (scripts/zoo_table.py) on {dt.date.today().isoformat()}, "
        f"{platform.machine()} with {os.cpu_count()} CPU cores, torch {torch.__version__}. "
        "F values are in the metric's raw units (logits for logit_diff, nats for loss); "
        "recovered = (F(scrubbed) - F(baseline)) / (F(model) - F(baseline)) with a bootstrap 95% interval; "
        "incompleteness = worst |F(C\\K) - F(M\\K)| found by the search, in raw units; treeification: exact causal "
        "scrubbing (with the number of distinct treeified nodes per example) or the opt-in shared-draw approximation "
        "(the file says why)."
    )
    if args.only is not None:  # the other rows stay as the README has them, in zoo order
        lines = _merge(_readme_rows(), dict(zip([_key(p) for p in files], lines)))
    table = f"{HEADER}\n" + "\n".join(lines) + f"\n\n{stamp}"
    print(table)
    if not args.no_write:
        write_readme(table)
    return 0


def _key(path: Path) -> str:
    return f"[`{path.relative_to(ROOT / 'hypotheses')}`]"


def _readme_rows() -> dict[str, str]:
    """The README's current zoo rows, by the file they name (rows from an older header are dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return {}
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    if HEADER.splitlines()[0] not in body:
        return {}
    return {line[2 : line.index("](") + 1]: line for line in body.splitlines() if line.startswith("| [`")}


def _merge(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """One row per zoo file in zoo order: the new row where one was checked now, else the README's."""
    rows = []
    for p in zoo_files():
        k = _key(p)
        if k in new or k in old:
            rows.append(new.get(k) or old[k])
    return rows


if __name__ == "__main__":
    sys.exit(main())
