"""Mutation testing of the score code: do the tests notice when the code is wrong?

    .venv/bin/python scripts/mutation.py                       # every module of MODULES, 2 workers
    .venv/bin/python scripts/mutation.py scores search -j 2    # some of them
    .venv/bin/python scripts/mutation.py treeify --tests tests/engine/test_reference.py --conftest
    .venv/bin/python scripts/mutation.py --list scores         # the mutants, without running them

Not part of the test run (it takes minutes). For each module it makes every mutant an AST operator swap
allows (arithmetic + <-> -, * <-> /; comparisons < <= > >= == != is in, flipped and moved across the
boundary; and <-> or; `not x` -> x; -x -> x; numbers n -> n + 1 (0 <-> 1); True <-> False; max <-> min,
any <-> all, abs(x) -> x, argmax <-> argmin, .mean() -> .sum(); += <-> -=; an `if`/`while` test negated;
break <-> continue), runs the module's tests against each mutant, and reports how many the tests kill
(fail, error or time out) and which survive. Docstrings, strings, f-strings and `__all__` are not
mutated; a line ending in `# pragma: no mutate` is skipped.

The working tree is never written: each mutant is served from memory by an import hook in a forked
child that imports circuitdsl afresh (the parent preloads numpy, torch and pytest once), so mutants run
in parallel with nothing else disturbed. Results: a summary per module, every survivor with its line,
and (with --json PATH) the full list. docs/MUTATION.md records the last run and why each survivor is
equivalent.
"""

from __future__ import annotations

import argparse
import ast
import importlib.abc
import importlib.util
import json
import os
import select
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODULES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    # name: (module, fast tests that protect it, whether the tests need their folder's conftest.py)
    "scores": ("circuitdsl.engine.scores", ("tests/engine/test_scores_unit.py",), False),
    "metrics": ("circuitdsl.engine.metrics", ("tests/engine/test_metrics_unit.py",), False),
    "search": ("circuitdsl.engine.search", ("tests/engine/test_search_unit.py",), False),
    "derive": ("circuitdsl.engine.derive", ("tests/engine/test_search_unit.py",), False),
    "meets": ("circuitdsl.engine.meets", ("tests/engine/test_meets_unit.py",), False),
    "draws": ("circuitdsl.engine.draws", ("tests/engine/test_draws_unit.py", "tests/engine/test_determinism.py"), True),
    "treeify": (
        "circuitdsl.engine.treeify",
        ("tests/engine/test_treeify.py", "tests/engine/test_tree_settings.py"),
        True,
    ),
}
DEFAULT = ("scores", "metrics", "search", "derive", "meets", "draws", "treeify")
NOT_APPLIED = 97

_CMP_SWAPS = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}
_BIN_SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
}
_NAME_SWAPS = {"max": "min", "min": "max", "any": "all", "all": "any"}
_ATTR_SWAPS = {
    "max": "min",
    "min": "max",
    "argmax": "argmin",
    "argmin": "argmax",
    "mean": "sum",
    "sum": "mean",
    "log_softmax": "softmax",
    "softmax": "log_softmax",
}
_SYM = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitOr: "|",
    ast.BitAnd: "&",
}


@dataclass
class Mutant:
    module: str
    index: int
    line: int
    what: str
    source_line: str
    outcome: str = ""
    seconds: float = 0.0


def _skip_lines(src: str) -> set[int]:
    return {i for i, line in enumerate(src.splitlines(), 1) if line.rstrip().endswith("# pragma: no mutate")}


def _protected(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, f-strings and everything inside them, `__all__`, annotations."""
    out: set[int] = set()

    def mark(n):
        for x in ast.walk(n):
            out.add(id(x))

    for n in ast.walk(tree):
        if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef) and n.body:
            first = n.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                mark(first)
        if isinstance(n, ast.JoinedStr):
            mark(n)
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets):
            mark(n)
        if isinstance(n, ast.AnnAssign):
            mark(n.annotation)
        if isinstance(n, ast.arg) and n.annotation is not None:
            mark(n.annotation)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.returns is not None:
            mark(n.returns)
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant):
            mark(n)  # attribute docstrings
    return out


def _points(tree: ast.AST, skip_lines: set[int]) -> list[tuple[ast.AST, str, object]]:
    """Every (node, description, replacement-maker) in a fixed order."""
    protected = _protected(tree)
    pts: list[tuple[ast.AST, str, object]] = []
    for n in ast.walk(tree):
        if id(n) in protected or getattr(n, "lineno", None) in skip_lines:
            continue
        if isinstance(n, ast.BinOp) and type(n.op) in _BIN_SWAPS:
            new = _BIN_SWAPS[type(n.op)]
            pts.append((n, f"`{_SYM[type(n.op)]}` -> `{_SYM[new]}`", ("binop", new)))
        elif isinstance(n, ast.AugAssign) and type(n.op) in (ast.Add, ast.Sub):
            new = ast.Sub if isinstance(n.op, ast.Add) else ast.Add
            pts.append((n, f"`{_SYM[type(n.op)]}=` -> `{_SYM[new]}=`", ("binop", new)))
        elif isinstance(n, ast.Compare):
            for i, op in enumerate(n.ops):
                for new in _CMP_SWAPS.get(type(op), ()):
                    pts.append((n, f"`{_SYM[type(op)]}` -> `{_SYM[new]}`", ("cmp", i, new)))
        elif isinstance(n, ast.BoolOp):
            new = ast.Or if isinstance(n.op, ast.And) else ast.And
            pts.append(
                (
                    n,
                    f"`{'and' if isinstance(n.op, ast.And) else 'or'}` -> `{'or' if new is ast.Or else 'and'}`",
                    ("boolop", new),
                )
            )
        elif isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not | ast.USub):
            pts.append((n, "`not x` -> `x`" if isinstance(n.op, ast.Not) else "`-x` -> `x`", ("unwrap",)))
        elif isinstance(n, ast.Constant) and type(n.value) in (int, float, bool):
            v = n.value
            if isinstance(v, bool):
                new = not v
            elif isinstance(v, int):
                new = 1 if v == 0 else (0 if v == 1 else v + 1)
            else:
                new = 1.0 if v == 0 else v * 2
            pts.append((n, f"`{v!r}` -> `{new!r}`", ("const", new)))
        elif isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Name) and f.id in _NAME_SWAPS:
                pts.append((n, f"`{f.id}(` -> `{_NAME_SWAPS[f.id]}(`", ("name", _NAME_SWAPS[f.id])))
            elif isinstance(f, ast.Name) and f.id == "abs" and len(n.args) == 1:
                pts.append((n, "`abs(x)` -> `x`", ("unwrap_call",)))
            elif isinstance(f, ast.Attribute) and f.attr in _ATTR_SWAPS:
                pts.append((n, f"`.{f.attr}(` -> `.{_ATTR_SWAPS[f.attr]}(`", ("attr", _ATTR_SWAPS[f.attr])))
        elif isinstance(n, ast.If | ast.While | ast.IfExp):
            pts.append((n, "condition negated", ("negate",)))
        elif isinstance(n, ast.Break | ast.Continue):
            pts.append(
                (n, "`break` -> `continue`" if isinstance(n, ast.Break) else "`continue` -> `break`", ("loopctl",))
            )
    return pts


class _Apply(ast.NodeTransformer):
    def __init__(self, target_index: int, skip_lines: set[int], tree: ast.AST):
        self.target = _points(tree, skip_lines)[target_index]

    def generic_visit(self, node):
        node = super().generic_visit(node)
        if node is not self.target[0]:
            return node
        kind, *args = self.target[2]
        if kind == "binop":
            node.op = args[0]()
        elif kind == "cmp":
            node.ops[args[0]] = args[1]()
        elif kind == "boolop":
            node.op = args[0]()
        elif kind == "unwrap":
            return node.operand
        elif kind == "const":
            return ast.copy_location(ast.Constant(args[0]), node)
        elif kind == "name":
            node.func = ast.copy_location(ast.Name(args[0], ast.Load()), node.func)
        elif kind == "unwrap_call":
            return node.args[0]
        elif kind == "attr":
            node.func.attr = args[0]
        elif kind == "negate":
            node.test = ast.copy_location(ast.UnaryOp(ast.Not(), node.test), node.test)
        elif kind == "loopctl":
            return ast.copy_location(ast.Continue() if isinstance(node, ast.Break) else ast.Break(), node)
        return node


def mutants(name: str) -> tuple[str, list[Mutant]]:
    module = MODULES[name][0]
    path = ROOT / (module.replace(".", "/") + ".py")
    src = path.read_text(encoding="utf-8")
    tree = ast.parse(src)
    lines = src.splitlines()
    out = [
        Mutant(name, i, n.lineno, what, lines[n.lineno - 1].strip())
        for i, (n, what, _) in enumerate(_points(tree, _skip_lines(src)))
    ]
    return src, out


def mutant_source(src: str, index: int) -> str:
    tree = ast.parse(src)
    tree = _Apply(index, _skip_lines(src), tree).visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, fullname: str, source: str, origin: str):
        self.fullname, self.source, self.origin = fullname, source, origin

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.fullname:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=self.origin)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.origin
        exec(compile(self.source, self.origin, "exec"), module.__dict__)


def _pytest_args(tests, conftest: bool) -> list[str]:
    # --assert=plain: pytest would otherwise load circuitdsl (a plugin package) through its own rewriting
    # import hook, from the file on disk, ahead of the mutant
    args = [
        *tests,
        "-x",
        "-q",
        "--assert=plain",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--no-header",
        "-o",
        "addopts=",
    ]
    if not conftest:
        args.append("--noconftest")
    return args


def _child(fullname: str, source: str | None, tests, conftest: bool) -> None:
    """In a forked child: serve the mutant, run the tests, exit with pytest's code."""
    os.chdir(ROOT)
    finder = None
    if source is not None:
        finder = _Finder(fullname, source, str(ROOT / (fullname.replace(".", "/") + ".py")))
        sys.meta_path.insert(0, finder)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    import pytest

    try:
        rc = pytest.main(_pytest_args(tests, conftest))
    except BaseException:
        rc = 99
    if finder is not None and rc == 0 and getattr(sys.modules.get(fullname), "__loader__", None) is not finder:
        rc = NOT_APPLIED  # the tests never imported the mutant: that proves nothing
    os._exit(int(rc))


def _spawn(fullname, source, tests, conftest) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            _child(fullname, source, tests, conftest)
        finally:
            os._exit(98)
    return pid


def run(
    names, *, jobs: int, timeout_factor: float, tests_override=None, conftest_override=False, json_out=None, only=None
) -> int:
    """only: (module, mutant index) pairs to run (the survivors of an earlier run), or None for every mutant."""
    for mod in ("numpy", "networkx", "pytest", "lark"):
        __import__(mod)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    sys.path.insert(0, str(ROOT))
    all_results: list[Mutant] = []
    summary = []
    worst = 0
    for name in names:
        fullname, tests, conftest = MODULES[name]
        tests = tuple(tests_override or tests)
        conftest = conftest or conftest_override
        src, ms = mutants(name)
        if only is not None:
            ms = [m for m in ms if (name, m.index) in only]
        t0 = time.perf_counter()
        pid = _spawn(fullname, None, tests, conftest)
        _, status = os.waitpid(pid, 0)
        base = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            print(
                f"{name}: the tests fail on the unmutated module (exit {os.waitstatus_to_exitcode(status)}); skipped",
                file=sys.stderr,
            )
            summary.append((name, len(ms), None, None))
            continue
        limit = max(20.0, timeout_factor * base)
        print(
            f"{name}: {len(ms)} mutants, tests {' '.join(tests)} ({base:.1f} s unmutated, timeout {limit:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        pending = list(ms)
        running: dict[int, tuple[Mutant, float]] = {}
        while pending or running:
            while pending and len(running) < jobs:
                m = pending.pop(0)
                try:
                    source = mutant_source(src, m.index)
                except Exception as e:
                    m.outcome = f"invalid ({type(e).__name__})"
                    continue
                running[_spawn(fullname, source, tests, conftest)] = (m, time.perf_counter())
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                now = time.perf_counter()
                for p, (_m, t) in list(running.items()):
                    if now - t > limit:
                        os.kill(p, signal.SIGKILL)
                select.select([], [], [], 0.05)
                continue
            m, t = running.pop(pid)
            m.seconds = time.perf_counter() - t
            code = os.waitstatus_to_exitcode(status)
            m.outcome = (
                "survived"
                if code == 0
                else "not applied"
                if code == NOT_APPLIED
                else "timeout"
                if code == -signal.SIGKILL
                else "killed"
            )
            done = len(ms) - len(pending) - len(running)
            if m.outcome == "survived":
                print(f"  survived  {name}:{m.line}  {m.what}   | {m.source_line}", file=sys.stderr, flush=True)
            elif done % 25 == 0:
                print(f"  .. {done}/{len(ms)}", file=sys.stderr, flush=True)
        valid = [m for m in ms if not m.outcome.startswith("invalid")]
        if any(m.outcome == "not applied" for m in valid):
            print(f"{name}: some mutants were never imported by the tests: the run is not valid", file=sys.stderr)
            worst = max(worst, 2)
        killed = sum(m.outcome in ("killed", "timeout") for m in valid)
        summary.append((name, len(valid), killed, time.perf_counter() - t0))
        all_results += ms
    print()
    print(f"{'module':10} {'mutants':>8} {'killed':>7} {'score':>7} {'time':>7}")
    for name, n, killed, secs in summary:
        if killed is None:
            print(f"{name:10} {n:8} {'-':>7} {'-':>7} {'-':>7}  (tests fail unmutated)")
            worst = 2
            continue
        print(f"{name:10} {n:8} {killed:7} {100 * killed / max(n, 1):6.1f}% {secs:6.0f}s")
    surv = [m for m in all_results if m.outcome == "survived"]
    if surv:
        print("\nsurvivors:")
        for m in surv:
            print(f"  {m.module}:{m.line}  {m.what}   | {m.source_line}")
    if json_out:
        Path(json_out).write_text(json.dumps([asdict(m) for m in all_results], indent=1) + "\n")
    return worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("modules", nargs="*", help=f"of {', '.join(MODULES)} (default: {', '.join(DEFAULT)})")
    p.add_argument("-j", "--jobs", type=int, default=2, help="mutants run at once (default 2)")
    p.add_argument(
        "--timeout-factor",
        type=float,
        default=10.0,
        help="a mutant running this many times longer than "
        "the unmutated tests (at least 20 s) is killed and counts as detected",
    )
    p.add_argument("--tests", nargs="+", default=None, help="test files to run instead of the module's own")
    p.add_argument("--conftest", action="store_true", help="load the tests' conftest.py files")
    p.add_argument("--list", action="store_true", help="print the mutants and exit")
    p.add_argument("--json", default=None, metavar="PATH", help="write every mutant and its outcome here")
    p.add_argument(
        "--survivors-of",
        default=None,
        metavar="PATH",
        help="run only the mutants that survived in this earlier --json output (e.g. against slower tests)",
    )
    a = p.parse_args(argv)
    names = a.modules or list(DEFAULT)
    bad = [n for n in names if n not in MODULES]
    if bad:
        p.error(f"unknown module(s) {', '.join(bad)}; known: {', '.join(MODULES)}")
    if a.list:
        for n in names:
            for m in mutants(n)[1]:
                print(f"{n}:{m.line}  {m.what}   | {m.source_line}")
        return 0
    only = None
    if a.survivors_of:
        only = {
            (m["module"], m["index"])
            for m in json.loads(Path(a.survivors_of).read_text())
            if m["outcome"] == "survived"
        }
    return run(
        names,
        jobs=a.jobs,
        timeout_factor=a.timeout_factor,
        tests_override=a.tests,
        conftest_override=a.conftest,
        json_out=a.json,
        only=only,
    )


if __name__ == "__main__":
    sys.exit(main())
