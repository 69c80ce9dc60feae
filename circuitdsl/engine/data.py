"""Materialise the hypothesis' DatasetSpecs into Datasets (tokenized for the backend's tokenizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuitdsl.datasets.core import Dataset
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import DatasetKind, DatasetSpec, Hypothesis

__all__ = ["materialise", "materialise_all", "validate"]


def materialise(
    spec: DatasetSpec, tokenizer: Any, *, vocab_size: int | None = None, n_ctx: int | None = None
) -> Dataset:
    """The dataset `spec` names. A JSONL file's rows are checked against the model's input vocabulary
    and context length as they are read, so that a bad row is reported at its line in the file."""
    if spec.kind is DatasetKind.GENERATOR:
        from circuitdsl.datasets import registry

        if registry.get(spec.source) is None:
            raise CircuitError([Diagnostic("E402", f"unknown dataset generator `{spec.source}`", spec.span)])
        try:
            return registry.build(spec.source, tokenizer, dict(spec.args), spec.name)
        except CircuitError:
            raise
        except Exception as e:  # a generator's own error: report it as a dataset error, not a traceback
            raise CircuitError(
                [
                    Diagnostic(
                        "E410", f"dataset `{spec.name}` could not be generated: {type(e).__name__}: {e}", spec.span
                    )
                ]
            ) from None
    try:
        from circuitdsl.datasets import jsonl
    except ImportError:
        raise CircuitError([Diagnostic("E404", "JSONL datasets are not available in this build", spec.span)]) from None
    path = Path(spec.source)
    if not path.is_file():
        raise CircuitError([Diagnostic("E404", f"dataset file {path} is missing", spec.span)])
    ds = jsonl.load(path, tokenizer, spec.name, vocab_size=vocab_size, n_ctx=n_ctx)
    n = dict(spec.args).get(
        "n"
    )  # a file's first n rows (circuitdsl.testing.with_sample_count; the language gives none)
    if n is not None and n < len(ds):
        ds = Dataset(name=ds.name, examples=ds.examples[:n], field_names=ds.field_names,
                     position_names=ds.position_names, description=ds.description)  # fmt: skip
    return ds


MIN_EXAMPLES = 2
"""The dataset a hypothesis is scored on needs at least this many examples: with one, every resample
draws the example itself, the baseline equals the model and nothing can be recovered."""


def materialise_all(
    h: Hypothesis, tokenizer: Any, *, vocab_size: int | None = None, n_ctx: int | None = None
) -> dict[str, Dataset]:
    out = {}
    for spec in h.datasets:
        ds = materialise(spec, tokenizer, vocab_size=vocab_size, n_ctx=n_ctx)
        if len(ds) == 0:
            raise CircuitError([Diagnostic("E411", f"dataset `{spec.name}` is empty", spec.span)])
        if spec.name == h.main_dataset and len(ds) < MIN_EXAMPLES:
            where = f" (file {spec.source})" if spec.kind is not DatasetKind.GENERATOR else ""
            raise CircuitError([Diagnostic(
                "E411", f"dataset `{spec.name}`{where} has {len(ds)} example; scoring needs at least {MIN_EXAMPLES}", spec.span,
                hint="with one example every resample draws it again, so the baseline equals the model: add examples")])  # fmt: skip
        out[spec.name] = ds
    return out


def validate(ds: Dataset, n_ctx: int | None, vocab: int | None, span=None, *, vocab_out: int | None = None) -> None:
    """Token ids within the input vocabulary `vocab`; answers and wrong answers (every member of a set)
    within the OUTPUT vocabulary `vocab_out` (default: `vocab`); lengths within n_ctx."""
    vocab_out = vocab if vocab_out is None else vocab_out
    outer = span
    for e in ds.examples:
        span = e.origin or outer  # a JSONL row: its line in the file
        bad = [t for t in e.tokens if t < 0 or (vocab is not None and t >= vocab)]
        if bad:
            raise CircuitError(
                [
                    Diagnostic(
                        "E414",
                        f"example `{e.id}` of dataset `{ds.name}` has token {bad[0]} outside the model's vocabulary ({vocab})",
                        span,
                    )
                ]
            )
        outs = [t for s in (e.answer_sets or [(a,) for a in e.answers]) for t in s]
        outs += [t for s in (e.wrong_sets or [(w,) for w in e.wrongs]) for t in s]
        bad = [t for t in outs if t < 0 or (vocab_out is not None and t >= vocab_out)]
        if bad:
            raise CircuitError(
                [
                    Diagnostic(
                        "E414",
                        f"example `{e.id}` of dataset `{ds.name}` has answer token {bad[0]} outside the model's "
                        f"output vocabulary ({vocab_out} tokens)",
                        span,
                        hint="answers are ids of the model's output (unembedding) vocabulary",
                    )
                ]
            )
        if n_ctx is not None and len(e.tokens) > n_ctx:
            raise CircuitError(
                [
                    Diagnostic(
                        "E415",
                        f"example `{e.id}` of `{ds.name}` has {len(e.tokens)} tokens; the model takes {n_ctx}",
                        span,
                    )
                ]
            )
        if e.answers and len(e.answers) != len(e.scored_positions):
            raise CircuitError(
                [
                    Diagnostic(
                        "E416",
                        f"example `{e.id}` of `{ds.name}` has {len(e.answers)} answers for {len(e.scored_positions)} scored positions",
                        span,
                    )
                ]
            )
        if not e.answers and not e.targets:
            raise CircuitError(
                [
                    Diagnostic(
                        "E416",
                        f"example `{e.id}` of `{ds.name}` has no answer (nor a numeric target) at its scored positions",
                        span,
                    )
                ]
            )
        if any(p >= len(e.tokens) for p in e.scored_positions):
            raise CircuitError(
                [Diagnostic("E416", f"example `{e.id}` of `{ds.name}` scores a position past its end", span)]
            )
