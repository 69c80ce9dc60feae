"""Indirect object identification (Wang et al. 2022): the `ioi` and `ioi_abc` generators.

`ioi`: "When Mary and John went to the store, John gave a drink to" -> " Mary" (answer: the
indirect object IO, wrong answer: the subject S; metric logit_diff). Templates are the paper's
BABA templates and their ABBA mirrors (the first two names swapped). Names, places and objects
are filtered to those that are one token (with their leading space) for the model's tokenizer,
so every prompt of one (template, order) has one layout: the same token length and the same
indices of the named positions `IO`, `S1`, `S1_plus1` (the token after S1), `S2`, `END`.

`ioi_abc`: the ABC corrupted distribution, paired row by row with `ioi` (same n, seed and other
parameters): row i keeps row i's template, order, place and object, and replaces the three name
slots (IO, S1, S2) by three distinct names, all different from row i's IO and S. Its answer and
wrong tokens are row i's clean IO and S, so its logit_diff measures how much the corrupted prompt
still favours the clean IO.

Rows are spread round-robin over (template, order) pairs: row i uses order ABBA when i is even
(with `order="mixed"`), and template (i // 2) % k. Generation is a pure function of the arguments.
No torch here: the tokenizer is any object with `encode(text) -> list[int]` (no BOS) and `decode`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from circuitdsl.datasets.core import Example
from circuitdsl.datasets.registry import register

__all__ = [
    "BABA_TEMPLATES",
    "NAMES",
    "PLACES",
    "OBJECTS",
    "POSITIONS",
    "FIELDS",
    "ioi",
    "ioi_abc",
    "IOIError",
    "vocabulary",
    "prompt",
]

# Wang et al. 2022 (BABA_TEMPLATES of the paper's code); the ABBA versions swap the first [A]/[B].
# Template 0 is the example of the task statement: "When Mary and John went to the store, ...".
BABA_TEMPLATES: tuple[str, ...] = (
    "When [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to [A]",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to [A]",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to [A]",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to [A]",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to [A]",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to [A]",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to [A]",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to [A]",
)

NAMES: tuple[str, ...] = (
    "Aaron", "Adam", "Alan", "Alex", "Alice", "Amy", "Anderson", "Andre", "Andrew", "Andy", "Anna",
    "Anthony", "Arthur", "Austin", "Blake", "Brandon", "Brian", "Carter", "Charles", "Charlie",
    "Christian", "Christopher", "Clark", "Cole", "Collins", "Connor", "Crew", "Crystal", "Daniel",
    "David", "Dean", "Edward", "Elizabeth", "Emily", "Eric", "Eva", "Ford", "Frank", "George",
    "Georgia", "Graham", "Grant", "Henry", "Ian", "Jack", "Jacob", "Jake", "James", "Jamie", "Jane",
    "Jason", "Jay", "Jennifer", "Jeremy", "Jessica", "John", "Jonathan", "Jordan", "Joseph", "Joshua",
    "Justin", "Kate", "Kelly", "Kevin", "Kyle", "Laura", "Leon", "Lewis", "Lisa", "Louis", "Luke",
    "Madison", "Marco", "Marcus", "Maria", "Mark", "Martin", "Mary", "Matthew", "Max", "Michael",
    "Michelle", "Morgan", "Patrick", "Paul", "Peter", "Prince", "Rachel", "Richard", "River",
    "Robert", "Roman", "Rose", "Ruby", "Russell", "Ryan", "Sarah", "Scott", "Sean", "Simon",
    "Stephen", "Steven", "Sullivan", "Taylor", "Thomas", "Tyler", "Victoria", "Warren", "William",
)  # fmt: skip
PLACES: tuple[str, ...] = ("store", "garden", "restaurant", "school", "hospital", "office", "house", "station")
OBJECTS: tuple[str, ...] = ("ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack")

POSITIONS: tuple[str, ...] = ("END", "IO", "S1", "S1_plus1", "S2")
FIELDS: tuple[str, ...] = ("io", "s", "order", "template", "place", "object", "s2", "clean_io", "clean_s", "corrupted")

_PARAMS: dict[str, Any] = {"n": 32, "seed": 0, "templates": 1, "order": "mixed", "names": 0}

_SLOT = re.compile(r"\[(A|B|PLACE|OBJECT)\]")


class IOIError(ValueError):
    """A bad generator argument or a tokenizer the templates cannot be laid out with."""


@dataclass(frozen=True)
class _Row:
    template: int
    order: str
    io: str
    s: str
    place: str
    object: str


def _template_text(index: int, order: str) -> str:
    t = BABA_TEMPLATES[index]
    if order == "ABBA":  # swap the first occurrences of [B] and [A]: "[A] and [B] ... [B] ... [A]"
        t = t.replace("[B]", "[X]", 1).replace("[A]", "[B]", 1).replace("[X]", "[A]", 1)
    return t


def _single_tokens(tokenizer: Any, words: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    out = []
    for w in words:
        ids = tokenizer.encode(" " + w)
        if len(ids) == 1:
            out.append((w, int(ids[0])))
    return tuple(out)


@lru_cache(maxsize=32)
def _vocab(tokenizer: Any) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    names = dict(_single_tokens(tokenizer, NAMES))
    places = dict(_single_tokens(tokenizer, PLACES))
    objects = dict(_single_tokens(tokenizer, OBJECTS))
    if len(names) < 5 or not places or not objects:
        raise IOIError(
            f"this tokenizer has too few single-token names/places/objects ({len(names)}/{len(places)}/{len(objects)})"
        )
    return names, places, objects


def _check_params(n: Any, seed: Any, templates: Any, order: Any, names: Any) -> tuple[int, ...]:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise IOIError(f"n must be a positive integer, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise IOIError(f"seed must be an integer, got {seed!r}")
    if order not in ("mixed", "ABBA", "BABA"):
        raise IOIError(f'order must be "mixed", "ABBA" or "BABA", got {order!r}')
    if not isinstance(names, int) or isinstance(names, bool) or names < 0 or 0 < names < 3:
        raise IOIError(f"names must be 0 (all single-token names) or at least 3, got {names!r}")
    count = len(BABA_TEMPLATES)
    if isinstance(templates, int) and not isinstance(templates, bool):
        if not 1 <= templates <= count:
            raise IOIError(f"templates must be between 1 and {count} (the first k templates), got {templates}")
        return tuple(range(templates))
    if isinstance(templates, list | tuple) and templates:
        bad = [t for t in templates if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < count]
        if bad:
            raise IOIError(f"template indices must be in 0..{count - 1}, got {bad[0]!r}")
        return tuple(dict.fromkeys(templates))
    if templates == "all":
        return tuple(range(count))
    raise IOIError(f'templates must be a count, a list of indices or "all", got {templates!r}')


def _pool(name_tok: dict[str, int], names: int) -> list[str]:
    """The names drawn from: all single-token names, or the first `names` of them in NAMES order."""
    pool = [x for x in NAMES if x in name_tok]
    return pool[:names] if names else pool


def _rows(tokenizer: Any, n: int, seed: int, templates: Any, order: str, names: int) -> list[_Row]:
    chosen = _check_params(n, seed, templates, order, names)
    name_tok, place_tok, object_tok = _vocab(tokenizer)
    pool = _pool(name_tok, names)
    rng = random.Random(f"ioi:{seed}")
    rows: list[_Row] = []
    seen: set[_Row] = set()
    orders = ("ABBA", "BABA") if order == "mixed" else (order,)
    i = 0
    while len(rows) < n:
        o = orders[i % len(orders)]
        t = chosen[(i // len(orders)) % len(chosen)]
        for _attempt in range(100):
            io, s = rng.sample(pool, 2)
            row = _Row(t, o, io, s, rng.choice(sorted(place_tok)), rng.choice(sorted(object_tok)))
            if row not in seen:
                break
        seen.add(row)
        rows.append(row)
        i += 1
    return rows


def _layout(tokenizer: Any, template: str, fill: dict[str, str]) -> tuple[list[int], dict[str, list[int]]]:
    """Tokens of the filled template, built piece by piece, and the indices of each slot's tokens.

    Every slot filler is one token (with its leading space). The piecewise tokens must equal the
    tokenizer's own tokenization of the whole text, or the template cannot be used with it.
    """
    tokens: list[int] = []
    slots: dict[str, list[int]] = {"A": [], "B": [], "PLACE": [], "OBJECT": []}
    pos = 0
    for m in _SLOT.finditer(template):
        lit = template[pos : m.start()]
        if lit:
            if lit.endswith(" "):
                lit = lit[:-1]
            if lit:
                tokens += tokenizer.encode(lit)
        word = fill[m.group(1)]
        ids = tokenizer.encode(" " + word)
        slots[m.group(1)].append(len(tokens))
        tokens += ids
        pos = m.end()
    rest = template[pos:]
    if rest.strip():
        tokens += tokenizer.encode(rest)
    return tokens, slots


def _fill(template: str, fill: dict[str, str]) -> str:
    return _SLOT.sub(lambda m: fill[m.group(1)], template)


def _example(tokenizer: Any, row: _Row, a: str, b: str, b2: str, *, corrupted: bool) -> Example:
    """One prompt: `a` fills the IO slot, `b` the first S slot, `b2` the second S slot."""
    template = _template_text(row.template, row.order)
    # [A] is IO, [B] is S. The last [A] (the answer) is cut off: the prompt ends before it.
    cut = template.rfind(" [A]")
    template = template[:cut]
    first_b = template.find("[B]")
    second_b = template.find("[B]", first_b + 1)
    template = template[:second_b] + "[S2]" + template[second_b + 3 :]
    pieces = re.split(r"(\[S2\])", template)
    pieces[0] = pieces[0].rstrip(" ")  # the space belongs to the S2 token
    fill = {"A": a, "B": b, "PLACE": row.place, "OBJECT": row.object}
    head_tokens, slots = _layout(tokenizer, pieces[0], fill)
    s2_index = len(head_tokens)
    s2_tokens = tokenizer.encode(" " + b2)
    tail_tokens, tail_slots = _layout(tokenizer, pieces[2], fill)
    tokens = head_tokens + s2_tokens + tail_tokens
    text = _fill(pieces[0], fill) + " " + b2 + _fill(pieces[2], fill)
    if tokens != list(tokenizer.encode(text)) or len(s2_tokens) != 1:
        raise IOIError(f"template {row.template} does not tokenize piecewise with this tokenizer: {text!r}")
    io_idx, s1_idx = slots["A"][0], slots["B"][0]
    name_tok, _, _ = _vocab(tokenizer)
    fields = {
        "io": a,
        "s": b,
        "s2": b2,
        "order": row.order,
        "template": row.template,
        "place": row.place,
        "object": row.object,
        "clean_io": row.io,
        "clean_s": row.s,
        "corrupted": corrupted,
    }
    return Example.make(
        tokens,
        name_tok[row.io],
        wrongs=name_tok[row.s],
        positions={"IO": io_idx, "S1": s1_idx, "S1_plus1": s1_idx + 1, "S2": s2_index, "END": len(tokens) - 1},
        fields=fields,
        text=text,
    )


def vocabulary(tokenizer: Any, names: int = 0) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(names, places, objects) that are one token each (with their leading space) for `tokenizer`;
    names: 0 for every such name, else the first `names` of them in NAMES order."""
    name_tok, place_tok, object_tok = _vocab(tokenizer)
    return tuple(_pool(name_tok, names)), tuple(sorted(place_tok)), tuple(sorted(object_tok))


def prompt(
    tokenizer: Any,
    *,
    template: int,
    order: str,
    io: str,
    s: str,
    place: str,
    object: str,
    abc: tuple[str, str, str] | None = None,
) -> Example:
    """One IOI example as the generators build it: template `template` (an index into BABA_TEMPLATES) in
    order "ABBA" or "BABA", with io/s/place/object filled in. abc: the ABC corruption, three names for
    the IO, S1 and S2 slots (the answers stay io and s)."""
    row = _Row(template, order, io, s, place, object)
    if abc is not None:
        return _example(tokenizer, row, *abc, corrupted=True)
    return _example(tokenizer, row, io, s, s, corrupted=False)


@register(
    "ioi",
    fields=FIELDS,
    positions=POSITIONS,
    params=_PARAMS,
    description="indirect object identification (Wang et al. 2022): answer the IO name, wrong answer the subject",
)
def ioi(*, tokenizer: Any, n: int = 32, seed: int = 0, templates: Any = 1, order: str = "mixed", names: int = 0):
    """IOI prompts: `templates` is a count k (the first k templates), a list of indices or "all";
    `order` "mixed" (alternating ABBA/BABA), "ABBA" or "BABA"; `names` k > 0 uses only k names."""
    if tokenizer is None:
        raise IOIError("the ioi dataset needs a text tokenizer (a model with a vocabulary)")
    rows = _rows(tokenizer, n, seed, templates, order, names)
    return [_example(tokenizer, r, r.io, r.s, r.s, corrupted=False) for r in rows]


@register(
    "ioi_abc",
    fields=FIELDS,
    positions=POSITIONS,
    params=_PARAMS,
    description="the ABC corruption of ioi, paired by row: IO, S1 and S2 replaced by three other distinct names",
)
def ioi_abc(*, tokenizer: Any, n: int = 32, seed: int = 0, templates: Any = 1, order: str = "mixed", names: int = 0):
    """Row i is the ABC corruption of row i of `ioi(...)` with the same arguments."""
    if tokenizer is None:
        raise IOIError("the ioi_abc dataset needs a text tokenizer (a model with a vocabulary)")
    rows = _rows(tokenizer, n, seed, templates, order, names)
    name_tok, _, _ = _vocab(tokenizer)
    pool = _pool(name_tok, names)
    out = []
    for i, r in enumerate(rows):
        rng = random.Random(f"ioi_abc:{seed}:{i}")
        others = [x for x in pool if x not in (r.io, r.s)]
        if len(others) < 3:
            raise IOIError(f"ioi_abc needs at least 5 names, got {len(pool)}")
        a, b, c = rng.sample(others, 3)
        out.append(_example(tokenizer, r, a, b, c, corrupted=True))
    return out
