"""Induction datasets: `induction` (A B ... A -> B) and `repeat` (a random sequence twice).

No torch here. Both generators work for the embedded `tiny` model (tokenizer None: tokens are the
ids 0..vocab-1) and for a real model with a tokenizer (tokens are the ids of common English words
that encode to exactly one token, with a leading space; `vocab` is then how many of them are used).
Parameters, fields and positions are documented in docs/DATASETS.md.
"""

from __future__ import annotations

import functools
import random
from typing import Any

from circuitdsl.datasets.core import Example
from circuitdsl.datasets.registry import register
from circuitdsl.diagnostics import CircuitError, Diagnostic

__all__ = ["induction", "repeat", "word_pool", "TINY_VOCAB", "TINY_N_CTX", "COMMON_WORDS"]

TINY_VOCAB = 48
"""The embedded model's vocabulary size (circuitdsl/models/tiny/config.json `d_vocab`)."""
TINY_N_CTX = 32
"""The embedded model's context length; generators refuse longer sequences only for the tiny model."""

COMMON_WORDS = (
    "the of and to in is was for that with on as by at from his her they this had not are but one "
    "all were when we there can an your which their said if do will each about how up out them then "
    "she many some so these would other into has more two like him see time could no make than first "
    "been its who now people my made over did down only way find use may water long little very after "
    "words called just where most know get through back much before go good new write our used me man "
    "too any day same right look think also around another came come work three word must because does "
    "part even place well such here take why things help put years different away again off went old "
    "number great tell men say small every found still between name should home big give air line set "
    "own under read last never us left end along while might next sound below saw something thought both "
    "few those always looked show large often together asked house world going want school important "
    "until form food keep children feet land side without boy once animals life enough took sometimes "
    "four head above kind began almost live page got earth need far hand high year mother light country "
    "father let night picture being study second soon story since white ever paper hard near sentence "
    "better best across during today however sure knew try told young sun thing whole hear example heard "
    "several change answer room sea against top turned learn point city play toward five himself usually "
    "money seen car morning body upon family later turn move face door cut done group true leave red "
    "friend dog cat tree river fish bird green blue black music king game ship table book river horse"
).split()
"""Candidate words for real-model datasets; each is used as `" " + word` if that is one token."""


def _param_error(gen: str, message: str, hint: str) -> CircuitError:
    return CircuitError([Diagnostic(code="E410", message=f"{gen}(): {message}", hint=hint)])


def _check_int(gen: str, name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _param_error(gen, f"parameter `{name}` must be an integer, got {value!r}", f"write e.g. `{name} = {lo}`")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise _param_error(gen, f"parameter `{name}` = {value} is out of range", f"`{name}` must be {rng}")
    return value


@functools.lru_cache(maxsize=8)
def _pool_for(tokenizer_key: int, tokenizer: Any) -> tuple[tuple[int, str], ...]:
    seen: set[int] = set()
    out = []
    for w in COMMON_WORDS:
        ids = list(tokenizer.encode(" " + w))
        if len(ids) == 1 and ids[0] not in seen:
            seen.add(ids[0])
            out.append((int(ids[0]), " " + w))
    return tuple(out)


def word_pool(tokenizer: Any) -> tuple[tuple[int, str], ...]:
    """(token id, text) of every COMMON_WORDS entry that encodes to exactly one token (deduplicated)."""
    try:
        return _pool_for(id(tokenizer), tokenizer)
    except TypeError:  # unhashable tokenizer object
        return _pool_for.__wrapped__(id(tokenizer), tokenizer)


def _vocabulary(gen: str, tokenizer: Any, vocab: int, length: int) -> tuple[int, ...]:
    """The token ids a generator draws from."""
    if tokenizer is None:
        _check_int(gen, "vocab", vocab, 4, TINY_VOCAB)
        if length > TINY_N_CTX:
            raise _param_error(
                gen,
                f"sequences of {length} tokens are longer than the tiny model's context ({TINY_N_CTX})",
                f"use at most {TINY_N_CTX} tokens",
            )
        return tuple(range(vocab))
    pool = word_pool(tokenizer)
    _check_int(gen, "vocab", vocab, 4)
    if len(pool) < 4:
        raise _param_error(gen, "the tokenizer has fewer than 4 single-token common words", "use a JSONL dataset")
    return tuple(i for i, _ in pool[:vocab])


def _text(tokenizer: Any, tokens: list[int]) -> str | None:
    return None if tokenizer is None else tokenizer.decode(list(tokens))


def _a1_positions(length: int, layouts: int, a1: int) -> list[int]:
    lo, hi = 0, length - 4  # B1 = A1 + 1 and at least one filler token between B1 and A2
    if a1 >= 0:
        _check_int("induction", "a1", a1, lo, hi)
        _check_int("induction", "layouts", layouts, 1, 1 + hi - a1)
        return [a1 + k for k in range(layouts)]
    _check_int("induction", "layouts", layouts, 1, hi - lo + 1)
    if layouts == 1:
        return [hi // 2]
    return [lo + round((hi - lo) * k / (layouts - 1)) for k in range(layouts)]


@register(
    "induction",
    fields=("A", "B", "wrong"),
    positions=("A1", "B1", "C1", "prev", "A2", "end"),
    params={"n": 128, "seed": 0, "length": 16, "vocab": TINY_VOCAB, "layouts": 1, "a1": -1},
    description="random tokens with `A B` once and A again at the end: predict B (induction)",
    models=("tiny", "smollm2-135m"),
)
def induction(
    *, tokenizer: Any = None, n: int, seed: int, length: int, vocab: int, layouts: int, a1: int
) -> list[Example]:
    """`... A B C ... A` -> B. A and B occur nowhere else; filler tokens are drawn with replacement.

    Layout k (example i is in layout i % layouts) puts A1 at a fixed index; the wrong answer (for
    logit_diff) is C, the token after B1 (what a copy shifted by one position would predict).
    """
    _check_int("induction", "n", n, 1)
    _check_int("induction", "seed", seed, 0)
    _check_int("induction", "length", length, 5)
    if isinstance(a1, bool) or not isinstance(a1, int):
        raise _param_error("induction", f"parameter `a1` must be an integer, got {a1!r}", "write e.g. `a1 = 3`")
    vocab_ids = _vocabulary("induction", tokenizer, vocab, length)
    starts = _a1_positions(length, layouts, a1)
    rng = random.Random(f"induction/{seed}")
    out = []
    for i in range(n):
        p_a1 = starts[i % len(starts)]
        p_b1, p_c1, p_a2 = p_a1 + 1, p_a1 + 2, length - 1
        a, b = rng.sample(vocab_ids, 2)
        filler = [t for t in vocab_ids if t not in (a, b)]
        toks = [rng.choice(filler) for _ in range(length)]
        toks[p_a1], toks[p_b1], toks[p_a2] = a, b, a
        out.append(
            Example.make(
                toks,
                b,
                wrongs=toks[p_c1],
                positions={"A1": p_a1, "B1": p_b1, "C1": p_c1, "prev": p_a2 - 1, "A2": p_a2, "end": p_a2},
                fields={"A": a, "B": b, "wrong": toks[p_c1]},
                text=_text(tokenizer, toks),
            )
        )
    return out


@register(
    "repeat",
    fields=("half",),
    positions=("first_half", "second_half", "end"),
    params={"n": 128, "seed": 0, "length": 8, "vocab": TINY_VOCAB},
    description="a random sequence of distinct tokens, repeated twice; scored on the predictable repeat",
    models=("tiny", "smollm2-135m"),
)
def repeat(*, tokenizer: Any = None, n: int, seed: int, length: int, vocab: int) -> list[Example]:
    """`r r` with r = `length` distinct random tokens (2 * length tokens in all).

    Scored positions are length .. 2*length-2 (every position of the second copy whose next token is
    known from the first copy); the answer is the next token, the wrong answer the current token.
    """
    _check_int("repeat", "n", n, 1)
    _check_int("repeat", "seed", seed, 0)
    _check_int("repeat", "length", length, 2)
    vocab_ids = _vocabulary("repeat", tokenizer, vocab, 2 * length)
    if length > len(vocab_ids):
        raise _param_error(
            "repeat",
            f"`length` = {length} needs {length} distinct tokens but vocab has {len(vocab_ids)}",
            "lower `length` or raise `vocab`",
        )
    rng = random.Random(f"repeat/{seed}")
    out = []
    for _ in range(n):
        half = rng.sample(vocab_ids, length)
        toks = half + half
        scored = list(range(length, 2 * length - 1))
        out.append(
            Example.make(
                toks,
                [toks[p + 1] for p in scored],
                scored=scored,
                wrongs=[toks[p] for p in scored],
                positions={
                    "first_half": list(range(length)),
                    "second_half": list(range(length, 2 * length)),
                    "end": 2 * length - 1,
                },
                fields={"half": tuple(half)},
                text=_text(tokenizer, toks),
            )
        )
    return out
