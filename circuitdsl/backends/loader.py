"""`load_backend(model_ref)`: the registry name or path of a model -> a loaded backend that passed the
model contract (backends/contract.py), cached per process."""

from __future__ import annotations

import json
from pathlib import Path

from circuitdsl.backends.base import Backend, BackendError
from circuitdsl.ir import ModelRef

__all__ = ["load_backend", "load_path", "clear_cache", "evict", "check_device", "model_diagnostic"]

_CACHE: dict[tuple[str, str], Backend] = {}


def clear_cache() -> None:
    _CACHE.clear()


def evict(path: str | Path, device: str = "cpu") -> None:
    """Drop one model from the per-process cache (its memory is freed once nothing else holds it)."""
    p = str(path)
    _CACHE.pop((p if p in ("tiny", "smollm2-135m") else str(Path(p).resolve()), device), None)


def model_diagnostic(h, e: Exception):
    """The Diagnostic for a hypothesis' model that cannot be used: E510 (cannot be loaded: missing
    files, bad device, unsupported architecture) or E540 (fails the model contract)."""
    from circuitdsl.diagnostics import Diagnostic

    code = getattr(e, "code", "E510")
    msg = str(e) if code == "E540" else f"model `{h.model.name}` cannot be loaded: {e}"
    return Diagnostic(code, msg, h.model.span, hint=getattr(e, "hint", ""))


def _is_native(d: Path) -> bool:
    try:
        cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return str(cfg.get("format", "")).startswith("circuitdsl-native")


def check_device(device: str) -> str:
    """The device string, if torch can place tensors there; else BackendError (E510) saying why."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise BackendError(
            f"unknown device `{device}`: {str(e).splitlines()[0]}", "use cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cpu":
        return device
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(
                f"device `{device}` is not available: this torch build sees no CUDA device", "use `--device cpu`"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendError(
                f"device `{device}` does not exist: {torch.cuda.device_count()} CUDA device(s)", "use cuda:0"
            )
        return device
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise BackendError(f"device `{device}` is not available on this machine", "use `--device cpu`")
        return device
    try:
        torch.zeros(1, device=dev)
    except Exception as e:
        raise BackendError(
            f"device `{device}` cannot be used: {str(e).splitlines()[0]}", "use `--device cpu`"
        ) from None
    return device


def load_backend(model_ref: ModelRef, device: str = "cpu", *, verify: bool = True) -> Backend:
    """The model of a hypothesis, loaded on `device` and verified against the model contract; raises
    BackendError with code E510 (cannot be loaded) or E540 (fails the contract). `verify=False` is for
    the contract's own tests: such a backend cannot be scored (the engine refuses it)."""
    key = (model_ref.resolved, device)
    if key not in _CACHE:
        check_device(device)
        _CACHE[key] = _load(model_ref, device)
    b = _CACHE[key]
    if verify:
        from circuitdsl.backends.contract import require

        require(b)
    return b


def load_path(path: str | Path, device: str = "cpu", *, name: str | None = None, verify: bool = True) -> Backend:
    """load_backend for a registry name or a model directory."""
    p = str(path)
    resolved = p if p in ("tiny", "smollm2-135m") else str(Path(p).resolve())
    return load_backend(ModelRef(name or p, resolved, None), device, verify=verify)  # type: ignore[arg-type]


def _load(ref: ModelRef, device: str) -> Backend:
    from circuitdsl.models.shapes import TINY_DIR

    if ref.resolved == "tiny":
        if not (TINY_DIR / "config.json").is_file():
            raise BackendError("the embedded model `tiny` is missing", "reinstall circuitdsl")
        return _native(TINY_DIR, "tiny", device)
    if ref.resolved == "smollm2-135m":
        from circuitdsl.backends.bridge import load_bridge
        from circuitdsl.models import smollm2

        return load_bridge(Path(smollm2.ensure_hf_dir()), "smollm2-135m", device)
    d = Path(ref.resolved)
    if not (d / "config.json").is_file():
        raise BackendError(f"no config.json in {d}", "a model directory needs a config.json (Hugging Face or native)")
    if _is_native(d):
        return _native(d, ref.name, device)
    from circuitdsl.backends.bridge import load_bridge

    return load_bridge(d, ref.name, device)


def _native(d: Path, name: str, device: str) -> Backend:
    from circuitdsl.backends.native import load_native_backend

    return load_native_backend(d, name, device)
