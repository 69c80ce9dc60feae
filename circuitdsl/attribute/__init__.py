"""Edge attribution patching: a score for every edge of the model graph (EAP, EAP-IG, exact edge
patching), and circuits cut from the ranking (`circuitdsl attribute`).

* `circuitdsl.attribute.graph` (no torch): senders, receiving ports (slots), circuits from a ranking;
* `circuitdsl.attribute.scores` (torch, through `ModelBackend.grad_run` and `run_from` only): the methods;
* `circuitdsl.attribute.output`: the ranked table, the heatmap, JSON, MIB JSON and the `.circuit` file.

Importing this package imports neither torch nor the model code.
"""

__all__ = ["graph", "scores", "output"]
