"""Feature functions: `module:function` is the function in the file the hypothesis names, whatever else the
process loaded (SEMANTICS v3 section 6; issue 11, point 3). The compiler and the engine resolve the same file."""

from __future__ import annotations

import sys

import pytest

from circuitdsl.compiler import compile_file
from circuitdsl.datasets.core import Example
from circuitdsl.engine.draws import feature_fn
from circuitdsl.ir import NodeId, NodeKind

A10 = NodeId(NodeKind.HEAD, 1, 0)
CIRCUIT = "model smollm2-135m\ndataset d = fakegen(n = 4)\nnode a1.0 depends on {ref}\nedge embed -> a1.0 -> out\n"
EX = Example.make([3, 1, 4], 1)


def _folder(root, name, body, ref="feats:f", module="feats"):
    d = root / name
    (d / module.replace(".", "/")).parent.mkdir(parents=True, exist_ok=True)
    (d / (module.replace(".", "/") + ".py")).write_text(body)
    (d / "h.circuit").write_text(CIRCUIT.format(ref=ref))
    return d / "h.circuit"


def _fn(path):
    r = compile_file(path)
    assert r.hypothesis is not None, r.render()
    return r.hypothesis.claim(A10).feature, feature_fn(r.hypothesis.claim(A10).feature)


def test_two_folders_each_with_feats_py_get_their_own_function(tmp_path):
    a = _folder(tmp_path, "a", "def f(example):\n    return 'A'\n")
    b = _folder(tmp_path, "b", "def f(example):\n    return 'B'\n")
    fa, fn_a = _fn(a)
    fb, fn_b = _fn(b)
    assert fn_a(EX) == "A" and fn_b(EX) == "B"
    assert fa != fb and str(fa) == str(fb) == "feats:f"
    # compiling again in any order gives the same functions
    assert _fn(b)[1](EX) == "B" and _fn(a)[1](EX) == "A"


def test_a_module_of_the_same_name_already_loaded_does_not_win(tmp_path, monkeypatch):
    import types

    other = types.ModuleType("feats")
    other.f = lambda e: "other"
    monkeypatch.setitem(sys.modules, "feats", other)
    _, fn = _fn(_folder(tmp_path, "c", "def f(example):\n    return 'C'\n"))
    assert fn(EX) == "C"
    assert sys.modules["feats"] is other  # loading a feature module does not take a bare name


def test_dotted_module_in_a_subfolder(tmp_path):
    p = _folder(tmp_path, "d", "def f(example):\n    return 'D'\n", ref="lib.feats:f", module="lib.feats")
    assert _fn(p)[1](EX) == "D"


def test_installed_module_is_used_when_no_file_is_next_to_the_circuit(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "cdsl_test_pkg").mkdir(parents=True)
    (site / "cdsl_test_pkg" / "__init__.py").write_text("")
    (site / "cdsl_test_pkg" / "feats.py").write_text("def f(example):\n    return 'installed'\n")
    monkeypatch.syspath_prepend(str(site))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "h.circuit").write_text(CIRCUIT.format(ref="cdsl_test_pkg.feats:f"))
    feat, fn = _fn(plain / "h.circuit")
    assert fn(EX) == "installed"
    # a file next to the .circuit comes first
    local = _folder(
        tmp_path,
        "local",
        "def f(example):\n    return 'local'\n",
        ref="cdsl_test_pkg.feats:f",
        module="cdsl_test_pkg.feats",
    )
    assert _fn(local)[1](EX) == "local"


def test_sibling_helpers_import_while_the_module_loads(tmp_path):
    p = _folder(tmp_path, "e", "import helper_e\n\ndef f(example):\n    return helper_e.VALUE\n")
    (p.parent / "helper_e.py").write_text("VALUE = 'E'\n")
    assert _fn(p)[1](EX) == "E"
    assert str(p.parent) not in sys.path


@pytest.mark.parametrize(
    "body, ref, why",
    [
        ("def f(example):\n    return 1\n", "feats:g", "has no function `g`"),
        ("raise RuntimeError('boom')\n", "feats:f", "boom"),
        ("f = 3\n", "feats:f", "not callable"),
        ("", "no_such_module_xyz:f", "cannot import module `no_such_module_xyz`"),
    ],
)
def test_unusable_functions_are_e210(tmp_path, body, ref, why):
    p = _folder(tmp_path, "bad", body, ref=ref)
    r = compile_file(p)
    (d,) = [d for d in r.diagnostics if d.code == "E210"]
    assert why in d.label and (d.span.line, d.span.col) == (3, 22)


def test_the_engine_resolves_the_file_the_compiler_did_even_after_sys_modules_changes(tmp_path, monkeypatch):
    feat, _ = _fn(_folder(tmp_path, "g", "def f(example):\n    return 'G'\n"))
    import types

    other = types.ModuleType("feats")
    other.f = lambda e: "other"
    monkeypatch.setitem(sys.modules, "feats", other)
    monkeypatch.chdir(tmp_path)
    assert feature_fn(feat)(EX) == "G"
