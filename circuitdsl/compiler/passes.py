"""The compiler's passes, in order. Each is a pure function `Unit -> Unit`."""

from __future__ import annotations

from circuitdsl.compiler.claims import resolve_edges, resolve_nodes
from circuitdsl.compiler.resolve import (
    check_duplicates,
    resolve_datasets,
    resolve_expects,
    resolve_groups,
    resolve_metric_ablation,
    resolve_model,
    resolve_settings,
)
from circuitdsl.compiler.splits import check_parts, resolve_splits
from circuitdsl.compiler.unit import Unit
from circuitdsl.compiler.validate import check_cycles, check_paths, note_gqa
from circuitdsl.compiler.wire import resolve_wires

__all__ = ["PASSES", "run_passes"]

PASSES = (
    check_duplicates,
    resolve_model,
    resolve_splits,
    resolve_datasets,
    resolve_metric_ablation,
    resolve_groups,
    resolve_nodes,
    resolve_edges,
    resolve_wires,
    check_parts,
    check_cycles,
    check_paths,
    note_gqa,
    resolve_settings,
    resolve_expects,
)


def run_passes(unit: Unit, passes=PASSES) -> Unit:
    for p in passes:
        unit = p(unit)
    return unit
