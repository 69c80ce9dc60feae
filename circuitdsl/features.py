"""User feature functions (`depends on module.path:function`), resolved from the file that names them.

SEMANTICS.md section 6: a feature function is the one in the file the hypothesis names, whatever else
the process loaded. So a module is never looked up by its bare name in `sys.modules` (two folders that
each hold a `feats.py` would then share whichever was imported first). Resolution, for
`a.b.c:fn` written in a `.circuit` file in folder D:

1. a file next to the `.circuit`: `D/a/b/c.py`, else `D/a/b/c/__init__.py`. It is loaded from that path
   (importlib.util.spec_from_file_location) under a module name unique to the path
   (`circuitdsl_feature_<hash>_c`), with D on sys.path while it executes (so that it can import sibling
   helpers; those are ordinary imports);
2. otherwise an importable module (an installed package, or anything on sys.path): `import a.b.c`.

The compiler resolves a reference to its *origin* (the absolute path of the file, or "" for an
imported module) and records it in the Feature (`args == (ref, origin)`); the engine loads the function
from that origin, so both use the same file. Loaded files are cached per (path, mtime, size) for the
life of the process. No torch here.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["FeatureFunctionError", "locate", "load_function", "resolve"]


class FeatureFunctionError(Exception):
    """A `module:function` reference that cannot be used; the message says why."""


_LOADED: dict[tuple[str, int, int], ModuleType] = {}


def locate(ref: str, directory: str | Path | None) -> str:
    """The origin of `ref`: the absolute path of the module file next to the `.circuit` (in `directory`),
    or "" when the module is to be imported by name. Raises FeatureFunctionError for a malformed ref."""
    module, sep, fn = ref.partition(":")
    parts = module.split(".")
    if not sep or not fn or not all(p.isidentifier() for p in parts) or not fn.isidentifier():
        raise FeatureFunctionError(f"`{ref}` is not of the form `module.path:function`")
    if directory is None:
        return ""
    base = Path(directory).joinpath(*parts)
    for cand in (base.with_name(base.name + ".py"), base / "__init__.py"):
        try:
            if cand.is_file():
                return str(cand.resolve())
        except OSError:
            continue
    return ""


def _module_from_file(path: str) -> ModuleType:
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise FeatureFunctionError(f"cannot read `{path}`: {e.strerror or e}") from None
    key = (str(p), st.st_mtime_ns, st.st_size)
    if key in _LOADED:
        return _LOADED[key]
    stem = p.parent.name if p.name == "__init__.py" else p.stem
    name = f"circuitdsl_feature_{hashlib.sha256(str(p).encode()).hexdigest()[:16]}_{stem}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise FeatureFunctionError(f"`{path}` cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(p.parent if p.name != "__init__.py" else p.parent.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # dataclasses and pickling inside the module look themselves up here
    try:
        spec.loader.exec_module(module)
    except BaseException as e:
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise FeatureFunctionError(f"cannot import `{p.name}` ({path}): {type(e).__name__}: {e}") from None
    finally:
        if added:
            try:
                sys.path.remove(folder)
            except ValueError:
                pass
    _LOADED[key] = module
    return module


def _module_by_name(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise FeatureFunctionError(f"cannot import module `{module}`: {type(e).__name__}: {e}") from None


def load_function(ref: str, origin: str) -> Callable[..., Any]:
    """The function `ref` names, from `origin` (a module file path, or "" to import the module by name)."""
    module_name, _, fn_name = ref.partition(":")
    module = _module_from_file(origin) if origin else _module_by_name(module_name)
    fn = getattr(module, fn_name, None)
    if fn is None:
        names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None)))
        close = difflib.get_close_matches(fn_name, names, n=1, cutoff=0.6)
        dm = f"; did you mean `{close[0]}`?" if close else ""
        raise FeatureFunctionError(f"module `{module_name}` has no function `{fn_name}`{dm}")
    if not callable(fn):
        raise FeatureFunctionError(f"`{ref}` is not callable")
    return fn


def resolve(ref: str, directory: str | Path | None) -> tuple[Callable[..., Any], str]:
    """(function, origin) for `ref` written in a `.circuit` file in `directory`."""
    origin = locate(ref, directory)
    return load_function(ref, origin), origin
