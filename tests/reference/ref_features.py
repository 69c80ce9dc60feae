"""Feature functions the reference tests name as `ref_features:NAME` (tests/reference is on sys.path)."""

from __future__ import annotations


def last_mod3(e):
    """The last token modulo 3."""
    return e.tokens[-1] % 3


def first_two(e):
    """A list (compared as a tuple) of the first two tokens' parities, and a float that needs rounding."""
    return [e.tokens[0] % 2, e.tokens[1] % 2, (e.tokens[1] % 2) * 0.1 * 3]
