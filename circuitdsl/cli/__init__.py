"""The `circuitdsl` command. Each subcommand lives in its own module with
`add_parser(subparsers)` registering it and `run(args) -> int` returning the exit code.

Exit codes (one owner: `circuitdsl.cli.exitcodes`): 0 all claims hold, 1 a claim failed,
2 a usage, language, dataset or model error, 3 an internal error (the traceback goes to a file whose
path is printed), 130 interrupted (SIGINT), 141 stdout closed before the output was written, 143
terminated (SIGTERM).
"""

from __future__ import annotations

import sys

# Nothing heavy is imported before main() has installed its signal handlers (circuitdsl.cli.runtime):
# a Ctrl-C in the first milliseconds must not print a KeyboardInterrupt traceback from an import.

__all__ = ["main", "build_parser"]

# (subcommand, module, one-line help)
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("lint", "circuitdsl.cli.lint", "parse and validate .circuit files against their models' shapes"),
    ("fmt", "circuitdsl.cli.fmt", "rewrite .circuit files in canonical form (--check: only report)"),
    ("graph", "circuitdsl.cli.graph", "draw a compiled hypothesis (DOT, SVG, PNG)"),
    ("check", "circuitdsl.cli.check", "check a hypothesis against its model by causal scrubbing"),
    ("report", "circuitdsl.cli.report", "turn a check's JSON result into a self-contained HTML report"),
    (
        "measure",
        "circuitdsl.cli.measure",
        "the behaviour itself: accuracy, logit difference, probability, margin on a dataset",
    ),
    ("tokens", "circuitdsl.cli.tokens", "show how a dataset tokenizes: each row's tokens and named positions"),
    ("patch", "circuitdsl.cli.patch", "activation/path patching sweeps: ranked table and heatmap"),
    ("discover", "circuitdsl.cli.discover", "turn a patching sweep into a starting .circuit file"),
    ("falsify", "circuitdsl.cli.falsify", "search the dataset family for inputs that break a hypothesis"),
    ("curve", "circuitdsl.cli.curve", "faithfulness curve of an edge ranking: f(k), CPR and CMD (as MIB)"),
    ("mib", "circuitdsl.cli.mib", "import and export circuits as MIB circuit-track JSON"),
    (
        "attribute",
        "circuitdsl.cli.attribute",
        "edge attribution patching (EAP, EAP-IG): score every edge, write a .circuit",
    ),
)


def build_parser():
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog="circuitdsl",
        description="Circuit hypotheses about transformer language models, checked like code.",
    )
    parser.add_argument("--version", action="version", version=f"circuitdsl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in SUBCOMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue  # not built yet: it does not appear in --help, and is not pretended
        p = mod.add_parser(sub, name, help_text)
        p.set_defaults(_run=mod.run)
    return parser


def _version() -> str:
    from circuitdsl import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Run one `circuitdsl` command; returns its exit code. Nothing escapes as a traceback: a
    diagnostic that escapes a subcommand exits 2, a bug 3 (traceback written to a file), SIGINT 130
    and SIGTERM 143, each with one line on stderr."""
    from circuitdsl.cli.runtime import Terminated, signals_handled

    try:
        with signals_handled():
            return _guarded(argv)
    except (KeyboardInterrupt, Terminated) as e:  # in the instant around _guarded, outside its own handler
        return _stopped(e)


def _stopped(e: BaseException) -> int:
    from circuitdsl.cli.exitcodes import ExitCode, code_for

    code = code_for(e)
    what = "interrupted (SIGINT)" if code is ExitCode.INTERRUPTED else "terminated (SIGTERM)"
    try:
        print(f"circuitdsl: {what}; no file was left half-written", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    return int(code)


def _guarded(argv: list[str] | None) -> int:
    from circuitdsl.cli.exitcodes import ExitCode, Terminated, code_for

    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
            return int(e.code or 0)
        if not getattr(args, "_run", None):
            parser.print_help(sys.stderr)
            return int(ExitCode.USAGE)
        return int(args._run(args))
    except (KeyboardInterrupt, Terminated) as e:
        return _stopped(e)
    except BrokenPipeError:  # `circuitdsl check --format json | head`: the reader went away
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (no second error at exit's flush)
        try:
            print("circuitdsl: stdout was closed before the output was written; the verdict was not reported",
                  file=sys.stderr, flush=True)  # fmt: skip
        except (OSError, ValueError):
            pass
        return int(ExitCode.BROKEN_PIPE)  # not 0: a failed claim must not read as success
    except Exception as e:
        if code_for(e) is ExitCode.USAGE:  # a diagnostic no subcommand caught: still the user's error
            from circuitdsl.diagnostics import CircuitError, render

            assert isinstance(e, CircuitError)  # (what code_for calls USAGE)
            print(render(e.diagnostics, "full"), file=sys.stderr)
            return int(ExitCode.USAGE)
        return _internal_error(e, argv)


def _internal_error(e: BaseException, argv: list[str] | None) -> int:
    from circuitdsl.cli.exitcodes import ExitCode
    from circuitdsl.cli.runtime import REPORT_HOW, write_crash_report

    where = write_crash_report(e, argv)
    what = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
    if len(what) > 200:
        what = what[:197] + "..."
    place = f"the traceback is in {where}" if where else "the traceback could not be written"
    print(f"circuitdsl: internal error ({what}); {place}; {REPORT_HOW}", file=sys.stderr, flush=True)
    return int(ExitCode.INTERNAL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
