"""The lark grammar of the .circuit language, built once and lazily.

An installed circuitdsl carries the grammar at `circuitdsl/grammars/circuit.lark` (pyproject
force-includes the top-level `grammars/` folder there); an editable checkout falls back to the
repository's top-level `grammars/`.
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["grammar_path", "get_parser"]

_PACKAGE = Path(__file__).resolve().parent


def grammar_path() -> Path:
    """Where circuit.lark lives: inside the installed package, else the checkout's grammars/."""
    for candidate in (_PACKAGE / "grammars" / "circuit.lark", _PACKAGE.parent / "grammars" / "circuit.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("circuit.lark not found in circuitdsl/grammars or the checkout's grammars/")


@functools.lru_cache(maxsize=1)
def get_parser():
    """The LALR parser (contextual lexer), built on first use."""
    from lark import Lark

    return Lark.open(str(grammar_path()), parser="lalr", strict=True, propagate_positions=True)
