"""What every subcommand that reads a .circuit file does first."""

from __future__ import annotations

import sys


def compile_reporting(path):
    """Compile `path` and print its diagnostics (errors, warnings, notes) to stderr in full form.
    Returns the CompileResult; its `hypothesis` is None when there was an error (exit code 2)."""
    from circuitdsl.compiler import compile_file

    compiled = compile_file(path)
    if compiled.diagnostics:
        print(compiled.render("full"), file=sys.stderr)
    return compiled
