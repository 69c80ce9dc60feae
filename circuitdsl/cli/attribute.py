"""`circuitdsl attribute FILE [--method eap|eap-ig|exact] [--steps M] [--positions NAMES] [--per-position]
[--metric NAME] [--edges N | --threshold T] [--backbone] [-o OUT.circuit [--force] [--expect CLAUSE...]]
[--json PATH] [--mib PATH] [--heatmap PLOT] [--confirm K] [--top N] [--batch-size N] [--device cpu]`

Edge attribution patching (circuitdsl.attribute): a score for every edge of FILE's model graph (each
sender into each head's q, each key/value group's k and v, each MLP and out) and every node, from
FILE's dataset, ablation (`paired D2`: the paired corruption; `mean`, `zero`; `resample` scored as the
mean) and metric. FILE needs only its setup statements (model, datasets, metric, ablate); its claims,
if any, are ignored. With -o, a circuit cut from the ranking (the top N edges on paths from an
embedding to out, or every edge with |score| >= T) is written as a `.circuit` file with FILE's setup
statements, ready for `circuitdsl check`. --confirm K patches the top K edges exactly and prints the
rank correlation. The ranked table goes to stdout; progress, notes and diagnostics to stderr.
Exit: 0 done, 2 a usage, language, dataset or model error (E94x for attribution), 3 an internal error.
"""

from __future__ import annotations

import shlex
import sys

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("file", metavar="FILE", help=".circuit file giving the model, datasets, metric and ablation")
    p.add_argument(
        "--method",
        choices=("eap", "eap-ig", "exact"),
        default="eap",
        help="eap (2 forward + 1 backward pass), eap-ig (integrated gradients over the inputs; --steps), "
        "or exact edge patching of every edge (slow: one partial forward pass per edge)",
    )
    p.add_argument("--steps", type=int, default=5, help="EAP-IG interpolation steps (default 5)")
    p.add_argument(
        "--positions",
        default=None,
        metavar="NAMES",
        help="ablate senders only at these named positions (comma-separated), e.g. END,S2",
    )
    p.add_argument("--per-position", action="store_true", help="also break each score down by named position (JSON)")
    p.add_argument("--metric", default=None, help="score this metric instead of FILE's (e.g. margin for accuracy)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--edges", type=int, default=None, metavar="N", help="edges in the written circuit (default 20)")
    size.add_argument("--threshold", type=float, default=None, metavar="T", help="take every edge with |score| >= T")
    p.add_argument(
        "--backbone",
        action="store_true",
        help="keep the embeddings and every MLP wired to out in the circuit (as the README's IOI recipe)",
    )
    p.add_argument("-o", "--output", metavar="OUT.circuit", default=None, help="write the circuit as a .circuit file")
    p.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    p.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="CLAUSE",
        help="add `expect CLAUSE` to the written circuit, e.g. --expect 'recovered >= 0.8'",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="write every edge's and node's score as JSON (circuitdsl-attribution/1; `curve --scores` reads it)",
    )
    p.add_argument(
        "--mib", metavar="PATH", default=None, help="write MIB circuit-track JSON (scores; the circuit in_graph)"
    )
    p.add_argument("--heatmap", metavar="PLOT", default=None, help="write the sender x port heatmap (.png, .svg, .pdf)")
    p.add_argument("--confirm", type=int, default=0, metavar="K", help="patch the top K edges exactly and compare")
    p.add_argument("--top", type=int, default=20, help="rows of the ranked table (default 20)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="examples per pass (default 32); results do not depend on it"
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def _usage(code: str, msg: str, hint: str = "") -> int:
    from circuitdsl.diagnostics import Diagnostic, render

    print(render([Diagnostic(code, msg, hint=hint)]), file=sys.stderr)
    return int(ExitCode.USAGE)


def run(args) -> int:
    from pathlib import Path

    from circuitdsl.cli.common import compile_reporting, device_diagnostic
    from circuitdsl.cli.outputs import Output, refused
    from circuitdsl.diagnostics import CircuitError, Diagnostic, render
    from circuitdsl.ir import MetricKind

    for opt, v, lo in (
        ("--steps", args.steps, 1),
        ("--top", args.top, 1),
        ("--confirm", args.confirm, 0),
        ("--batch-size", args.batch_size, 1),
        ("--edges", args.edges, 1),
    ):
        if v is not None and v < lo:
            return _usage("E902", f"{opt} must be an integer >= {lo}, not {v}")
    if args.threshold is not None and not args.threshold >= 0:
        return _usage("E902", f"--threshold must be a number >= 0, not {args.threshold}")
    if args.output and Path(args.output).exists() and not args.force:
        return _usage(
            "E904", f"{args.output} exists: not overwriting it", "pass --force to replace it, or choose another -o"
        )
    if (args.expect or args.backbone or args.edges or args.threshold is not None) and not args.output:
        return _usage(
            "E902", "--edges, --threshold, --backbone and --expect shape the circuit written by -o: give -o OUT.circuit"
        )
    outs = [
        Output("-o", args.output),
        Output("--json", args.json),
        Output("--mib", args.mib),
        Output("--heatmap", args.heatmap),
    ]
    if refused(outs, [args.file]):
        return int(ExitCode.USAGE)
    metric = None
    if args.metric is not None:
        try:
            metric = MetricKind(args.metric)
        except ValueError:
            return _usage("E214", f"unknown metric `{args.metric}`", "one of " + ", ".join(k.value for k in MetricKind))
    bad = device_diagnostic(args.device)
    if bad is not None:
        print(render([bad]), file=sys.stderr)
        return int(ExitCode.USAGE)
    compiled = compile_reporting(args.file)
    if compiled.hypothesis is None:
        return int(ExitCode.USAGE)
    h = compiled.hypothesis
    positions = [p.strip() for p in args.positions.split(",") if p.strip()] if args.positions else None
    if args.per_position and args.method == "exact":
        print(
            "note: --per-position breaks down eap and eap-ig scores; exact patching has no per-position share",
            file=sys.stderr,
        )

    from circuitdsl.attribute import graph as agraph
    from circuitdsl.attribute import output, scores

    tty = sys.stderr.isatty()

    def progress(label, done, total):
        if tty or done + 1 == total:
            print(f"  .. {label} {done + 1}/{total}", file=sys.stderr, flush=True)

    try:
        setup = scores.prepare(
            h, device=args.device, batch_size=args.batch_size, metric=metric, positions=positions, method=args.method
        )
        att = scores.attribute(setup, args.method, steps=args.steps, per_position=args.per_position, progress=progress)
        exact = None
        if args.confirm and args.method != "exact":
            cells = output.ranked_cells(att)[: args.confirm]
            want = {(i, j) for i, j, _ in cells}
            edges = [e for e in setup.graph.edges if setup.graph.cell(e) in want]
            exact = scores.exact_scores(setup, edges, progress=progress)
    except CircuitError as e:
        print(render(e.diagnostics, "full", dict(compiled.sources)), file=sys.stderr)
        return int(ExitCode.USAGE)
    output.print_table(att, top=args.top, exact=exact)
    if exact is not None:
        pairs = [(s, float(exact.matrix[i, j])) for i, j, s in output.ranked_cells(att)[: args.confirm]]
        rho = output.spearman([a for a, _ in pairs], [b for _, b in pairs]) if len(pairs) > 2 else float("nan")
        print(
            f"exact patching of the top {len(pairs)}: Spearman rank correlation with {args.method} {rho:.3f} "
            f"({exact.seconds:.1f} s)"
        )
    written = None
    sel = None
    if args.output:
        sc = att.edge_scores()
        ranked = agraph.rank(sc, setup.graph.edges)
        bb = agraph.backbone_edges(setup.graph.shape) if args.backbone else ()
        n = args.edges if args.threshold is None else None
        if n is None and args.threshold is None:
            n = 20
        sel = agraph.select(sc, ranked, n=n, threshold=args.threshold, backbone=bb)
        if not sel.edges and not args.backbone:
            return _usage(
                "E944",
                f"no path from an embedding to out among the top {sel.taken} edges: nothing to claim",
                "take more edges (--edges N, a lower --threshold) or keep the backbone (--backbone)",
            )
        cmd = "circuitdsl attribute " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["attribute"] else ""
        text = output.circuit_source(
            att, sel, h.source_text, h.source_path or args.file, args.output, expects=args.expect, command=cmd
        )
        from circuitdsl.compiler import compile_source

        check = compile_source(text, args.output)
        if check.hypothesis is None:
            print(check.render("full"), file=sys.stderr)
            return _usage(
                "E943",
                f"the circuit written from the ranking would not compile at `{args.output}`",
                f"the setup statements come from `{args.file}`; check them (and the --expect clauses)",
            )
        warn = [d for d in check.diagnostics if d.code.startswith("W")]
        if warn:
            print(check.render("full"), file=sys.stderr)
        from circuitdsl.engine import treeify

        total, _ = treeify.count(check.hypothesis)
        if total > check.hypothesis.treeify.max_nodes and not check.hypothesis.treeify.shared_draws:
            print(
                render(
                    [
                        Diagnostic(
                            "W940",
                            f"the written circuit treeifies to {total:,} distinct computations, over the limit "
                            f"of {check.hypothesis.treeify.max_nodes:,}: `check` will refuse it (E601)",
                            hint="ablate by `paired`, `mean` or `zero` (no per-node draws), take fewer edges, or add "
                            "`set treeify.shared_draws = true` (an approximation, SEMANTICS.md section 3)",
                        )
                    ]
                ),
                file=sys.stderr,
            )
        from circuitdsl.atomic import write_text

        write_text(args.output, text)
        written = args.output
        print(
            f"wrote {args.output}: {len(sel.edges)} edges ({sel.taken} taken, {sel.pruned} off every embedding-to-out path)"
            + (" + the backbone" if sel.backbone else "")
            + f", {len(check.hypothesis.claims)} nodes",
            file=sys.stderr,
        )
    in_graph = sel.edges if sel is not None else ()
    if args.json:
        from circuitdsl.results import write_json_atomic

        write_json_atomic(args.json, output.to_json(att, in_graph=in_graph, exact=exact, circuit=written))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.mib:
        import json

        from circuitdsl.atomic import write_text
        from circuitdsl.mib import to_mib

        flagged = list(in_graph) + (
            list(agraph.backbone_edges(setup.graph.shape)) if sel is not None and sel.backbone else []
        )
        write_text(args.mib, json.dumps(to_mib(setup.graph.shape, flagged, att.edge_scores())) + "\n")
        print(
            f"wrote {args.mib}" + ("" if sel is not None else " (no circuit: every edge in_graph false; -o flags one)"),
            file=sys.stderr,
        )
    if args.heatmap:
        output.plot_heatmap(att, args.heatmap)
        print(f"wrote {args.heatmap}", file=sys.stderr)
    return int(ExitCode.OK)
