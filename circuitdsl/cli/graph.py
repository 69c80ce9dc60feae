"""`circuitdsl graph FILE -o PATH`: draw a compiled hypothesis (.dot/.gv, .svg or .png by suffix).

SVG/PNG use graphviz `dot` when installed, else a matplotlib drawing. Exit 0, or 2 on a
language or usage error.
"""

from __future__ import annotations

import sys

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("file", metavar="FILE", help="a .circuit file")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="output file: .dot, .gv, .svg or .png")
    p.add_argument("--no-graphviz", action="store_true", help="draw SVG/PNG with matplotlib even if `dot` is installed")
    return p


def run(args) -> int:
    from pathlib import Path

    from circuitdsl.cli.common import compile_reporting
    from circuitdsl.draw import SUFFIXES, write_drawing

    out = Path(args.output)
    if out.suffix.lower() not in SUFFIXES:
        print(
            f"circuitdsl graph: error: cannot draw to `{out}`: the suffix must be one of {', '.join(SUFFIXES)}",
            file=sys.stderr,
        )
        return int(ExitCode.USAGE)
    if not out.parent.is_dir():
        print(f"circuitdsl graph: error: folder `{out.parent}` does not exist", file=sys.stderr)
        return int(ExitCode.USAGE)
    from circuitdsl.cli.outputs import Output, refused

    if refused([Output("-o", args.output)], [args.file]):
        return int(ExitCode.USAGE)
    result = compile_reporting(args.file)
    if result.hypothesis is None:
        return int(ExitCode.USAGE)
    how = write_drawing(result.hypothesis, out, use_graphviz=not args.no_graphviz)
    print(f"wrote {out} ({how})")
    return int(ExitCode.OK)
