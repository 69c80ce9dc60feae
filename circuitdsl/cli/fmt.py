"""`circuitdsl fmt FILE... [--check]`: rewrite .circuit files in canonical form.

A file is rewritten atomically (temp file + os.replace) and only if it parses and its formatted
text provably means the same (circuitdsl.fmt checks the round trip and keeps every comment).
A file with a syntax error is left untouched. Semantic errors (unknown heads...) do not stop
formatting: `lint` reports those.
Exit: 0 nothing to change / all formatted, 1 `--check` found a file to change, 2 an error (a file
that cannot be read or has a syntax error), 3 an internal error (the formatter's output would not
mean the same: the file is left as it was). Through a symbolic link the file it points to is
rewritten; the link stays.
"""

from __future__ import annotations

import sys

from circuitdsl.atomic import write_text
from circuitdsl.cli.exitcodes import ExitCode, Outcome

__all__ = ["add_parser", "run"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("files", nargs="+", metavar="FILE", help=".circuit files")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    return p


def run(args) -> int:
    from circuitdsl.atomic import target_of
    from circuitdsl.compiler.codes import diag
    from circuitdsl.compiler.load import read_text
    from circuitdsl.diagnostics import CircuitError, render
    from circuitdsl.fmt import FormatterBug, format_source

    outcome = Outcome()
    for f in args.files:
        text, why = read_text(f)
        if text is None:
            print(render([diag("E901", f"cannot read `{f}`: {why}")], "full"), file=sys.stderr)
            outcome.error()
            continue
        try:
            out = format_source(text, f)
        except CircuitError as e:
            print(render(e.diagnostics, "full", {f: text}), file=sys.stderr)
            print(f"{f}: not formatted (syntax error)", file=sys.stderr)
            outcome.error()
            continue
        except FormatterBug as e:
            print(f"{f}: not formatted: internal formatter error ({e}); please report it", file=sys.stderr)
            outcome.record(ExitCode.INTERNAL)
            continue
        if out == text:
            continue
        if args.check:
            print(f"would reformat {f}")
            outcome.claim_failed()
            continue
        try:
            # through a symbolic link: the file it points to is rewritten and the link kept
            write_text(target_of(f), out)
        except OSError as e:
            print(render([diag("E901", f"cannot write `{f}`: {e.strerror or e}")], "full"), file=sys.stderr)
            outcome.error()
            continue
        print(f"reformatted {f}")
    return int(outcome)
