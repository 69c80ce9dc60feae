"""pytest plugin: every `expect` clause of a `.circuit` file is a test (docs/CI.md).

Registered under the `pytest11` entry point, so an installed circuitdsl makes pytest collect
`.circuit` files found under the configured paths: `[tool.circuitdsl] paths = [...]` in
pyproject.toml, or the ini option `circuitdsl_paths` (which wins). When pytest runs its default
`testpaths`, the configured paths are collected too; a `.circuit` file named on the command line is
always collected.

One check per file per session (per xdist worker), shared by the file's items and by Python tests
that ask for the same file through the `circuitdsl_result` fixture. A check runs the minimality and
completeness searches only when an `expect` of the file reads them (a Python test may ask for more:
the check then runs again with both and the new result is shared). Items:
`FILE::recovered >= 0.8` (one per `expect`, named after the clause); a file with language errors is
one failing item `FILE::compile` showing the rendered diagnostics (a file whose compilation crashes,
a bug, is that item too, with the traceback: the other files still run); a file without `expect` clauses is
one item `FILE::check` that passes when the check runs. Files whose model is not the embedded `tiny`
get the `slow` marker (run them with `pytest -m slow`).

Options: --circuitdsl-seed, --circuitdsl-n (sample count of every generator dataset, first n rows
of every JSONL file), --circuitdsl-device, --circuitdsl-progress (auto: phase lines such as
`h.circuit: check: minimality 3/17 [42 s]` through the terminal reporter for files on a real model). Torch and the engine are imported inside the hooks that run a check, so pytest
starts fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["CircuitFile", "ExpectItem", "CompileErrorItem", "circuitdsl_result", "shared_check"]

_CACHE = pytest.StashKey[dict]()
_PATHS = pytest.StashKey[tuple]()
FAST_MODELS = ("tiny",)
"""Models checked in the default run; files on any other model carry the `slow` marker."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("circuitdsl", "circuit hypotheses (.circuit files) as tests")
    group.addoption("--circuitdsl-seed", type=int, default=None, metavar="N", help="override every file's `set seed`")
    group.addoption(
        "--circuitdsl-n",
        type=int,
        default=None,
        metavar="N",
        help="override the sample count `n` of every generator dataset; the first N rows of every JSONL file",
    )
    group.addoption("--circuitdsl-device", default="cpu", metavar="DEVICE", help="torch device (default cpu)")
    group.addoption(
        "--circuitdsl-progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="phase lines while a file is checked (`h.circuit: check: minimality 3/17 [42 s]`: seconds since the check began); "
        "auto (default): for files on a real model, not with -qq",
    )
    parser.addini(
        "circuitdsl_paths",
        type="paths",
        default=[],
        help="folders (or files) whose .circuit files are collected (default: [tool.circuitdsl] paths)",
    )


def _configured_paths(config: pytest.Config) -> tuple[Path, ...]:
    ini = config.getini("circuitdsl_paths")
    if ini:
        return tuple(Path(p).resolve() for p in ini)
    pyproject = Path(config.rootpath) / "pyproject.toml"
    if not pyproject.is_file():
        return ()
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return ()
    paths = data.get("tool", {}).get("circuitdsl", {}).get("paths", [])
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise pytest.UsageError(f"{pyproject}: [tool.circuitdsl] paths must be a list of strings, got {paths!r}")
    return tuple((Path(config.rootpath) / p).resolve() for p in paths)


def pytest_configure(config: pytest.Config) -> None:
    n = config.getoption("circuitdsl_n")
    if n is not None and n < 1:
        raise pytest.UsageError(f"--circuitdsl-n must be a positive integer, got {n}")
    config.addinivalue_line("markers", "circuitdsl: an `expect` clause of a .circuit file")
    config.addinivalue_line("markers", "xdist_group(name): run the items of one group on one xdist worker")
    if not any(line.split(":")[0].strip() == "slow" for line in config.getini("markers")):
        config.addinivalue_line("markers", "slow: real-model hypotheses (checked with `pytest -m slow`)")
    paths = _configured_paths(config)
    config.stash[_PATHS] = paths
    config.stash[_CACHE] = {}
    # The default run (testpaths) also collects the configured .circuit paths.
    if config.args_source is pytest.Config.ArgsSource.TESTPATHS:
        have = {Path(a).resolve() for a in config.args}
        for p in paths:
            if p.exists() and p not in have and not any(_under(p, h) for h in have):
                config.args.append(str(p))


def _under(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix != ".circuit":
        return None
    config = parent.config
    fp = file_path.resolve()
    given = {Path(str(a).split("::")[0]).resolve() for a in config.args}
    if fp in given or any(_under(fp, p) for p in config.stash.get(_PATHS, ())):
        return CircuitFile.from_parent(parent, path=file_path)
    return None


class CircuitFile(pytest.File):
    """A `.circuit` file: compiled at collection (no torch), checked once when its first item runs."""

    def collect(self):
        from circuitdsl.compiler import compile_file

        try:
            compiled = compile_file(self.path)
        except Exception as e:  # a bug in circuitdsl: this file's one failing item, the session goes on
            yield CompileErrorItem.from_parent(self, name="compile", rendered=_internal(e, "compiling"), internal=True)
            return
        if compiled.hypothesis is None:
            yield CompileErrorItem.from_parent(self, name="compile", rendered=compiled.render("full"))
            return
        h = compiled.hypothesis
        slow = h.model.resolved not in FAST_MODELS and h.model.name not in FAST_MODELS
        seen: dict[str, int] = {}
        items = []
        for x in h.expects:
            name = str(x)
            if name in seen:
                name = f"{name} (line {x.span.line})" if x.span else f"{name} ({seen[name] + 1})"
            seen[name] = seen.get(name, 0) + 1
            items.append(ExpectItem.from_parent(self, name=name, expect=x))
        if not items:
            items.append(ExpectItem.from_parent(self, name="check", expect=None))
        for item in items:
            item.add_marker(pytest.mark.circuitdsl)
            item.add_marker(pytest.mark.xdist_group(str(self.path)))
            item.keywords[h.model.name] = True
            if slow:
                item.add_marker(pytest.mark.slow)
            yield item

    def run_check(self):
        """The file's CheckResult (or the InvalidHypothesis it raised), computed once per session and
        shared with Python tests of the same file (`circuitdsl_result`)."""
        return shared_check(self.config, self.path)


PROGRESS_EVERY_S = 5.0
"""Within one phase, at most one progress line per this many seconds (and always its last step)."""


def _progress(config: pytest.Config, path: Path, h):
    """A run_check progress callback writing phase lines through the terminal reporter, or None."""
    mode = config.getoption("circuitdsl_progress")
    slow = h.model.resolved not in FAST_MODELS and h.model.name not in FAST_MODELS
    if mode == "off" or (mode == "auto" and (not slow or config.get_verbosity() < -1)):
        return None
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return None
    capman = config.pluginmanager.get_plugin("capturemanager")
    import contextlib
    import time

    last_label: list[str | None] = [None]
    last_at = [0.0]
    start = time.monotonic()

    def say(label, done, total):
        now = time.monotonic()
        new = label != last_label[0]
        if not (new or (total and done >= total) or now - last_at[0] >= PROGRESS_EVERY_S):
            return
        last_label[0], last_at[0] = label, now
        count = f" {int(done)}/{int(total)}" if total else (f" {int(done)}" if done else "")
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            tr.ensure_newline()
            tr.write_line(f"{path.name}: check: {label}{count} [{now - start:.0f} s]")

    return say


def shared_check(config: pytest.Config, path, *, completeness: bool | None = None, minimality: bool | None = None):
    """The check of `path` under the session's options (--circuitdsl-seed/-n/-device), computed once
    and shared by the file's items and every `circuitdsl_result(path)` of the session. completeness,
    minimality: None runs a search only when an `expect` of the file reads it; True asks for it (a
    cached result without it is replaced by a check that runs it). Returns the CheckResult, or the
    InvalidHypothesis / CheckCrashed that stands for it."""
    from circuitdsl.results import CheckResult
    from circuitdsl.testing import InvalidHypothesis, check, compile_hypothesis, needs_completeness, needs_minimality

    cache = config.stash[_CACHE]
    path = Path(path).resolve()
    key = str(path)
    if key in cache:
        result, ran, h = cache[key]
        if not isinstance(result, CheckResult):
            return result
    else:
        try:
            h = compile_hypothesis(path)
        except InvalidHypothesis as e:
            cache[key] = (e, frozenset(), None)
            return e
        except Exception as e:  # a bug in circuitdsl: every user of the file fails with it
            cache[key] = (CheckCrashed(_internal(e, "compiling")), frozenset(), None)
            return cache[key][0]
        ran = None
    want = {
        p
        for p, ask, need in (
            ("completeness", completeness, needs_completeness(h)),
            ("minimality", minimality, needs_minimality(h)),
        )
        if ask or (ask is None and need)
    }
    if ran is not None:
        if want <= ran:
            return result
        want |= ran
    try:
        result = check(
            h,
            seed=config.getoption("circuitdsl_seed"),
            n=config.getoption("circuitdsl_n"),
            device=config.getoption("circuitdsl_device"),
            completeness=True if "completeness" in want else None,
            minimality=True if "minimality" in want else None,
            progress=_progress(config, path, h),
        )
    except InvalidHypothesis as e:
        result = e
    except Exception as e:  # a bug: every item of the file fails with it, the session goes on
        result = CheckCrashed(_internal(e, "checking"))
    cache[key] = (result, frozenset(want), h)
    return result


@pytest.fixture
def circuitdsl_result(request):
    """`circuitdsl_result(path, *, completeness=None, minimality=None) -> CheckResult`: the session's one
    check of a `.circuit` file, shared with the file's `expect` items (docs/CI.md). A relative path is
    taken from the rootdir. Raises InvalidHypothesis for a file that cannot be checked."""
    from circuitdsl.testing import InvalidHypothesis

    def get(path, *, completeness: bool | None = None, minimality: bool | None = None):
        p = Path(path)
        if not p.is_absolute():
            p = Path(request.config.rootpath) / p
        r = shared_check(request.config, p, completeness=completeness, minimality=minimality)
        if isinstance(r, InvalidHypothesis):
            raise r
        if isinstance(r, CheckCrashed):
            raise RuntimeError(r.rendered)
        return r

    return get


class CircuitFailure(Exception):
    """A failed expect: its message is the whole explanation (no traceback is shown)."""


class CheckCrashed:
    """The outcome of a check that raised something other than a diagnostic (a bug)."""

    def __init__(self, rendered: str):
        self.rendered = rendered


def _internal(e: BaseException, doing: str) -> str:
    import traceback

    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-30))
    return (f"internal error while {doing} this file ({type(e).__name__}: {e}); this is a bug in circuitdsl, "
            f"please report it with the traceback below\n{tb}")  # fmt: skip


class ExpectItem(pytest.Item):
    def __init__(self, *, expect, **kw):
        super().__init__(**kw)
        self.expect = expect

    def runtest(self) -> None:
        from circuitdsl.testing import InvalidHypothesis, explain

        assert isinstance(self.parent, CircuitFile)  # (CircuitFile.collect makes the expect items)
        result = self.parent.run_check()
        if isinstance(result, InvalidHypothesis):
            raise CircuitFailure(f"the hypothesis could not be checked:\n{result.rendered}")
        if isinstance(result, CheckCrashed):
            raise CircuitFailure(result.rendered)
        x = self.expect
        if x is None:
            return
        got = next(
            (
                e
                for e in result.expects
                if e.score == x.score
                and e.op == x.op.value
                and e.threshold == x.threshold
                and (x.span is None or e.line in (None, x.span.line))
            ),
            None,
        )
        if got is None:  # pragma: no cover - the engine evaluates every expect of the file
            raise CircuitFailure(f"the check returned no result for `expect {x}`")
        if not got.passed:
            raise CircuitFailure(
                f"expect {x} failed"
                + (f" (line {x.span.line})" if x.span else "")
                + "\n"
                + explain(result, score=x.score, op=x.op.value, threshold=x.threshold, reason=got.reason)
            )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CircuitFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        line = self.expect.span.line - 1 if self.expect is not None and self.expect.span else 0
        # the domain heads failure reports; it must not be a suffix of the node id, or pytest's -v
        # output would rewrite its dots (`0.9`) as `::`
        return self.path, line, f"{self.path.name}: expect {self.name}"


class CompileErrorItem(pytest.Item):
    """A `.circuit` file with language errors: one failing item showing the diagnostics."""

    def __init__(self, *, rendered: str, internal: bool = False, **kw):
        super().__init__(**kw)
        self.rendered = rendered
        self.internal = internal

    def runtest(self) -> None:
        raise CircuitFailure(self.rendered)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CircuitFailure):
            if self.internal:
                return f"{self.path} could not be compiled: {self.rendered}"
            return f"{self.path} has language errors:\n{self.rendered}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"{self.path.name}: language errors"
