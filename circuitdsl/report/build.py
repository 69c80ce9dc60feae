"""Write a report with its model-dependent sections when they can be computed: the one path used by
`circuitdsl check --html` and `circuitdsl report --circuit`."""

from __future__ import annotations

import sys
from pathlib import Path

from circuitdsl.report.html import write_html

__all__ = ["write_report"]


def write_report(
    out: str | Path,
    result,
    hypothesis=None,
    *,
    source_text: str | None = None,
    model_sections: bool = True,
    unavailable: str | None = None,
    device: str = "cpu",
    n_attention: int = 2,
    stability=None,
) -> str | None:
    """Write the HTML report to `out` atomically, computing the model-dependent sections (attention,
    logit attribution) when `model_sections` and a hypothesis is given. Returns why those sections are
    missing (None when they are present or were not asked for). Raises OSError if `out` cannot be written."""
    extras, why = None, unavailable
    if hypothesis is not None and model_sections and why is None:
        from circuitdsl.report.extras import ExtrasError, compute_extras

        try:
            import torch

            torch.set_num_threads(min(torch.get_num_threads(), 4))
            extras = compute_extras(hypothesis, result, n_attention=n_attention, device=device)
        except ExtrasError as e:
            why = str(e)
            print(f"circuitdsl: warning: {why}; writing the report without those sections", file=sys.stderr)
    if source_text is None and hypothesis is not None:
        source_text = hypothesis.source_text
    write_html(
        out,
        result,
        source_text=source_text,
        hypothesis=hypothesis,
        extras=extras,
        extras_unavailable=why,
        stability=stability,
    )
    return why
