"""Dataset generators registered by name, with their schema known without running them.

A generator is a function `fn(*, tokenizer, n, seed, **params) -> list[Example]`.
`tokenizer` is None for models whose inputs are token ids already (the embedded model), else an
object with `encode(text) -> list[int]` (no BOS) and `decode(ids) -> str`.
The compiler validates field and position names against `fields` / `positions` without
importing torch; the engine calls `build`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from circuitdsl.datasets.core import Dataset, Example

__all__ = ["GeneratorInfo", "register", "get", "names", "build"]


@dataclass(frozen=True)
class GeneratorInfo:
    name: str
    fn: Callable[..., list[Example]]
    fields: tuple[str, ...]
    positions: tuple[str, ...]
    params: tuple[tuple[str, Any], ...]
    """Accepted keyword parameters besides tokenizer, with their defaults (n and seed included)."""
    description: str = ""
    models: tuple[str, ...] = ()
    """Registry names of models the generator is meant for (empty: any)."""


_REGISTRY: dict[str, GeneratorInfo] = {}

# Modules that register generators when imported (imported lazily by `_load`).
_GENERATOR_MODULES = (
    "circuitdsl.datasets.induction",
    "circuitdsl.datasets.ioi",
    "circuitdsl.datasets.pronoun",
)


def register(
    name: str,
    *,
    fields: tuple[str, ...],
    positions: tuple[str, ...],
    params: dict[str, Any],
    description: str = "",
    models: tuple[str, ...] = (),
) -> Callable:
    def deco(fn):
        _REGISTRY[name] = GeneratorInfo(
            name, fn, tuple(fields), tuple(positions), tuple(sorted(params.items())), description, models
        )
        return fn

    return deco


def _load() -> None:
    for mod in _GENERATOR_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def get(name: str) -> GeneratorInfo | None:
    _load()
    return _REGISTRY.get(name)


def names() -> tuple[str, ...]:
    _load()
    return tuple(sorted(_REGISTRY))


def build(name: str, tokenizer: Any, args: dict[str, Any], dataset_name: str | None = None) -> Dataset:
    info = get(name)
    if info is None:
        raise KeyError(name)
    params = dict(info.params)
    params.update(args)
    examples = info.fn(tokenizer=tokenizer, **params)
    return Dataset(
        name=dataset_name or name,
        examples=tuple(examples),
        field_names=info.fields,
        position_names=info.positions,
        description=info.description,
    )
