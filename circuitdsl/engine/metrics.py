"""Per-example metrics at the scored positions (SEMANTICS.md section 4), computed in float64."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from circuitdsl.datasets.core import Example
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import MetricKind

__all__ = ["metric_values", "kl_values", "check_metric"]


def check_metric(kind: MetricKind, examples: Sequence[Example]) -> None:
    if kind is MetricKind.LOGIT_DIFF:
        for e in examples:
            if len(e.wrongs) != len(e.scored_positions):
                raise CircuitError(
                    [Diagnostic("E419", f"metric logit_diff needs a wrong answer at each scored position; example `{e.id}` has {len(e.wrongs)}",
                                hint="use `metric logprob` or `metric loss`, or give the dataset wrong answers")]
                )


def kl_values(model: Sequence[torch.Tensor], other: Sequence[torch.Tensor]) -> np.ndarray:
    """Mean over scored positions of KL(model || other), per example."""
    out = np.empty(len(model))
    for i, (p, q) in enumerate(zip(model, other)):
        lp = torch.log_softmax(p.double(), -1)
        lq = torch.log_softmax(q.double(), -1)
        out[i] = float((lp.exp() * (lp - lq)).sum(-1).mean())
    return out


def metric_values(kind: MetricKind, logits: Sequence[torch.Tensor], examples: Sequence[Example], model_logits: Sequence[torch.Tensor]) -> np.ndarray:
    if kind is MetricKind.KL:
        return kl_values(model_logits, logits)
    out = np.empty(len(logits))
    for i, (lg, e) in enumerate(zip(logits, examples)):
        lg = lg.double()
        ans = torch.tensor(e.answers)
        rows = torch.arange(lg.shape[0])
        if kind is MetricKind.LOGIT_DIFF:
            out[i] = float((lg[rows, ans] - lg[rows, torch.tensor(e.wrongs)]).mean())
        else:
            lp = torch.log_softmax(lg, -1)[rows, ans].mean()
            out[i] = float(lp) if kind is MetricKind.LOGPROB else -float(lp)
    return out
