"""circuitdsl: circuit hypotheses about transformer language models, checked like code.

Parsing, linting and drawing never import torch; the engine does, lazily.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
