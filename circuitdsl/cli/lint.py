"""`circuitdsl lint FILE... [--format full|concise|json]`: parse and validate against model shapes.

Diagnostics go to stderr (full, concise); `--format json` prints one JSON array of every
diagnostic to stdout (it is the command's output). Warnings and notes do not fail lint.
Exit: 0 no errors, 2 an error in any file, 3 an internal error.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext

from circuitdsl.cli.exitcodes import Outcome

__all__ = ["add_parser", "run"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("files", nargs="+", metavar="FILE", help=".circuit files")
    p.add_argument(
        "--format", choices=("full", "concise", "json"), default="full", help="diagnostic format (default full)"
    )
    return p


def run(args) -> int:
    from circuitdsl.cli.common import shown_diagnostics, stdout_kept_for_output
    from circuitdsl.compiler import compile_file
    from circuitdsl.diagnostics import Severity, render

    outcome = Outcome()
    everything: list[dict] = []
    # --format json: stdout is one JSON document, even when a feature module prints on import
    with stdout_kept_for_output() if args.format == "json" else nullcontext():
        for f in args.files:
            result = compile_file(f)
            everything.extend(d.to_json() for d in result.diagnostics)
            shown = shown_diagnostics(result.diagnostics) if args.format != "json" else []
            if shown:
                print(render(shown, args.format, dict(result.sources)), file=sys.stderr)
                if args.format == "full":
                    print(file=sys.stderr)
            if result.hypothesis is None:
                outcome.error()
                continue
            if args.format != "json":
                h = result.hypothesis
                warnings = sum(d.severity is Severity.WARNING for d in result.diagnostics)
                extra = f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
                print(f"{f}: ok ({len(h.claims)} nodes, {len(h.edges)} edges, model {h.model.name}{extra})")
    if args.format == "json":
        print(json.dumps(everything, indent=2))
    return int(outcome)
