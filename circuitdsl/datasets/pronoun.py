"""Gendered-pronoun prediction: the `pronoun` and `pronoun_flip` generators.

`pronoun`: "So Mary went to the store because" -> " she" (answer: the pronoun that agrees with the
name, wrong answer: the other one; metric logit_diff). Every template has one name slot after at
least one word, and ends where the next word is the subject pronoun of a new clause. Names are
filtered to those that are one token (with their leading space) for the model's tokenizer, so all
prompts of one template share one layout: the same token length and the same indices of the named
positions `NAME`, `NAME_plus1` (the token after the name) and `END` (the last token, scored).

`pronoun_flip`: the corrupted distribution, paired by row with `pronoun` (same n, seed and other
parameters): row i keeps row i's template and replaces the name by a name of the other gender.
Its answer and wrong tokens are row i's clean ones, so its logit_diff is how much the corrupted
prompt still favours the clean pronoun (negative when the model follows the new name).

Row i is female when i is even (male when odd) and uses template (i // 2) % k, so genders and
templates are balanced. Generation is a pure function of the arguments. No torch here: the tokenizer
is any object with `encode(text) -> list[int]` (no BOS) and `decode(ids)`.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from circuitdsl.datasets.core import Example
from circuitdsl.datasets.registry import register
from circuitdsl.diagnostics import CircuitError, Diagnostic

__all__ = [
    "TEMPLATES",
    "FEMALE_NAMES",
    "MALE_NAMES",
    "PRONOUNS",
    "POSITIONS",
    "FIELDS",
    "pronoun",
    "pronoun_flip",
    "name_pools",
]

# `[NAME]` is the one name slot; the prompt ends before the subject pronoun of a new clause.
TEMPLATES: tuple[str, ...] = (
    "So [NAME] went to the store because",
    "Then [NAME] was very tired, so",
    "When [NAME] came home,",
    "Yesterday [NAME] called the doctor because",
    "After [NAME] finished dinner,",
    "Last week [NAME] bought a new car because",
    "Once [NAME] woke up early, and",
)

# Names that are clearly gendered in English usage (no Taylor, Jordan, Morgan, Jamie, Alex...).
FEMALE_NAMES: tuple[str, ...] = (
    "Mary", "Anna", "Emily", "Sarah", "Laura", "Lisa", "Jessica", "Rachel", "Kate", "Jane", "Alice",
    "Amy", "Elizabeth", "Michelle", "Maria", "Rose", "Victoria", "Jennifer", "Susan", "Linda",
    "Karen", "Emma", "Olivia", "Sophia", "Julia", "Hannah", "Grace", "Helen", "Nancy", "Betty",
    "Margaret", "Patricia", "Barbara", "Catherine", "Christina", "Diana", "Rebecca", "Sophie", "Lucy", "Sally",
)  # fmt: skip
MALE_NAMES: tuple[str, ...] = (
    "John", "James", "Michael", "David", "Robert", "William", "Thomas", "Paul", "Mark", "Peter",
    "George", "Richard", "Daniel", "Steven", "Kevin", "Brian", "Jason", "Eric", "Adam", "Ryan",
    "Jack", "Henry", "Frank", "Scott", "Andrew", "Matthew", "Joseph", "Charles", "Edward", "Tom",
    "Bob", "Bill", "Steve", "Tim", "Joe", "Jim", "Harry", "Luke", "Simon", "Martin",
)  # fmt: skip

PRONOUNS: dict[str, str] = {"female": " she", "male": " he"}
"""The answer text per gender (with its leading space); the other one is the wrong answer."""

POSITIONS: tuple[str, ...] = ("END", "NAME", "NAME_plus1")
FIELDS: tuple[str, ...] = ("name", "gender", "template", "clean_name", "clean_gender", "corrupted")

_PARAMS: dict[str, Any] = {"n": 32, "seed": 0, "templates": 1, "names": 0}


def _error(gen: str, message: str, hint: str) -> CircuitError:
    return CircuitError([Diagnostic(code="E410", message=f"{gen}(): {message}", hint=hint)])


def _check_int(gen: str, name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(gen, f"parameter `{name}` must be an integer, got {value!r}", f"write e.g. `{name} = {lo}`")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise _error(gen, f"parameter `{name}` = {value} is out of range", f"`{name}` must be {rng}")
    return value


def _single_tokens(tokenizer: Any, words: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    out = []
    for w in words:
        ids = list(tokenizer.encode(" " + w))
        if len(ids) == 1:
            out.append((w, int(ids[0])))
    return tuple(out)


@lru_cache(maxsize=16)
def _pools_cached(tokenizer: Any) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...], dict[str, int]]:
    female = _single_tokens(tokenizer, FEMALE_NAMES)
    male = _single_tokens(tokenizer, MALE_NAMES)
    pron = {}
    for g, text in PRONOUNS.items():
        ids = list(tokenizer.encode(text))
        if len(ids) != 1:
            raise _error("pronoun", f"the pronoun {text!r} is not one token for this tokenizer", "use a JSONL dataset")
        pron[g] = int(ids[0])
    return female, male, pron


def name_pools(tokenizer: Any) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...], dict[str, int]]:
    """(female names, male names) as (name, token id) pairs that are one token with a leading
    space, and the token id of each gender's pronoun."""
    try:
        return _pools_cached(tokenizer)
    except TypeError:  # an unhashable tokenizer object
        return _pools_cached.__wrapped__(tokenizer)


def _params(gen: str, tokenizer: Any, n: Any, seed: Any, templates: Any, names: Any):
    if tokenizer is None:
        raise _error(
            gen,
            "this dataset needs a text tokenizer (a model with a vocabulary)",
            "use it with smollm2-135m or an HF model",
        )
    _check_int(gen, "n", n, 1)
    _check_int(gen, "seed", seed, 0)
    _check_int(gen, "templates", templates, 1, len(TEMPLATES))
    _check_int(gen, "names", names, 0)
    if 0 < names < 2:
        raise _error(gen, "parameter `names` = 1 leaves no second name to pair with", "use 0 (all names) or at least 2")
    female, male, pron = name_pools(tokenizer)
    if names:
        female, male = female[:names], male[:names]
    if len(female) < 2 or len(male) < 2:
        raise _error(
            gen,
            f"this tokenizer has too few single-token names ({len(female)} female, {len(male)} male)",
            "use a JSONL dataset",
        )
    return female, male, pron


def _rows(n: int, seed: int, templates: int, female, male) -> list[tuple[int, str, str]]:
    """(template, gender, name) per row: gender alternates, templates round-robin per gender pair."""
    rng = random.Random(f"pronoun:{seed}")
    rows = []
    for i in range(n):
        gender = "female" if i % 2 == 0 else "male"
        pool = female if gender == "female" else male
        rows.append(((i // 2) % templates, gender, rng.choice(pool)[0]))
    return rows


def _example(
    tokenizer: Any, template: int, name: str, gender: str, clean_name: str, clean_gender: str, pron
) -> Example:
    text_t = TEMPLATES[template]
    head, tail = text_t.split(" [NAME]")
    head_ids = list(tokenizer.encode(head))
    name_ids = list(tokenizer.encode(" " + name))
    tail_ids = list(tokenizer.encode(tail))
    tokens = head_ids + name_ids + tail_ids
    text = head + " " + name + tail
    if len(name_ids) != 1 or tokens != list(tokenizer.encode(text)):
        raise _error(
            "pronoun",
            f"template {template} does not tokenize piecewise with this tokenizer: {text!r}",
            "use a JSONL dataset",
        )
    other = "male" if clean_gender == "female" else "female"
    p = len(head_ids)
    return Example.make(
        tokens,
        pron[clean_gender],
        wrongs=pron[other],
        positions={"NAME": p, "NAME_plus1": p + 1, "END": len(tokens) - 1},
        fields={
            "name": name,
            "gender": gender,
            "template": template,
            "clean_name": clean_name,
            "clean_gender": clean_gender,
            "corrupted": name != clean_name,
        },
        text=text,
    )


@register(
    "pronoun",
    fields=FIELDS,
    positions=POSITIONS,
    params=_PARAMS,
    description="gendered pronoun after a one-name prompt: answer the agreeing pronoun (' she'/' he'), wrong the other",
)
def pronoun(*, tokenizer: Any, n: int = 32, seed: int = 0, templates: int = 1, names: int = 0) -> list[Example]:
    """`templates` = k uses the first k templates; `names` = k > 0 uses only the first k names of each gender."""
    female, male, pron = _params("pronoun", tokenizer, n, seed, templates, names)
    return [_example(tokenizer, t, nm, g, nm, g, pron) for t, g, nm in _rows(n, seed, templates, female, male)]


@register(
    "pronoun_flip",
    fields=FIELDS,
    positions=POSITIONS,
    params=_PARAMS,
    description="pronoun with the name replaced by one of the other gender, paired by row; answers stay the clean ones",
)
def pronoun_flip(*, tokenizer: Any, n: int = 32, seed: int = 0, templates: int = 1, names: int = 0) -> list[Example]:
    """Row i is row i of `pronoun(...)` (same arguments) with a name of the other gender."""
    female, male, pron = _params("pronoun_flip", tokenizer, n, seed, templates, names)
    out = []
    for i, (t, g, nm) in enumerate(_rows(n, seed, templates, female, male)):
        rng = random.Random(f"pronoun_flip:{seed}:{i}")
        other_g = "male" if g == "female" else "female"
        other = rng.choice(male if g == "female" else female)[0]
        out.append(_example(tokenizer, t, other, other_g, nm, g, pron))
    return out
