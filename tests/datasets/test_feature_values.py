"""Feature values compare by what they hold (SEMANTICS.md section 3: exactly, floats after rounding to 1e-9),
whatever Python type or spelling a user function returns them in."""

from __future__ import annotations

import numpy as np

from circuitdsl.datasets.core import feature_value_key as key


def test_numbers_of_any_type_round_alike():
    assert key(np.float32(3) * np.float32(1e-10)) == key(4e-10) == key(0.0)
    assert key(0.1 + 0.2) == key(0.3) and key(np.float64(0.3)) == key(0.3)
    assert key(np.int64(3)) == 3 and type(key(np.int64(3))) is int and key(np.bool_(True)) is True


def test_containers_compare_by_content():
    assert key({"a": 1, "b": 2.0000000001}) == key({"b": 2.0, "a": 1})
    assert key({1, 2}) == key(frozenset({2, 1}))
    assert key(np.array([1, 2])) == key([1, 2]) == key((1, 2))
    assert key({"a": 1}) != key((("a", 1),))  # a mapping is not the tuple of its items
    assert key([{"x": np.float32(0.5)}]) == key(({"x": 0.5},))


def test_different_values_stay_different():
    assert key(0.3) != key(0.30001) and key("1") != key(1) and key((1, 2)) != key((2, 1))
