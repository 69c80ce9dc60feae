"""`circuitdsl curve FILE --scores SCORES [--scores SCORES...] [-o PLOT] [--json PATH] [--seed N]
[--signed] [--device cpu] [--batch-size N]`: the faithfulness curve of an edge ranking (SEMANTICS.md
section 5, as MIB): f(k) = recovered of the top-k edges at 0.1% .. 100% of the model graph's edges,
with CPR and CMD. FILE gives the model, datasets, metric and ablation (its own circuit is scored too and
marked on the plot); SCORES are MIB JSON, `circuitdsl patch --json` output, or edge/node scores as JSON
or CSV (circuitdsl.mib). The table goes to stdout, progress and diagnostics to stderr.
Exit: 0 done, 2 a usage, language, dataset, model or scores-file error (E920), 3 an internal error.
"""

from __future__ import annotations

import sys

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run", "print_curve"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument(
        "file",
        metavar="FILE",
        help=".circuit file: model, datasets, metric and ablation (and its circuit, for comparison)",
    )
    p.add_argument(
        "--scores",
        action="append",
        required=True,
        metavar="SCORES",
        help="edge ranking: MIB JSON, `circuitdsl patch --json` output, JSON or CSV of edge or node scores "
        "(repeat to merge, e.g. a head sweep and an MLP sweep)",
    )
    p.add_argument(
        "-o", "--output", metavar="PLOT", default=None, help="write the curve as an image (.png, .svg, .pdf)"
    )
    p.add_argument("--json", metavar="PATH", default=None, help="write the curve as JSON (schema circuitdsl-curve/1)")
    p.add_argument("--seed", type=int, default=None, help="override the file's `set seed`")
    p.add_argument(
        "--signed", action="store_true", help="rank edge scores by signed value (default: by |score|, as MIB)"
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="rows per block run (default 64); results do not depend on it"
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the on-disk cache of clean activations (docs/CLI.md); results do not depend on it",
    )
    return p


def _g(v) -> str:
    return "undefined" if v is None else f"{v + 0.0:.4g}"


def print_curve(c, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(file=file, highlight=False, soft_wrap=True)
    con.print(
        f"[bold]{c.name}[/bold]  model {c.model}, dataset {c.dataset} (N={c.n}), metric {c.metric}, "
        f"ablation {c.ablation}, seed {c.seed}"
    )
    con.print(
        f"ranking: {', '.join(c.ranking)} ({'signed' if c.signed else '|score|'}); {c.n_edges:,} edges in the model graph"
    )
    t = Table(title="faithfulness curve: f(k) = recovered of the top-k edges (identity features)")
    for col in ("fraction", "k edges", "nodes", "F", "f(k)"):
        t.add_column(col)
    for p in c.points:
        t.add_row(
            f"{100 * p.fraction:g}%",
            str(p.k),
            str(p.nodes),
            _g(p.f_raw),
            _g(p.f) if p.reason is None else f"undefined: {p.reason}",
        )
    con.print(t)
    con.print(f"F(model) {_g(c.f_model)}, F(baseline) {_g(c.f_baseline)}")
    con.print(
        f"CPR {_g(c.cpr)}  CMD {_g(c.cmd)}  (trapezoids over the fraction of edges, as MIB's leaderboard); "
        f"over log fraction, normalised: CPR {_g(c.cpr_log)}, CMD {_g(c.cmd_log)}"
    )
    if c.circuit_fraction is not None:
        con.print(
            f"{c.name} itself: {100 * c.circuit_fraction:.3g}% of the edges, recovered {_g(c.circuit_f)} (its own features)"
        )
    if c.undefined_reason:
        con.print(f"note: {c.undefined_reason}")
    con.print(f"{c.scrubs} scrubs, {c.seconds:.1f} s")


def run(args) -> int:
    from circuitdsl.cli.common import compile_reporting, device_diagnostic
    from circuitdsl.cli.outputs import Output, refused
    from circuitdsl.diagnostics import CircuitError, Diagnostic, render

    if args.batch_size is not None and args.batch_size < 1:
        print(
            render([Diagnostic("E902", f"--batch-size must be a positive integer, not {args.batch_size}")]),
            file=sys.stderr,
        )
        return int(ExitCode.USAGE)
    if refused([Output("-o", args.output), Output("--json", args.json)], [args.file, *args.scores]):
        return int(ExitCode.USAGE)
    bad = device_diagnostic(args.device)
    if bad is not None:
        print(render([bad]), file=sys.stderr)
        return int(ExitCode.USAGE)
    compiled = compile_reporting(args.file)
    if compiled.hypothesis is None:
        return int(ExitCode.USAGE)
    h = compiled.hypothesis
    from circuitdsl.mib import RankingError, read_rankings

    try:
        ranking = read_rankings(args.scores, h.model.shape)
    except RankingError as e:
        print(
            render([Diagnostic("E920", str(e), hint="docs/TESTS.md lists the formats a scores file may have")]),
            file=sys.stderr,
        )
        return int(ExitCode.USAGE)
    from circuitdsl.engine.curves import faithfulness_curve, plot_curve

    def progress(label, done, total):
        print(f"  .. {label} {done + 1}/{total}", file=sys.stderr, flush=True)

    try:
        c = faithfulness_curve(
            h,
            ranking,
            seed=args.seed,
            device=args.device,
            batch_size=args.batch_size,
            signed=args.signed,
            progress=progress,
            cache=not args.no_cache,
        )
    except CircuitError as e:
        print(render(e.diagnostics, "full", dict(compiled.sources)), file=sys.stderr)
        return int(ExitCode.USAGE)
    print_curve(c)
    if args.output:
        plot_curve(c, args.output)
        print(f"wrote {args.output}", file=sys.stderr)
    if args.json:
        from circuitdsl.results import write_json_atomic

        write_json_atomic(args.json, c.to_json())
        print(f"wrote {args.json}", file=sys.stderr)
    return int(ExitCode.OK)
