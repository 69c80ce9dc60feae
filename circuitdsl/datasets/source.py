"""One place where a command-line dataset argument becomes a Dataset (issue 17).

`--dataset ioi`, `--dataset data/succ.jsonl`, `--corrupt data/succ_shift.jsonl`: every command that
takes a dataset on its command line (patch, discover, measure, tokens, ...) calls `dataset_from_arg`
(or `paired_from_args` for a clean dataset and its paired corruption), so a registered generator
and a JSONL file are accepted everywhere with the same diagnostics as a `.circuit` file's
`dataset` statement: E402 unknown generator, E403 unknown generator argument, E404 missing JSONL
file, E41x/E42x bad rows (at file:line:col), E410 a generator's own failure, E428 a corruption that
does not pair with its clean dataset.

What is a JSONL file and what a generator: an argument that ends in `.jsonl`/`.json`, contains a
path separator, or names an existing file is a file; anything else names a generator.
`n` takes the first n rows of a file (None: all of them); `seed` and generator arguments do not
apply to a file (E403 if given).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from circuitdsl.datasets.core import Dataset
from circuitdsl.diagnostics import CircuitError, Diagnostic

__all__ = ["show_token", "is_file_arg", "dataset_from_arg", "paired_from_args", "DEFAULT_N"]

DEFAULT_N = 32
"""Examples a generator makes when the command line gives no --n (a file: all its rows)."""


def is_file_arg(spec: str) -> bool:
    """True when a dataset argument names a JSONL file rather than a registered generator."""
    s = str(spec)
    return s.endswith((".jsonl", ".json")) or os.sep in s or "/" in s or Path(s).is_file()


def dataset_from_arg(
    spec: str,
    tokenizer: Any,
    *,
    n: int | None = None,
    seed: int = 0,
    args: dict[str, Any] | None = None,
    name: str | None = None,
    option: str = "--dataset",
    vocab_size: int | None = None,
    n_ctx: int | None = None,
) -> Dataset:
    """The Dataset a command-line argument names: a registered generator (built with n, seed and
    `args`) or a JSONL file (its first n rows, or all). Raises CircuitError with diagnostics."""
    spec = str(spec)
    args = dict(args or {})
    if is_file_arg(spec):
        return _from_file(spec, tokenizer, n=n, args=args, name=name, option=option, vocab_size=vocab_size, n_ctx=n_ctx)
    from circuitdsl.compiler.unit import did_you_mean
    from circuitdsl.datasets import registry

    info = registry.get(spec)
    if info is None:
        known = registry.names()
        dm = did_you_mean(spec, known)
        raise CircuitError([Diagnostic(
            "E402", f"{option} {spec}: unknown dataset generator `{spec}`",
            hint=(dm + " " if dm else "") + f"registered generators: {', '.join(known)}; or give the path of a JSONL file "
            "(docs/DATASETS.md), e.g. data/mine.jsonl")])  # fmt: skip
    params = dict(info.params)
    full = {"n": DEFAULT_N if n is None else n, "seed": seed, **args}
    bad = sorted(set(full) - set(params))
    if bad:
        raise CircuitError([Diagnostic(
            "E403", f"{option} {spec}: `{spec}` has no argument `{bad[0]}`",
            hint=f"`{spec}` accepts {', '.join(f'`{p}`' for p in sorted(params))}")])  # fmt: skip
    try:
        return registry.build(spec, tokenizer, full, name or spec)
    except CircuitError:
        raise
    except Exception as e:  # a generator's own error: a dataset error, not a traceback
        raise CircuitError(
            [
                Diagnostic(
                    "E410",
                    f"{option} {spec}: the dataset could not be generated: {type(e).__name__}: {e}",
                    hint="check the generator's arguments (docs/DATASETS.md)",
                )
            ]
        ) from None


def _from_file(spec, tokenizer, *, n, args, name, option, vocab_size, n_ctx) -> Dataset:
    from circuitdsl.datasets import jsonl

    path = Path(spec)
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        raise CircuitError([Diagnostic("E404", f"{option} {spec}: dataset file `{spec}` {why}",
                                       hint="give the path of a JSONL file (relative to the current directory) or the "
                                            "name of a registered generator")])  # fmt: skip
    if args:
        raise CircuitError([Diagnostic(
            "E403", f"{option} {spec}: a JSONL file takes no generator argument (`{sorted(args)[0]}` was given)",
            hint="--arg applies to registered generators; a file's rows are used as written (--n takes the first n)")])  # fmt: skip
    ds = jsonl.load(path, tokenizer, name or path.stem, vocab_size=vocab_size, n_ctx=n_ctx)
    if n is not None and n < len(ds):
        ds = Dataset(name=ds.name, examples=ds.examples[:n], field_names=ds.field_names,
                     position_names=ds.position_names, description=ds.description)  # fmt: skip
    return ds


def paired_from_args(
    clean: str,
    corrupt: str,
    tokenizer: Any,
    *,
    n: int | None = None,
    seed: int = 0,
    args: dict[str, Any] | None = None,
    vocab_size: int | None = None,
    n_ctx: int | None = None,
) -> tuple[Dataset, Dataset]:
    """A clean dataset and its paired corruption (row i of `corrupt` is the corruption of row i of
    `clean`): the same size and, row by row, the same layout (token length and named positions);
    E428 at the corrupted row otherwise."""
    a = dataset_from_arg(
        clean, tokenizer, n=n, seed=seed, args=args, option="--dataset", vocab_size=vocab_size, n_ctx=n_ctx
    )
    b = dataset_from_arg(
        corrupt, tokenizer, n=n, seed=seed, args=args, option="--corrupt", vocab_size=vocab_size, n_ctx=n_ctx
    )
    if len(a) != len(b):
        raise CircuitError([Diagnostic(
            "E428", f"the corruption `{corrupt}` has {len(b)} examples and the clean dataset `{clean}` {len(a)}",
            hint="row i of the corruption is paired with row i of the clean dataset: give both the same rows "
                 "(or --n at most the smaller count)")])  # fmt: skip
    for i, (x, y) in enumerate(zip(a.examples, b.examples, strict=True)):
        if x.layout != y.layout:
            where = f" (line {x.origin.line} of {x.origin.file})" if x.origin is not None else ""
            raise CircuitError([Diagnostic(
                "E428", f"row {i} of the corruption `{corrupt}` is {len(y.tokens)} tokens with positions "
                f"{_fmt_pos(y)}; its clean row{where} is {len(x.tokens)} tokens with positions {_fmt_pos(x)}",
                y.origin, hint="a paired corruption keeps each clean row's token length and named positions "
                "(`circuitdsl tokens FILE --model M` shows them)")])  # fmt: skip
    return a, b


def _fmt_pos(e) -> str:
    return "{" + ", ".join(f"{k}: {list(v) if len(v) > 1 else v[0]}" for k, v in e.positions) + "}"


def show_token(tokenizer: Any, token: int) -> str:
    """A token as a person reads it: its text quoted (leading space visible) and its id, e.g. `' Thursday' (7981)`;
    the id alone for a model without a tokenizer."""
    if tokenizer is None:
        return str(int(token))
    try:
        text = tokenizer.decode([int(token)])
    except Exception:  # an id the tokenizer cannot decode: the id is still true
        return str(int(token))
    return f"{text!r} ({int(token)})"
