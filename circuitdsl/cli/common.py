"""What several subcommands share: compiling with diagnostics on stderr, keeping stdout for a JSON
document, validating `--device`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["compile_reporting", "stdout_kept_for_output", "device_diagnostic", "shown_diagnostics", "QUIET_ENV"]

QUIET_ENV = "CIRCUITDSL_QUIET"
"""Comma-separated note and warning codes not to print (`N301`, `W301`), or `notes` for every note.
Errors are always printed; `lint --format json` lists everything."""


def shown_diagnostics(diags) -> list:
    """The diagnostics a person is shown: a note or warning code named in $CIRCUITDSL_QUIET left out, and a
    note repeated in one file shown once (its hint says how many more there are)."""
    import dataclasses

    from circuitdsl.diagnostics import Diagnostic, Severity

    quiet = {c.strip().upper() for c in os.environ.get(QUIET_ENV, "").split(",") if c.strip()}
    out: list[Diagnostic] = []
    first: dict[tuple[str, str | None], int] = {}
    extra: dict[tuple[str, str | None], int] = {}
    for d in diags:
        if d.severity is not Severity.ERROR and (
            d.code.upper() in quiet or (d.severity is Severity.NOTE and "NOTES" in quiet)
        ):
            continue
        if d.severity is Severity.NOTE:
            key = (d.code, d.span.file if d.span is not None else None)
            if key in first:
                extra[key] = extra.get(key, 0) + 1
                continue
            first[key] = len(out)
        out.append(d)
    for key, k in extra.items():
        d = out[first[key]]
        more = f"({k} more {d.code} note{'s' * (k != 1)} in this file; {QUIET_ENV}={d.code} silences them)"
        out[first[key]] = dataclasses.replace(d, hint=f"{d.hint} {more}" if d.hint else more)
    if first and not extra:
        for i in first.values():
            d = out[i]
            tip = f"({QUIET_ENV}={d.code} silences this note)"
            out[i] = dataclasses.replace(d, hint=f"{d.hint} {tip}" if d.hint else tip)
    return out


def compile_reporting(path):
    """Compile `path` and print its diagnostics (errors, warnings, notes) to stderr in full form (notes
    once per file and code; codes in $CIRCUITDSL_QUIET left out). Returns the CompileResult; its
    `hypothesis` is None when there was an error (exit code 2)."""
    from circuitdsl.compiler import compile_file
    from circuitdsl.diagnostics import render

    compiled = compile_file(path)
    shown = shown_diagnostics(compiled.diagnostics)
    if shown:
        print(render(shown, "full", dict(compiled.sources)), file=sys.stderr)
    return compiled


@contextmanager
def stdout_kept_for_output() -> Iterator[None]:
    """While the block runs, whatever is written to stdout (a feature module that prints when it is
    imported, even from C code writing to file descriptor 1) goes to stderr instead, so that a
    command whose stdout is one JSON document prints only that document after the block."""
    real = sys.stdout
    try:
        real.flush()
    except (OSError, ValueError):
        pass
    saved = None
    try:
        if real is sys.__stdout__ and real is not None and real.fileno() == 1:
            saved = os.dup(1)
            sys.stderr.flush()
            os.dup2(2, 1)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a captured stream): objects only
        saved = None
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        sys.stdout = real
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def device_diagnostic(device: str):
    """None if torch can use `device`, else a Diagnostic (E909) saying why. Imports torch."""
    from circuitdsl.diagnostics import Diagnostic

    try:
        import torch
    except ImportError:
        return Diagnostic("E909", f"--device {device}: torch is not installed",
                          hint="install the engine: pip install 'circuitdsl[engine]'")  # fmt: skip
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return Diagnostic("E909", f"unknown device `{device}`",
                          hint="use `cpu`, `cuda`, `cuda:N` or `mps`")  # fmt: skip
    if dev.type == "cpu":
        return None
    backend = getattr(torch, dev.type, None) if dev.type != "mps" else getattr(torch.backends, "mps", None)
    is_available = getattr(backend, "is_available", None)
    try:
        available = bool(is_available()) if callable(is_available) else False
    except Exception:  # a broken driver: report it as unavailable, not a traceback
        available = False
    if not available:
        return Diagnostic("E909", f"device `{device}` is not available on this machine",
                          hint="use `--device cpu`, or run where that accelerator and its torch build are installed")  # fmt: skip
    if dev.type == "cuda" and dev.index is not None:
        count = torch.cuda.device_count()
        if dev.index >= count:
            return Diagnostic("E909", f"device `{device}` does not exist: this machine has {count} CUDA device(s)",
                              hint=f"use cuda:0 .. cuda:{count - 1}" if count else "use `--device cpu`")  # fmt: skip
    return None
