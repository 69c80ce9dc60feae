"""Feature functions the reference tests name as `ref_features:NAME` (tests/reference is on sys.path)."""

from __future__ import annotations


def last_mod3(e):
    """The last token modulo 3."""
    return e.tokens[-1] % 3


def first_two(e):
    """A list (compared as a tuple) of the first two tokens' parities, and a float that needs rounding."""
    return [e.tokens[0] % 2, e.tokens[1] % 2, (e.tokens[1] % 2) * 0.1 * 3]


def tiny_float32(e):
    """A numpy float32 below the rounding grain: every value rounds to 0.0 (one class)."""
    import numpy as np

    return np.float32(e.tokens[0]) * np.float32(1e-10)


def dict_value(e):
    """One dict, built in two key orders."""
    return {"a": 1, "b": 2} if e.tokens[1] % 2 else {"b": 2, "a": 1}
