"""engine/draws.py against SEMANTICS.md (the appendix's draw rule) and hand-built classes.

The reference for `draw_index` is the formula as docs/SEMANTICS.md writes it, spelled out here with
hashlib (no circuitdsl code); classes are written out by hand for a dataset small enough to read."""

from __future__ import annotations

import hashlib

import pytest

from circuitdsl.datasets.core import Dataset, Example
from circuitdsl.diagnostics import CircuitError
from circuitdsl.engine.draws import CLASS, OTHER, FeatureIndex, draw_index, feature_fn, pick
from circuitdsl.ir import Feature, FeatureKind


def spec_h(seed, root_id, path, kind) -> int:
    """H(seed, id, path, kind) of docs/SEMANTICS.md: blake2b, 8 bytes, big-endian."""
    digest = hashlib.blake2b(f"{seed}\x1f{root_id}\x1f{path}\x1f{kind}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@pytest.mark.parametrize(
    "seed, root, path, kind, n",
    [
        (0, "ex-000", "out/a1.0>in", "class", 7),
        (3, "ex-017", "out/a1.0>in/a0.0>k", "other", 1000),
        (12, "é-1", "out", "class", 2**61 - 1),
        (0, "x", "a1.0/a0.0", "other", 2),
    ],
)
def test_draw_index_is_the_documented_hash_modulo_the_pool(seed, root, path, kind, n):
    assert draw_index(seed, root, path, kind, n) == spec_h(seed, root, path, kind) % n


def test_draws_depend_on_every_key_part_and_a_pool_of_one_gives_its_member():
    base = (0, "ex-000", "out/a1.0>in", CLASS, 2**40)
    got = draw_index(*base)
    for changed in [
        (1, *base[1:]),
        (0, "ex-001", *base[2:]),
        (0, "ex-000", "out/a1.0>q", CLASS, 2**40),
        (0, "ex-000", "out/a1.0>in", OTHER, 2**40),
    ]:
        assert draw_index(*changed) != got
    assert draw_index(5, "r", "p", CLASS, 1) == 0
    assert pick((42,), 5, "r", "p", CLASS) == 42
    pool = (3, 9, 4, 1)
    assert pick(pool, 2, "r", "p", OTHER) == pool[spec_h(2, "r", "p", OTHER) % 4]
    for n in (0, -1):
        with pytest.raises(ValueError):
            draw_index(0, "r", "p", CLASS, n)


def ex(i, toks, **fields):
    return Example.make(toks, 0, positions={"end": len(toks) - 1}, fields=fields, id=f"e{i}")


# ids e0..e5; layouts by length: {e0, e2, e4, e5} have 3 tokens, {e1, e3} have 2
DS = Dataset(
    "D",
    (
        ex(5, [1, 2, 3], g="a", v=1.0),
        ex(3, [4, 5], g="a", v=2.0),
        ex(0, [7, 8, 3], g="b", v=1.0000000001),
        ex(1, [1, 1], g="a", v=[1, 2]),
        ex(4, [9, 9, 9], g="a", v=[1, 2]),
        ex(2, [6, 5, 3], g="b", v=2.0),
    ),
    field_names=("g", "v"),
    position_names=("end",),
)


def test_classes_are_within_a_layout_and_ordered_by_id():
    fi = FeatureIndex(DS)
    g = Feature(FeatureKind.FIELD, ("g",))
    # e5 (index 0): layout of 3 tokens, g = a -> {e4 (index 4), e5 (0)} ordered by id
    assert fi.cls(g, 0) == (4, 0)
    assert fi.cls(g, 2) == (2, 5)  # e0, e2: g = b
    assert fi.cls(g, 1) == (3, 1)  # the 2-token layout: e1, e3
    assert fi.cls(Feature(FeatureKind.IDENTITY), 4) == (4,)
    assert fi.cls(Feature(FeatureKind.CONSTANT), 0) == (2, 5, 4, 0)  # e0, e2, e4, e5
    end = Feature(FeatureKind.TOKEN_AT, ("end",))
    assert fi.cls(end, 0) == (2, 5, 0)  # last token 3: e0, e2, e5
    assert fi.cls(end, 4) == (4,)


def test_values_compare_as_semantics_says_rounded_floats_and_lists_by_content():
    fi = FeatureIndex(DS)
    v = Feature(FeatureKind.FIELD, ("v",))
    assert fi.cls(v, 0) == (2, 0)  # 1.0 and 1.0000000001 agree to 1e-9
    assert fi.cls(v, 5) == (5,)  # 2.0, alone in its layout
    assert fi.value(v, 4) == (1, 2) and fi.cls(v, 4) == (4,)


def test_tuple_features_and_their_identity_parts():
    fi = FeatureIndex(DS)
    gv = Feature(FeatureKind.TUPLE, parts=(Feature(FeatureKind.FIELD, ("g",)), Feature(FeatureKind.TOKEN_AT, ("end",))))
    assert feature_fn(gv)(DS[0]) == ("a", 3)
    assert fi.cls(gv, 2) == (2, 5)  # g = b and end token 3: e0, e2
    with_id = Feature(FeatureKind.TUPLE, parts=(Feature(FeatureKind.FIELD, ("g",)), Feature(FeatureKind.IDENTITY)))
    assert feature_fn(with_id)(DS[0]) == ("a", "e5")
    assert fi.cls(with_id, 0) == (0,)
    assert feature_fn(Feature(FeatureKind.IDENTITY)) is None
    assert feature_fn(Feature(FeatureKind.CONSTANT))(DS[3]) == ()


def test_a_missing_field_is_e412_and_a_failing_function_e413(tmp_path, monkeypatch):
    fi = FeatureIndex(DS)
    with pytest.raises(CircuitError) as err:
        fi.cls(Feature(FeatureKind.FIELD, ("nope",)), 0)
    assert err.value.diagnostics[0].code == "E412" and "e5" in err.value.diagnostics[0].message
    (tmp_path / "featmod_draws_unit.py").write_text("def boom(e):\n    raise RuntimeError('no')\n")
    bad = Feature(FeatureKind.FUNCTION, ("featmod_draws_unit:boom", str(tmp_path / "featmod_draws_unit.py")))
    with pytest.raises(CircuitError) as err:
        fi.cls(bad, 0)
    d = err.value.diagnostics[0]
    assert d.code == "E413" and "RuntimeError: no" in d.message


def test_a_function_feature_without_an_origin_is_imported_by_module_name():
    # features built from Python (not by the compiler) may name a module on sys.path without its file
    fn = feature_fn(Feature(FeatureKind.FUNCTION, ("operator:attrgetter",)))
    assert fn is __import__("operator").attrgetter
