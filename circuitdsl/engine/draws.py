"""Deterministic draws (SEMANTICS.md section 3).

Every draw is a function of (seed, the root example's id, the treeified node's draw path, the kind of
draw) only: a blake2b hash picks an index into the pool, which is ordered by example id. Results
therefore do not depend on batch size, chunking or dataset order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from circuitdsl.datasets.core import Dataset, Example, feature_value_key
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import Feature, FeatureKind

__all__ = ["draw_index", "CLASS", "OTHER", "feature_fn", "FeatureIndex"]

CLASS = "class"
"""x_s: a draw from the equivalence class of the parent's input under the node's feature."""
OTHER = "other"
"""x_r(t): the other-inputs draw for a treeified node's unclaimed senders."""


def draw_index(seed: int, root_id: str, path: str, kind: str, n: int) -> int:
    """An index in range(n), uniform up to 2**-64, keyed by (seed, root id, path, kind)."""
    if n <= 0:
        raise ValueError("cannot draw from an empty pool")
    h = hashlib.blake2b(f"{seed}\x1f{root_id}\x1f{path}\x1f{kind}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") % n


def _resolve_function(ref: str, origin: str = "") -> Callable[[Example], Any]:
    """The user function of a `module:function` feature, from the file the compiler resolved (`origin`,
    recorded in the Feature), never from whatever module of that name the process has loaded."""
    from circuitdsl.features import FeatureFunctionError, load_function

    try:
        return load_function(ref, origin)
    except FeatureFunctionError as e:
        raise CircuitError(
            [Diagnostic("E230", f"feature function `{ref}` cannot be imported: {e}", hint="write module.path:function")]
        ) from None


def feature_fn(feature: Feature) -> Callable[[Example], Any] | None:
    """The feature as a function of an example (None for identity: the class is {x})."""
    k = feature.kind
    if k is FeatureKind.IDENTITY:
        return None
    if k is FeatureKind.CONSTANT:
        return lambda e: ()
    if k is FeatureKind.FIELD:
        name = feature.args[0]
        return lambda e: e.field(name)
    if k is FeatureKind.TOKEN_AT:
        name = feature.args[0]
        return lambda e: e.token_at(name)
    if k is FeatureKind.FUNCTION:
        return _resolve_function(feature.args[0], feature.args[1] if len(feature.args) > 1 else "")
    parts = []
    for p in feature.parts:
        f = feature_fn(p)
        parts.append(f if f is not None else (lambda e: e.id))
    return lambda e: tuple(f(e) for f in parts)


class FeatureIndex:
    """Equivalence classes of one dataset under features, within each layout, each ordered by id."""

    def __init__(self, ds: Dataset):
        self.ds = ds
        self.pools = ds.layouts()
        self._values: dict[Feature, list[Any]] = {}
        self._classes: dict[Feature, dict[tuple, tuple[int, ...]]] = {}

    def value(self, feature: Feature, i: int) -> Any:
        vals = self._values.get(feature)
        if vals is None:
            fn = feature_fn(feature)
            assert fn is not None
            vals = []
            for e in self.ds.examples:
                try:
                    vals.append(feature_value_key(fn(e)))
                except KeyError as err:
                    raise CircuitError(
                        [
                            Diagnostic(
                                "E412",
                                f"feature `{feature}` needs {err} which example `{e.id}` of dataset `{self.ds.name}` lacks",
                            )
                        ]
                    ) from None
                except Exception as err:  # a user function failed: report, never a traceback
                    raise CircuitError(
                        [
                            Diagnostic(
                                "E413", f"feature `{feature}` failed on example `{e.id}`: {type(err).__name__}: {err}"
                            )
                        ]
                    ) from None
            self._values[feature] = vals
        return vals[i]

    def cls(self, feature: Feature, i: int) -> tuple[int, ...]:
        """Indices of the examples in i's layout whose feature value equals i's, ordered by id."""
        if feature.kind is FeatureKind.IDENTITY:
            return (i,)
        layout = self.ds.examples[i].layout
        table = self._classes.setdefault(feature, {})
        key = (layout, self._hashable(self.value(feature, i)))
        if key not in table:
            for layout_, pool in self.pools.items():
                groups: dict[Any, list[int]] = {}
                for j in pool:
                    groups.setdefault(self._hashable(self.value(feature, j)), []).append(j)
                for v, members in groups.items():
                    table[(layout_, v)] = tuple(members)
        return table[key]

    @staticmethod
    def _hashable(v: Any) -> Any:
        try:
            hash(v)
            return v
        except TypeError:
            return repr(v)


def pick(pool: Sequence[int], seed: int, root_id: str, path: str, kind: str) -> int:
    return pool[draw_index(seed, root_id, path, kind, len(pool))]
