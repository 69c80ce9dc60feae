"""Model backends: the only place that knows hook names. Imports torch lazily (via `loader`)."""

__all__ = ["load_backend", "Backend", "CleanCache", "BackendError"]


def __getattr__(name):  # lazy: importing circuitdsl.backends must not import torch
    if name == "load_backend":
        from circuitdsl.backends.loader import load_backend

        return load_backend
    if name in ("Backend", "CleanCache", "BackendError"):
        from circuitdsl.backends import base

        return getattr(base, name)
    raise AttributeError(name)
