"""`circuitdsl check FILE... [--format text|json] [--seed N] [--device cpu] [--batch-size N]
[--clean-cache MIB] [--no-cache] [--no-completeness] [--no-minimality] [--only PHASES] [--tests [R]] [--tests-seed N] [--no-tests] [--seeds SEEDS [--vary-data]]
[--json-out PATH] [--html PATH]`: scrub each hypothesis and evaluate its `expect` clauses.

`--tests [R]` runs the statistical tests of SEMANTICS.md section 5 (sufficiency, necessity, equivalence,
per-node minimality) with R null draws (default: the file's `set tests.r`, else 100); `--seeds 0..9`
checks the file once per seed and reports each score's spread and which `expect` clauses hold on
every seed (docs/TESTS.md).

The report goes to stdout (text, or one JSON document: a list with one result per file); progress and
diagnostics go to stderr. Exit: 0 every expect holds, 1 an expect failed, 2 a usage, language,
dataset or model error (nothing was checked for that file), 3 an internal error.
Output paths are checked before the work (circuitdsl.cli.outputs); reports are written only when
every file was checked, so a run that did not finish leaves `--json-out` and `--html` untouched.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from circuitdsl.cli.exitcodes import ExitCode, Outcome

__all__ = ["add_parser", "run", "render_text"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("files", nargs="+", metavar="FILE", help=".circuit files")
    p.add_argument("--format", choices=("text", "json"), default="text", help="report format on stdout (default text)")
    p.add_argument("--seed", type=int, default=None, help="override the file's `set seed`")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="rows per block run (default 64); results do not depend on it"
    )
    p.add_argument(
        "--clean-cache",
        type=int,
        default=None,
        metavar="MIB",
        help="clean activations kept in memory, in MiB (default 4096); the rest go to a temporary file "
        "($CIRCUITDSL_SPILL_DIR or the temp dir), removed afterwards; results do not depend on it",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the on-disk cache of clean activations ($CIRCUITDSL_ACTIVATION_CACHE, else "
        "~/.cache/circuitdsl/activations; budget $CIRCUITDSL_ACTIVATION_CACHE_MIB, default 2048); results do not depend on it",
    )
    p.add_argument("--no-completeness", action="store_true", help="skip the completeness search")
    p.add_argument(
        "--no-minimality",
        action="store_true",
        help="skip the minimality removals (one scrub per claimed node; the slow part of a large backbone)",
    )
    p.add_argument(
        "--only",
        metavar="PHASES",
        default=None,
        help="run only these phases, comma-separated: scores,minimality,completeness,tests (scores always run); "
        "the JSON's `phases` says which ran",
    )
    tests = p.add_mutually_exclusive_group()
    tests.add_argument(
        "--tests",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="R",
        help="run every statistical test (sufficiency, necessity, equivalence, per-node minimality) with R "
        "null draws (default: the file's `set tests.r`, else 100); each draw is a scrub",
    )
    tests.add_argument(
        "--no-tests",
        action="store_true",
        help="run no statistical test, not even those the file or its expect clauses ask for",
    )
    p.add_argument(
        "--tests-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the tests' random circuits and node sets (default: the file's `set tests.seed`, else the check's seed)",
    )
    p.add_argument(
        "--seeds",
        default=None,
        metavar="SEEDS",
        help="check once per seed (`0..9`, `0,3,7`) and report each score's spread and which expect clauses "
        "hold on every seed; exit 1 unless every clause holds on every seed",
    )
    p.add_argument(
        "--vary-data",
        action="store_true",
        help="with --seeds: also shift the `seed` of every generated dataset by the seed (new examples per seed)",
    )
    p.add_argument("--json-out", metavar="PATH", default=None, help="also write the JSON result here (atomically)")
    p.add_argument(
        "--html",
        metavar="PATH",
        default=None,
        help="also write a self-contained HTML report (with several files: PATH gets each file's name as a suffix)",
    )
    return p


class _PlainProgress:
    """Progress for a stderr that is not a terminal (CI logs, `make demo | tee`): one line per phase."""

    def __init__(self):
        self._last = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description, total=None):
        return 0

    def update(self, task, description="", completed=0, total=None):
        phase = description.split(" (", 1)[0]
        if phase != self._last:
            self._last = phase
            print(f"  .. {phase}", file=sys.stderr, flush=True)


def _progress_ctx(enabled: bool):
    if not enabled:
        return _PlainProgress()
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def run(args) -> int:
    from circuitdsl.cli.common import compile_reporting, device_diagnostic, stdout_kept_for_output
    from circuitdsl.cli.outputs import Output, check_outputs, report_names
    from circuitdsl.diagnostics import CircuitError, Diagnostic, render

    def refuse(diags) -> int:
        print(render(diags), file=sys.stderr)
        return int(ExitCode.USAGE)

    if args.batch_size is not None and args.batch_size < 1:
        return refuse([Diagnostic("E902", f"--batch-size must be a positive integer, not {args.batch_size}")])
    if args.clean_cache is not None and args.clean_cache < 0:
        return refuse([Diagnostic("E902", f"--clean-cache must be a number of MiB >= 0, not {args.clean_cache}")])
    if getattr(args, "tests", None) is not None and args.tests < 0:
        return refuse([Diagnostic("E902", f"--tests must be a number of null draws >= 1, not {args.tests}")])
    if getattr(args, "tests_seed", None) is not None and args.tests_seed < 0:
        return refuse([Diagnostic("E902", f"--tests-seed must be >= 0, not {args.tests_seed}")])
    bad_phases = _select_phases(args)
    if bad_phases:
        return refuse([bad_phases])
    seeds = None
    if getattr(args, "seeds", None) is not None:
        from circuitdsl.stability import parse_seeds

        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as e:
            return refuse([Diagnostic("E902", f"--seeds: {e}")])
        if args.seed is not None:
            return refuse(
                [Diagnostic("E902", "--seed and --seeds cannot be used together", hint="--seeds 3 checks seed 3 alone")]
            )
    if getattr(args, "vary_data", False) and seeds is None:
        return refuse(
            [
                Diagnostic(
                    "E902", "--vary-data needs --seeds (it shifts each generated dataset's seed by the check's seed)"
                )
            ]
        )
    # Outputs are checked before any work: an input is never overwritten, two outputs never share a
    # file, and an unwritable path is found now, not after the check.
    html_paths = report_names(args.html, args.files) if args.html else []
    outputs = ([Output("--json-out", args.json_out)] if args.json_out else []) + [
        Output("--html", p) for p in html_paths
    ]
    bad = check_outputs(outputs, list(args.files))
    if bad:
        return refuse(bad)
    bad_device = device_diagnostic(args.device)
    if bad_device is not None:
        return refuse([bad_device])

    from circuitdsl.engine.spill import sweep_stale

    sweep_stale()  # spill directories left by killed runs (their owner's lock is gone) go first
    outcome = Outcome()
    results = []
    reports: list[tuple[str, Any, Any, Any]] = []  # (html path, result, hypothesis, stability): written at the end
    with stdout_kept_for_output() if args.format == "json" else nullcontext():
        for i, f in enumerate(args.files):
            compiled = compile_reporting(f)
            if compiled.hypothesis is None:
                outcome.error()
                continue
            h = compiled.hypothesis
            try:
                with _progress_ctx(sys.stderr.isatty()) as prog:
                    task = prog.add_task(f"{f}: starting", total=None) if prog else None

                    def progress(label, done, total, prog=prog, task=task, f=f):
                        if prog is not None:
                            prog.update(task, description=f"{f}: {label}", completed=done, total=total or None)

                    from circuitdsl.engine.check import run_check

                    def one(hh, seed, progress=progress):
                        more = {"minimality": False} if getattr(args, "no_minimality", False) else {}
                        return run_check(
                            hh,
                            seed=seed,
                            device=args.device,
                            batch_size=args.batch_size,
                            progress=progress,
                            completeness=not args.no_completeness,
                            tests=test_plan(hh, args),
                            clean_cache_bytes=None if args.clean_cache is None else args.clean_cache << 20,
                            cache=not getattr(args, "no_cache", False),
                            **more,
                        )

                    if seeds is None:
                        r = one(h, args.seed)
                    else:
                        from circuitdsl.stability import Stability, vary_data

                        per = []
                        for s in seeds:
                            progress(f"seed {s}", 0, 0)
                            per.append(one(vary_data(h, s) if args.vary_data else h, s))
                        stab = Stability(f, seeds, tuple(per), bool(args.vary_data))
            except CircuitError as e:
                print(render(e.diagnostics, "full", dict(compiled.sources)), file=sys.stderr)
                outcome.error()
                continue
            if seeds is not None:
                results.append(stab)
                if args.format == "text":
                    stab.render_text()
                if html_paths:
                    reports.append((html_paths[i], stab.results[0], h, stab))
                if not stab.passed:
                    outcome.claim_failed()
                continue
            results.append(r)
            if args.format == "text":
                render_text(r, f)
            if html_paths:
                reports.append((html_paths[i], r, h, None))
            if not r.passed:
                outcome.claim_failed()
    payload = [r.to_json() for r in results]
    if args.format == "json":
        print(json.dumps(payload, indent=2))
    if outcome.failed:
        # A run in which a file could not be checked writes no report: a partial result must not pass
        # for the whole run's, and an existing report stays as it was.
        if outputs:
            print(f"circuitdsl check: not writing {', '.join(f'`{o.path}`' for o in outputs)}: "
                  "a file could not be checked (see above)", file=sys.stderr)  # fmt: skip
        return int(outcome)
    from circuitdsl.report.build import write_report
    from circuitdsl.results import write_json_atomic

    writes: list[tuple[str, Callable[[], object]]] = [
        (path, functools.partial(write_report, path, r, h, device=args.device, stability=st))
        for path, r, h, st in reports
    ]
    if args.json_out:
        writes.append((args.json_out, lambda: write_json_atomic(args.json_out, payload)))
    for path, write in writes:
        try:
            write()
        except OSError as e:  # checked writable before the work; the disk filled or the folder went away since
            print(f"circuitdsl check: cannot write `{path}`: {e.strerror or e}", file=sys.stderr)
            outcome.error()
        else:
            print(f"wrote {path}", file=sys.stderr)
    return int(outcome)


PHASES = ("scores", "minimality", "completeness", "tests")


def _select_phases(args):
    """Fold --only into --no-minimality / --no-completeness / --no-tests; a Diagnostic when it names no phase."""
    from circuitdsl.diagnostics import Diagnostic

    only = getattr(args, "only", None)
    if only is not None:
        names = [x.strip() for x in only.split(",") if x.strip()]
        unknown = [x for x in names if x not in PHASES]
        if unknown or not names:
            return Diagnostic("E902", f"--only {only}: unknown phase `{unknown[0] if unknown else ''}`",
                              hint=f"phases: {', '.join(PHASES)} (scores always run)")  # fmt: skip
        if "tests" not in names and getattr(args, "tests", None) is not None:
            return Diagnostic("E902", f"--tests asks for the tests phase but --only {only} leaves it out")
        args.no_minimality = args.no_minimality or "minimality" not in names
        args.no_completeness = args.no_completeness or "completeness" not in names
        args.no_tests = getattr(args, "no_tests", False) or "tests" not in names
    return None


def test_plan(h, args):
    """The statistical tests to run for h: the file's `set tests.*`, changed by --tests, --tests-seed, --no-tests."""
    import dataclasses

    plan = h.tests
    if getattr(args, "no_tests", False):
        return dataclasses.replace(
            plan, sufficiency=False, necessity=False, equivalence=False, minimality=False, follow_expects=False
        )
    if getattr(args, "tests", None) is not None:
        plan = dataclasses.replace(
            plan, sufficiency=True, necessity=True, equivalence=True, minimality=True, r=args.tests or plan.r
        )
    if getattr(args, "tests_seed", None) is not None:
        plan = dataclasses.replace(plan, seed=args.tests_seed)
    return plan


def _f(v, digits=4) -> str:
    if v is None:
        return "undefined"
    return f"{v + 0.0:.{digits}g}" if v != 0 else "0"


def render_text(r, path: str, console=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = console or Console(highlight=False, soft_wrap=True)
    from circuitdsl.ir import metric_unit

    unit = metric_unit(r.metric)
    con.print(f"[bold]{path}[/bold]  model {r.model}, dataset {r.dataset} (N={r.n}), seed {r.seed}")
    con.print(f"metric [bold]{r.metric}[/bold] ({unit}); unclaimed senders ablated by [bold]{r.ablation}[/bold]")
    if r.treeify == "exact":
        con.print(f"treeification: exact, {r.tree_nodes:,} treeified nodes per example")
    else:
        con.print(f"[bold yellow]treeification: {r.treeify} (an approximation, see the note below)[/bold yellow]")
    t = Table(title="scores", show_lines=False)
    for c in ("score", "value", "95% interval / raw"):
        t.add_column(c)
    rec = r.recovered
    t.add_row("F(model)", _f(r.f_model), unit)
    t.add_row("F(scrubbed)", _f(r.f_scrubbed), unit)
    t.add_row("F(baseline)", _f(r.f_baseline), unit)
    gap = (
        f"gap F(model) - F(baseline) = {_f(rec.gap)} {unit}, standard error {_f(rec.gap_se)}"
        if rec.gap is not None
        else ""
    )
    t.add_row(
        "recovered",
        _f(rec.value),
        f"[{_f(rec.lower)}, {_f(rec.upper)}] ({rec.resamples} bootstrap resamples); {gap}"
        if rec.value is not None
        else "; ".join(x for x in (rec.undefined_reason or "", gap) if x),
    )
    t.add_row(
        "mean |delta|", _f(r.mean_abs_delta), f"median {_f(r.median_abs_delta)}, p90 {_f(r.p90_abs_delta)} {unit}"
    )
    t.add_row("KL(model||scrubbed)", _f(r.kl), f"nats (baseline {_f(r.kl_baseline)})")
    c = r.completeness
    if c.worst is not None:
        t.add_row(
            "incompleteness",
            _f(c.worst.incompleteness),
            f"worst K={{{', '.join(c.worst.nodes)}}}: F(C\\K)={_f(c.worst.f_c_minus_k)}, F(M\\K)={_f(c.worst.f_m_minus_k)}; "
            f"{len(c.trials)} K tried (sizes {list(c.sizes)}"
            + (f" searched as {list(c.searched_sizes)}" if c.searched_sizes and c.searched_sizes != c.sizes else "")
            + f", {c.samples} samples, {c.greedy_steps} greedy)",
        )
    else:
        t.add_row("incompleteness", "not run", c.skipped or "")
    if getattr(r.minimality, "skipped", None):
        t.add_row("minimality", "not run", r.minimality.skipped)
    else:
        t.add_row("minimality", _f(r.minimality.score), "smallest single-node removal / (F(model) - F(baseline))")
    con.print(t)
    if r.minimality.removals:
        m = Table(title="minimality: F(C) - F(C \\ {v})")
        m.add_column("node")
        m.add_column(f"raw ({unit})")
        m.add_column("fraction")
        for x in r.minimality.removals:
            m.add_row(escape(x.node), _f(x.raw), _f(x.fraction) + (" (changed nothing)" if x.changed_nothing else ""))
        con.print(m)
    if getattr(r, "tests", None) is not None:
        from circuitdsl.report.tests_view import render_tests_text

        render_tests_text(r, con)
    worst = sorted(r.examples, key=lambda e: -e.abs_delta)[:5]
    if worst:
        w = Table(title="worst examples by |m(scrubbed) - m(model)|")
        for col in ("id", "text", "m(model)", "m(scrubbed)", "m(baseline)"):
            w.add_column(col)
        for e in worst:
            txt = e.text if e.text is not None else " ".join(map(str, e.tokens))
            w.add_row(escape(e.id), escape(txt[:60]), _f(e.m_model), _f(e.m_scrubbed), _f(e.m_baseline))
        con.print(w)
    for n in r.notes:
        con.print(f"note: {escape(n)}")
    for x in r.expects:
        mark = "[green]PASS[/green]" if x.passed else "[red]FAIL[/red]"
        where = f" (line {x.line})" if x.line else ""
        con.print(
            f"{mark} expect {x.score} {x.op} {x.threshold:g}{where}: value {_f(x.value)}"
            + (f" - {escape(x.reason)}" if x.reason else "")
        )
    if not r.expects:
        con.print("no expect clauses")
    con.print()
