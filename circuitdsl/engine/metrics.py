"""Per-example metrics at the scored positions (SEMANTICS.md section 4), computed in float64.

Each metric is computed at every scored position of an example from the logits there (over the
model's output vocabulary) and averaged over the example's scored positions. The definitions are the
docstrings of `circuitdsl.ir.MetricKind`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from circuitdsl.datasets.core import Example
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import MetricKind, Span

__all__ = ["metric_values", "kl_values", "check_metric"]


def _refuse(code: str, message: str, hint: str, span: Span | None) -> CircuitError:
    return CircuitError([Diagnostic(code, message, span, hint=hint)])


def check_metric(
    kind: MetricKind, examples: Sequence[Example], *, d_vocab_out: int | None = None, span: Span | None = None
) -> None:
    """Refuse, with a diagnostic, a dataset or model that cannot give `kind` what it needs."""
    name = kind.value
    if kind is MetricKind.MSE:
        if d_vocab_out is not None and d_vocab_out != 1:
            raise _refuse(
                "E432",
                f"metric mse reads the model's single output unit, but this model has {d_vocab_out} outputs",
                "mse is for models with a numerical output (d_vocab_out = 1); use logit_diff, margin, loss... "
                "for token outputs",
                span,
            )
        for e in examples:
            if len(e.targets) != len(e.scored_positions):
                raise _refuse(
                    "E432",
                    f"metric mse needs a numeric target at each scored position; example `{e.id}` has "
                    f"{len(e.targets)} for {len(e.scored_positions)}",
                    "give each JSONL row a `target` (a number, or one per scored position)",
                    e.origin or span,
                )
        return
    if kind in (MetricKind.MARGIN, MetricKind.ACCURACY) and d_vocab_out is not None and d_vocab_out < 2:
        raise _refuse(
            "E432",
            f"metric {name} compares the answer with the other output tokens, but this model has {d_vocab_out} output",
            "use metric mse for a model with one numerical output",
            span,
        )
    if kind is MetricKind.KL:
        return
    for e in examples:
        if len(e.answers) != len(e.scored_positions):
            raise _refuse(
                "E416",
                f"metric {name} needs an answer at each scored position; example `{e.id}` has "
                f"{len(e.answers)} for {len(e.scored_positions)}",
                "give each row an `answer`",
                e.origin or span,
            )
        if kind.needs_wrong and len(e.wrongs) != len(e.scored_positions):
            raise _refuse(
                "E419",
                f"metric {name} needs a wrong answer at each scored position; example `{e.id}` has {len(e.wrongs)}",
                "use `metric logprob`, `margin` or `loss`, or give the dataset wrong answers",
                e.origin or span,
            )
        if not kind.answer_sets and any(len(s) != 1 for s in e.answer_sets + e.wrong_sets):
            raise _refuse(
                "E431",
                f"metric {name} takes one answer token per scored position; example `{e.id}` gives a set",
                "answer sets are for `metric logit_diff` and `metric prob_diff`",
                e.origin or span,
            )


def kl_values(model: Sequence[torch.Tensor], other: Sequence[torch.Tensor]) -> np.ndarray:
    """Mean over scored positions of KL(model || other), per example."""
    out = np.empty(len(model))
    for i, (p, q) in enumerate(zip(model, other)):
        lp = torch.log_softmax(p.double(), -1)
        lq = torch.log_softmax(q.double(), -1)
        out[i] = float((lp.exp() * (lp - lq)).sum(-1).mean())
    return out


def _set_mean(x: torch.Tensor, sets: Sequence[tuple[int, ...]], reduce: str) -> torch.Tensor:
    """Per scored position p: mean (or sum) of x[p, t] over the tokens t of sets[p]."""
    vals = [x[p, list(s)] for p, s in enumerate(sets)]
    return torch.stack([v.mean() if reduce == "mean" else v.sum() for v in vals])


def _values(kind: MetricKind, lg: torch.Tensor, e: Example) -> torch.Tensor:
    """The metric at each scored position of one example (lg: [positions, d_vocab_out], float64)."""
    rows = torch.arange(lg.shape[0])
    if kind is MetricKind.MSE:
        return -((lg[:, 0] - torch.tensor(e.targets, dtype=lg.dtype)) ** 2)
    n = len(e.scored_positions)
    if kind in (MetricKind.LOGIT_DIFF, MetricKind.PROB_DIFF):
        x, reduce = (lg, "mean") if kind is MetricKind.LOGIT_DIFF else (torch.softmax(lg, -1), "sum")
        ans_sets = [e.answer_set(i) for i in range(n)]
        wrong_sets = [e.wrong_set(i) for i in range(n)]
        return _set_mean(x, ans_sets, reduce) - _set_mean(x, wrong_sets, reduce)
    ans = torch.tensor(e.answers)
    if kind in (MetricKind.MARGIN, MetricKind.ACCURACY):
        others = lg.clone()
        others[rows, ans] = -torch.inf
        margin = lg[rows, ans] - others.max(-1).values
        return margin if kind is MetricKind.MARGIN else (margin > 0).to(lg.dtype)
    lp = torch.log_softmax(lg, -1)[rows, ans]
    if kind is MetricKind.LOGPROB:
        return lp
    if kind is MetricKind.PROB:
        return lp.exp()
    if kind is MetricKind.LOSS:
        return -lp
    raise ValueError(f"no per-position rule for metric {kind.value}")


def metric_values(
    kind: MetricKind, logits: Sequence[torch.Tensor], examples: Sequence[Example], model_logits: Sequence[torch.Tensor]
) -> np.ndarray:
    """m(x) per example: the metric averaged over the example's scored positions. `logits[i]` holds the
    evaluated run's logits at example i's scored positions; `model_logits` the model's own (for kl)."""
    if kind is MetricKind.KL:
        return kl_values(model_logits, logits)
    out = np.empty(len(logits))
    for i, (lg, e) in enumerate(zip(logits, examples)):
        out[i] = float(_values(kind, lg.detach().double().cpu(), e).mean())  # logits may live on an accelerator
    return out
