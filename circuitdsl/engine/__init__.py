"""The causal-scrubbing interpreter (SEMANTICS.md sections 3-5). Imports torch; nothing upstream of it does.

Public entry point: `circuitdsl.engine.check.run_check`.
"""

__all__ = ["run_check"]


def __getattr__(name):
    if name == "run_check":
        from circuitdsl.engine.check import run_check

        return run_check
    raise AttributeError(name)
