"""`circuitdsl fmt FILE... [--check]`: rewrite .circuit files in canonical form.

A file is rewritten atomically (temp file + os.replace) and only if it parses and its formatted
text provably means the same (circuitdsl.fmt checks the round trip and keeps every comment).
A file with a syntax error is left untouched. Semantic errors (unknown heads...) do not stop
formatting: `lint` reports those.
Exit: 0 nothing to change / all formatted, 1 `--check` found a file to change, 2 an error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from circuitdsl.atomic import write_text
from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("files", nargs="+", metavar="FILE", help=".circuit files")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    return p


def _write_atomically(path: Path, text: str) -> None:
    write_text(path, text, keep_mode=True)


def run(args) -> int:
    from circuitdsl.compiler.codes import diag
    from circuitdsl.compiler.load import read_text
    from circuitdsl.diagnostics import CircuitError, render
    from circuitdsl.fmt import FormatterBug, format_source

    error = changed = False
    for f in args.files:
        text, why = read_text(f)
        if text is None:
            print(render([diag("E901", f"cannot read `{f}`: {why}")], "full"), file=sys.stderr)
            error = True
            continue
        try:
            out = format_source(text, f)
        except CircuitError as e:
            print(render(e.diagnostics, "full", {f: text}), file=sys.stderr)
            print(f"{f}: not formatted (syntax error)", file=sys.stderr)
            error = True
            continue
        except FormatterBug as e:
            print(f"{f}: not formatted: internal formatter error ({e}); please report it", file=sys.stderr)
            error = True
            continue
        if out == text:
            continue
        changed = True
        if args.check:
            print(f"would reformat {f}")
        else:
            _write_atomically(Path(f), out)
            print(f"reformatted {f}")
    if error:
        return int(ExitCode.USAGE)
    if changed and args.check:
        return int(ExitCode.CLAIM_FAILED)
    return int(ExitCode.OK)
