"""`circuitdsl mib export FILE -o GRAPH.json [--scores SCORES...]` and
`circuitdsl mib import GRAPH.json --like FILE -o OUT.circuit [--top N]`: circuits in MIB's circuit-track
JSON (circuitdsl.mib), so a circuit found elsewhere can be checked here and one found here compared there.

export: every edge of FILE's model graph, flagged in the graph when FILE claims it; scores from SCORES
(else 1 for claimed edges, 0 otherwise). Features and positions have no place in MIB's format: a note
on stderr says what was left out.
import: the edges flagged in the graph (or, with --top N, the N best by |score|) become `edge` statements
after the setup statements (model, datasets, metric, ablation, settings) of FILE; every node gets the
identity feature. The result is checked by compiling it before it is written.
Exit: 0 done, 2 a usage, language or file error (E920 for a MIB or scores file), 3 an internal error.
"""

from __future__ import annotations

import json
import sys

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    inner = p.add_subparsers(dest="mib_command", metavar="export|import")
    ex = inner.add_parser("export", help="write a .circuit file's circuit as MIB circuit-track JSON")
    ex.add_argument("file", metavar="FILE", help=".circuit file")
    ex.add_argument("-o", "--output", required=True, metavar="GRAPH.json", help="where to write the MIB JSON")
    ex.add_argument(
        "--scores",
        action="append",
        default=[],
        metavar="SCORES",
        help="edge scores to export (formats as `circuitdsl curve --scores`); default 1 in the circuit, 0 elsewhere",
    )
    im = inner.add_parser("import", help="turn MIB circuit-track JSON into a .circuit file")
    im.add_argument("graph", metavar="GRAPH.json", help="MIB circuit-track JSON")
    im.add_argument(
        "--like",
        required=True,
        metavar="FILE",
        help=".circuit file whose model, datasets, metric, ablation and settings to use",
    )
    im.add_argument("-o", "--output", required=True, metavar="OUT.circuit", help="where to write the .circuit file")
    im.add_argument(
        "--top",
        type=int,
        default=None,
        metavar="N",
        help="take the N edges of largest |score| instead of the in_graph flags",
    )
    return p


def _fail(code: str, msg: str, hint: str = "") -> int:
    from circuitdsl.diagnostics import Diagnostic, render

    print(render([Diagnostic(code, msg, hint=hint)]), file=sys.stderr)
    return int(ExitCode.USAGE)


def run(args) -> int:
    from circuitdsl.cli.common import compile_reporting
    from circuitdsl.cli.outputs import Output, refused
    from circuitdsl.mib import RankingError, circuit_text, load_mib, model_edges, read_rankings, to_mib

    if args.mib_command not in ("export", "import"):
        return _fail(
            "E902",
            "say what to do: `circuitdsl mib export FILE -o GRAPH.json` or "
            "`circuitdsl mib import GRAPH.json --like FILE -o OUT.circuit`",
        )
    inputs = [args.file, *args.scores] if args.mib_command == "export" else [args.graph, args.like]
    if refused([Output("-o", args.output)], inputs):
        return int(ExitCode.USAGE)
    compiled = compile_reporting(args.file if args.mib_command == "export" else args.like)
    if compiled.hypothesis is None:
        return int(ExitCode.USAGE)
    h = compiled.hypothesis
    shape = h.model.shape
    from circuitdsl.atomic import write_text

    if args.mib_command == "export":
        try:
            scores = read_rankings(args.scores, shape) if args.scores else None
        except RankingError as e:
            return _fail("E920", str(e))
        score_of = None
        if scores is not None:
            score_of = {e: (scores.edges[e] if e in scores.edges else scores.edge_score(e)) for e in model_edges(shape)}
            score_of = {e: (0.0 if v == float("inf") else v) for e, v in score_of.items()}
        d = to_mib(shape, h.edges, score_of)
        write_text(args.output, json.dumps(d) + "\n")
        lost = []
        if any(c.feature.kind.value != "input" for c in h.claims):
            lost.append("features (MIB circuits claim components, not what they compute)")
        if any(c.positions for c in h.claims):
            lost.append("position restrictions")
        if shape.pos_embed == "learned":
            lost.append("the difference between embed and pos (MIB's `input` is both)")
        if lost:
            print(f"note: MIB's format has no place for {'; '.join(lost)}", file=sys.stderr)
        n_in = sum(v["in_graph"] for v in d["edges"].values())
        print(f"wrote {args.output}: {len(d['edges']):,} edges, {n_in:,} in the graph", file=sys.stderr)
        return int(ExitCode.OK)

    try:
        with open(args.graph, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        return _fail("E920", f"cannot read `{args.graph}`: {getattr(e, 'strerror', None) or e}")
    except json.JSONDecodeError as e:
        return _fail("E920", f"`{args.graph}` is not JSON ({e.msg} at line {e.lineno})")
    if not isinstance(d, dict) or not isinstance(d.get("edges"), dict):
        return _fail("E920", f"`{args.graph}` is not MIB circuit-track JSON (no `edges` object)")
    try:
        ranking = load_mib(d, shape, args.graph)
    except RankingError as e:
        return _fail("E920", str(e))
    if args.top is not None:
        if args.top < 1:
            return _fail("E902", f"--top must be a positive number of edges, not {args.top}")
        edges = ranking.ranked(model_edges(shape))[: args.top]
    else:
        edges = sorted(ranking.in_graph)
        if not edges:
            return _fail(
                "E920", f"`{args.graph}` flags no edge as in_graph", hint="--top N takes the N edges of largest |score|"
            )
    text = circuit_text(
        edges,
        h.source_text,
        h.source_path or args.like,
        comment=f"Imported from MIB circuit-track JSON {args.graph} by `circuitdsl mib import`:\n"
        f"{len(edges)} edges, every node with the identity feature.",
    )
    from circuitdsl.compiler import compile_source

    check = compile_source(text, args.output)
    if check.hypothesis is None:
        print(check.render("full"), file=sys.stderr)
        return _fail(
            "E920",
            f"the file written from `{args.graph}` would not compile at `{args.output}`",
            hint=f"the setup statements come from `{args.like}`: relative paths in them (JSONL datasets) are "
            "relative to the folder of the file; write OUT next to it",
        )
    write_text(args.output, text)
    print(f"wrote {args.output}: {len(edges)} edges, {len(check.hypothesis.claims)} nodes", file=sys.stderr)
    return int(ExitCode.OK)
