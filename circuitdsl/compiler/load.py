"""Reading a root file and everything it imports into one `Unit` (the stage before the passes).

`import "x.circuit"` is resolved relative to the importing file and inlined where it stands. A file
imported twice along different paths is read once; an import that leads back to a file being
read is an import cycle (E306), reported with every import on the cycle.
"""

from __future__ import annotations

import os
from pathlib import Path

from circuitdsl import ast
from circuitdsl.compiler.codes import diag
from circuitdsl.compiler.unit import Unit, base_dir
from circuitdsl.diagnostics import CircuitError, Diagnostic, Label

__all__ = ["load_source", "read_text"]


def read_text(path: str) -> tuple[str | None, str]:
    """(text, '') or (None, why it cannot be read). Any path is answered, never raised on: one with a NUL
    byte, one too long for the file system, a folder, a device, a file too large to be a hypothesis."""
    from circuitdsl.parser import MAX_SOURCE_CHARS

    try:
        p = Path(path)
        if not p.exists():
            return None, "no such file"
        if not p.is_file():
            return None, "not a file"
        with open(p, "rb") as f:
            data = f.read(4 * MAX_SOURCE_CHARS + 1)
    except ValueError:  # "embedded null byte"
        return None, "the path contains a NUL character"
    except OSError as e:
        return None, e.strerror or str(e)
    if len(data) > 4 * MAX_SOURCE_CHARS:
        return None, f"larger than {4 * MAX_SOURCE_CHARS >> 10} KiB: not a hypothesis file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        col = len(data[line_start : e.start].decode("utf-8", "replace")) + 1
        return None, f"not UTF-8 text (line {line}, column {col}: byte 0x{data[e.start]:02x})"
    return text.removeprefix("\ufeff"), ""  # a byte-order mark is not part of the text


def _display(importer: str, rel: str) -> str:
    if importer.startswith("<"):
        return os.path.normpath(rel)
    return os.path.normpath(os.path.join(os.path.dirname(importer), rel))


def _key(path: str) -> str:
    return str(Path(path).resolve()) if not path.startswith("<") else path


MAX_TOTAL_CHARS = 1 << 20
"""Characters a hypothesis may hold with everything it imports (each file: parser.MAX_SOURCE_CHARS)."""


def load_source(text: str, path: str = "<string>") -> Unit:
    from circuitdsl.parser import parse_source

    sources: dict[str, str] = {}
    statements: list[ast.Statement] = []
    diags: list[Diagnostic] = []
    done: set[str] = set()

    total = [0]

    def visit(file: str, src: str, chain: tuple[tuple[str, ast.Import | None], ...]) -> None:
        sources[file] = src
        done.add(_key(file))
        total[0] += len(src)
        try:
            module = parse_source(src, file)
        except CircuitError as e:
            diags.extend(e.diagnostics)
            return
        for stmt in module.statements:
            if not isinstance(stmt, ast.Import):
                statements.append(stmt)
                continue
            target = _display(file, stmt.path)
            key = _key(target)
            on_chain = [i for i, (f, _) in enumerate(chain) if _key(f) == key]
            if on_chain:
                loop = chain[on_chain[0] + 1 :]
                related = tuple(Label(imp.span, f"`{imp.span.file}` imports `{f}` here") for f, imp in loop if imp)
                diags.append(
                    diag(
                        "E306",
                        f"import cycle: `{target}` is already being imported",
                        stmt.span,
                        label=f"`{target}` leads back here",
                        hint="move the shared statements into a third file that both import",
                        related=related,
                    )
                )
                continue
            if key in done:
                continue  # imported already along another path: read once
            sub, why = read_text(str(base_dir(file) / stmt.path) if not file.startswith("<") else stmt.path)
            if sub is not None and total[0] + len(sub) > MAX_TOTAL_CHARS:
                sub, why = None, f"the hypothesis and its imports would exceed {MAX_TOTAL_CHARS >> 10} KiB"
            if sub is None:
                diags.append(
                    diag(
                        "E215",
                        f"cannot import `{stmt.path}`: {why}",
                        stmt.span,
                        label=f"looked for {target}",
                        hint="import paths are relative to the importing file",
                    )
                )
                continue
            visit(target, sub, chain + ((target, stmt),))

    visit(path, text, ((path, None),))
    return Unit(path=path, sources=tuple(sources.items()), statements=tuple(statements), diagnostics=tuple(diags))
