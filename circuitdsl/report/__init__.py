"""The HTML report of a `circuitdsl check` result (one self-contained file).

`render_html`/`write_html` need no torch; `compute_extras` (attention patterns, direct logit
attribution) loads the model and imports torch lazily when called.
"""

from circuitdsl.report.extras import AttentionMap, Extras, ExtrasError, HeadAttribution, compute_extras
from circuitdsl.report.html import SECTIONS, render_html, write_html

__all__ = [
    "render_html",
    "write_html",
    "compute_extras",
    "Extras",
    "ExtrasError",
    "AttentionMap",
    "HeadAttribution",
    "SECTIONS",
]
