"""Output paths, checked before any work: nothing a user owns is overwritten by accident, and a run
does not compute for minutes to find that its result cannot be written.

- an output may not be one of the command's inputs (`check h.circuit --json-out h.circuit`): E906;
- two outputs of one run may not be one file (`--json-out r --html r`; two reports named alike): E907;
- an output must be writable: its folder (or the nearest existing folder above it: missing folders
  are created) accepts a new file, it is not a folder, and an existing file there is not read-only: E908.

Paths are compared as the files they name (through symbolic links), so `./h.circuit`, an absolute
path and a link to it are all the same input.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from circuitdsl.atomic import target_of
from circuitdsl.diagnostics import Diagnostic

__all__ = ["Output", "check_outputs", "refused", "report_names"]


@dataclass(frozen=True)
class Output:
    option: str
    """How the user gave it (`--json-out`, `--html`, `-o`)."""
    path: str


def _key(path: str) -> str:
    try:
        return os.path.normcase(os.path.realpath(target_of(path)))
    except (OSError, ValueError):
        return os.path.normcase(os.path.abspath(path))


def _same(a: str, b: str) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except (OSError, ValueError):
        pass
    return _key(a) == _key(b)


def _writable(out: Output) -> Diagnostic | None:
    try:
        target = target_of(out.path)
        if target.is_dir():
            return Diagnostic("E908", f"{out.option} `{out.path}` is a folder", hint="give a file name")
        folder = target.parent
        while not folder.exists() and folder != folder.parent:  # missing folders are created when writing
            folder = folder.parent
        if not folder.is_dir():
            return Diagnostic("E908", f"{out.option} `{out.path}`: `{folder}` is not a folder",
                              hint="choose a path in a folder you can write to")  # fmt: skip
        if target.exists() and not os.access(target, os.W_OK):
            return Diagnostic("E908", f"{out.option} `{out.path}` is read-only: not replacing it",
                              hint="make it writable, or choose another path")  # fmt: skip
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:100]}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e)
        return Diagnostic("E908", f"{out.option} `{out.path}` cannot be written: {why}",
                          hint="choose a path in a folder you can write to")  # fmt: skip
    return None


def check_outputs(outputs: list[Output], inputs: list[str]) -> list[Diagnostic]:
    """Every problem with the run's outputs (empty: all may be written)."""
    diags: list[Diagnostic] = []
    for i, out in enumerate(outputs):
        hit = next((src for src in inputs if _same(out.path, src)), None)
        if hit is not None:
            diags.append(Diagnostic("E906", f"{out.option} `{out.path}` is an input of this command (`{hit}`): not overwriting it",
                                    hint="write the output to another path"))  # fmt: skip
            continue
        twin = next((o for o in outputs[:i] if _same(o.path, out.path)), None)
        if twin is not None:
            diags.append(Diagnostic("E907", f"{out.option} `{out.path}` is the same file as {twin.option} `{twin.path}`",
                                    hint="give each output its own path"))  # fmt: skip
            continue
        bad = _writable(out)
        if bad is not None:
            diags.append(bad)
    return diags


def report_names(base: str, sources: list[str]) -> list[str]:
    """One report path per source: `base` itself for one source; else `base`'s stem, a dash and the
    shortest tail of each source's path that tells the sources apart (`rep-x.html` when the names
    differ, `rep-a-x.html` and `rep-b-x.html` for `a/x.circuit` and `b/x.circuit`), and a number for
    a source given twice."""
    out = Path(base)
    if len(sources) == 1:
        return [str(out)]
    parts = []
    for s in sources:
        p = Path(os.path.abspath(s))
        parts.append([*[q for q in p.parent.parts if q not in (os.sep, "")], p.stem])
    tails: list[str] = []
    for _i, ps in enumerate(parts):
        k = 1
        while k < len(ps) and any(other != ps and other[-k:] == ps[-k:] for other in parts):
            k += 1
        tails.append("-".join(ps[-k:]))
    seen: dict[str, int] = {}
    names = []
    for t in tails:
        seen[t] = seen.get(t, 0) + 1
        tag = t if seen[t] == 1 else f"{t}-{seen[t]}"
        names.append(str(out.with_name(f"{out.stem}-{tag}{out.suffix or '.html'}")))
    return names


def refused(outputs: list[Output], inputs: list[str]) -> bool:
    """Print the problems with `outputs` (check_outputs) to stderr; True if there were any."""
    import sys

    from circuitdsl.diagnostics import render

    diags = check_outputs([o for o in outputs if o.path], [i for i in inputs if i])
    if diags:
        print(render(diags), file=sys.stderr)
    return bool(diags)
