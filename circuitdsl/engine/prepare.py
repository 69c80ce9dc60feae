"""What every command that runs a hypothesis does first: load its model (as a diagnostic when it cannot
be used) and its datasets (validated against that model, and the metric against them).

check, curve and attribute share it, so a truncated weights file or an answer outside the output
vocabulary is the same diagnostic (exit 2) whichever command meets it."""

from __future__ import annotations

from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import Hypothesis

__all__ = ["load_model", "load_datasets"]


def load_model(h: Hypothesis, device: str = "cpu"):
    """The hypothesis' model as a backend that passed the model contract; E510 (cannot be loaded: missing,
    damaged or truncated files, a bad device, an unsupported architecture) or E540 (fails the contract);
    E602 before loading anything for what the engine does not scrub exactly with split components."""
    from circuitdsl.engine.treeify import refuse_splits

    refuse_splits(h)
    from circuitdsl.backends.base import BackendError
    from circuitdsl.backends.loader import load_backend, model_diagnostic
    from circuitdsl.models.shapes import ShapeError

    try:
        return load_backend(h.model, device)
    except (BackendError, ShapeError) as e:
        raise CircuitError([model_diagnostic(h, e)]) from None
    except _unreadable_weights() as e:  # a truncated or damaged weights file is the model's fault, not a bug
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CircuitError(
            [
                Diagnostic(
                    "E510",
                    f"model `{h.model.name}` cannot be loaded: a weights file cannot be read ({type(e).__name__}: {why})",
                    h.model.span,
                    hint="the file is truncated or damaged (model.safetensors, ...): copy or convert it again",
                )
            ]
        ) from None


def load_datasets(h: Hypothesis, backend, metric=None) -> dict:
    """Every dataset of the hypothesis, tokenized for the backend's model and validated against it (context,
    vocabulary, output vocabulary), with the metric (`metric`, else the file's) checked against the main
    dataset's examples."""
    from circuitdsl.engine import data as data_mod
    from circuitdsl.engine import metrics

    datasets = data_mod.materialise_all(h, backend.tokenizer, vocab_size=backend.shape.vocab_size, n_ctx=backend.n_ctx)
    for spec in h.datasets:
        data_mod.validate(
            datasets[spec.name], backend.n_ctx, backend.shape.vocab_size, spec.span, vocab_out=backend.d_vocab_out
        )
    main = h.dataset(h.main_dataset)
    metrics.check_metric(
        metric or h.metric.kind, datasets[h.main_dataset].examples, d_vocab_out=backend.d_vocab_out, span=main.span
    )
    return datasets


def _unreadable_weights() -> tuple[type[BaseException], ...]:
    """The errors the weight readers raise for a file that is not what it claims (a truncated
    safetensors file, a damaged zip or pickle)."""
    import pickle
    import zipfile

    kinds: list[type[BaseException]] = [zipfile.BadZipFile, pickle.UnpicklingError, EOFError]
    try:
        from safetensors import SafetensorError

        kinds.append(SafetensorError)
    except ImportError:
        pass
    return tuple(kinds)
