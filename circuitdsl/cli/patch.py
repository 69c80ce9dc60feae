"""`circuitdsl patch`: activation / path patching sweeps with a ranked table and a heatmap.

    circuitdsl patch --model smollm2-135m --dataset ioi --corrupt ioi_abc --n 32 \\
        [--positions END] [--heads | --mlps] [--path-to a21.3.q] -o heatmap.png [--json out.json]

The clean dataset and its corruption are built with the same arguments (n, seed, --arg k=v), so
row i of the corruption is paired with row i of the clean dataset. The ranked table goes to
stdout; progress and diagnostics to stderr. Outputs are written atomically (temp + os.replace).
Exit: 0 done, 2 usage, dataset or model error.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitdsl.cli.exitcodes import ExitCode

__all__ = [
    "add_parser",
    "run",
    "SweepSpec",
    "load_inputs",
    "run_sweep",
    "write_atomic",
    "usage_error",
    "heatmap_png",
    "print_table",
]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    add_common_arguments(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--heads", action="store_true", help="patch each attention head's output (default)")
    what.add_argument("--mlps", action="store_true", help="patch each MLP's output")
    what.add_argument(
        "--path-to",
        metavar="RECEIVERS",
        default=None,
        help="path patching into receiver ports, e.g. a21.3.q or a21.3.q,a22.1.q (a21.3 means q, k and v)",
    )
    p.add_argument("-o", "--output", metavar="PNG", default=None, help="write the heatmap image here")
    p.add_argument("--json", metavar="PATH", default=None, help="write the numbers as JSON here")
    p.add_argument("--top", type=int, default=15, help="rows of the ranked table (default 15)")
    p.add_argument("--layers", default=None, help="patch only these layers (path patching: these senders), e.g. 12-29")
    return p


def add_common_arguments(p) -> None:
    p.add_argument(
        "--model", default="smollm2-135m", help="registry name or Hugging Face directory (default smollm2-135m)"
    )
    p.add_argument(
        "--dataset", default="ioi", help="clean dataset: a registered generator or a JSONL file (default ioi)"
    )
    p.add_argument(
        "--corrupt",
        default="ioi_abc",
        help="paired corruption: a generator or a JSONL file whose row i corrupts row i of --dataset (default ioi_abc)",
    )
    p.add_argument(
        "--n", type=int, default=None, help="examples (default: 32 from a generator, every row of a JSONL file)"
    )
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra generator argument for both datasets (JSON value)",
    )
    p.add_argument(
        "--positions",
        default=None,
        metavar="NAMES",
        help="patch only at these named positions (comma-separated), e.g. END",
    )
    p.add_argument(
        "--max-rows", type=int, default=96, help="rows per forward pass (default 96); results do not depend on it"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")


# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepSpec:
    kind: str  # heads | mlps | path
    positions: tuple[str, ...]
    receivers: str | None = None


class _Usage(Exception):
    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def usage_error(code: str, message: str, hint: str = "") -> int:
    from circuitdsl.diagnostics import Diagnostic, render

    print(render([Diagnostic(code, message, hint=hint)]), file=sys.stderr)
    return int(ExitCode.USAGE)


def _parse_args_kv(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, val = item.partition("=")
        if not eq or not key.isidentifier():
            raise _Usage("E901", f"bad --arg `{item}`", "write KEY=VALUE, e.g. --arg templates=3")
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def load_inputs(args) -> tuple[Any, Any, Any]:
    """(model, clean examples, corrupted examples); raises _Usage on bad options, CircuitError (with
    file:line:col diagnostics) on a bad dataset. Datasets come from `circuitdsl.datasets.source`:
    registered generators and JSONL files alike."""
    import torch

    from circuitdsl.cli.common import device_diagnostic
    from circuitdsl.datasets.source import paired_from_args

    torch.set_num_threads(max(1, args.threads))
    bad = device_diagnostic(args.device)
    if bad is not None:
        raise _Usage(bad.code, bad.message, bad.hint)
    if args.n is not None and args.n < 1:
        raise _Usage("E902", f"--n must be a positive integer, not {args.n}")
    if args.max_rows < 1:
        raise _Usage("E902", f"--max-rows must be a positive integer, not {args.max_rows}")
    gen_args = _parse_args_kv(args.arg)
    check_dataset_args([args.dataset, args.corrupt], args.n, args.seed, gen_args)  # before the model loads
    model = boot(args.model, args.device)
    clean, corrupt = paired_from_args(args.dataset, args.corrupt, model.tokenizer, n=args.n, seed=args.seed, args=gen_args,
                                      **model_limits(model))  # fmt: skip
    return model, clean.examples, corrupt.examples


def check_dataset_args(specs, n, seed, gen_args) -> None:
    """The cheap checks of dataset arguments (unknown generator, bad argument, missing file, bad JSON)
    before a model is loaded; raises CircuitError. Building the datasets needs the model's tokenizer."""
    from circuitdsl.datasets import registry
    from circuitdsl.datasets.jsonl import read_schema
    from circuitdsl.datasets.source import dataset_from_arg, is_file_arg

    for i, spec in enumerate(specs):
        option = "--dataset" if i == 0 else "--corrupt"
        if is_file_arg(spec):
            if not Path(spec).is_file() or gen_args:
                dataset_from_arg(spec, None, n=n, seed=seed, args=gen_args, option=option)  # raises E404 / E403
            read_schema(Path(spec))
        elif (info := registry.get(spec)) is None or set(gen_args) - set(dict(info.params)):
            dataset_from_arg(spec, None, n=n, seed=seed, args=gen_args, option=option)  # raises E402 / E403


def boot(model_name: str, device: str):
    """The patching backend for a model, or _Usage (E501) when it cannot be loaded."""
    from circuitdsl import patching
    from circuitdsl.models.shapes import ShapeError

    try:
        return patching.boot_model(model_name, device=device)
    except ShapeError as e:
        raise _Usage("E501", str(e), e.hint) from None
    except patching.PatchingError as e:
        raise _Usage(getattr(e, "code", "E501"), str(e), getattr(e, "hint", "")) from None


def model_limits(model) -> dict[str, Any]:
    """vocab_size / n_ctx for reading a JSONL file for this model (rows checked at their line)."""
    return {
        "vocab_size": getattr(getattr(model, "shape", None), "vocab_size", None),
        "n_ctx": getattr(model, "n_ctx", None),
    }


def parse_layers(text: str | None, n_layers: int) -> list[int] | None:
    """`12-29` or `20,21,23` -> layer list (None: every layer)."""
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            a, dash, b = part.strip().partition("-")
            out.extend(range(int(a), int(b) + 1) if dash else [int(a)])
    except ValueError:
        raise _Usage("E902", f"bad --layers `{text}`", "write a range like 12-29 or a list like 20,21,23") from None
    bad = [L for L in out if not 0 <= L < n_layers]
    if bad or not out:
        raise _Usage("E902", f"--layers `{text}`: the model has layers 0..{n_layers - 1}")
    return sorted(set(out))


def run_sweep(model, clean, corrupt, spec: SweepSpec, *, dataset: str, corruption: str, max_rows: int, layers=None):
    from circuitdsl import patching

    with _progress(sys.stderr.isatty()) as prog:
        task = prog.add_task(f"{spec.kind} sweep", total=None) if prog else None

        def progress(done: int, total: int) -> None:
            if prog is not None:
                prog.update(task, completed=done, total=total)

        kw = dict(
            positions=spec.positions or None, dataset=dataset, corruption=corruption, max_rows=max_rows,
            progress=progress, layers=layers,
        )  # fmt: skip
        try:
            if spec.kind == "heads":
                return patching.head_sweep(model, clean, corrupt, **kw)
            if spec.kind == "mlps":
                return patching.mlp_sweep(model, clean, corrupt, **kw)
            receivers = patching.parse_receiver(spec.receivers or "", model.shape.n_layers, model.shape.n_heads)
            return patching.path_sweep(model, clean, corrupt, receivers, **kw)
        except patching.PatchingError as e:
            raise _Usage("E903", str(e)) from None


def _progress(enabled: bool):
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    )  # fmt: skip


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file beside it and os.replace."""
    from circuitdsl.atomic import write_bytes

    write_bytes(path, data, parents=True)


def print_table(result, top: int, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    what = {"heads": "head outputs", "mlps": "MLP outputs", "path": f"paths into {', '.join(result.receivers)}"}[
        result.kind
    ]
    where = f" at {', '.join(result.positions)}" if result.positions else ""
    t = Table(
        title=f"Patching {what}{where}: {result.dataset} <- {result.corruption} (n={result.n})",
        caption=f"logit diff: clean {result.clean:.3f}, corrupted {result.corrupt:.3f}; "
        "effect = (patched - clean) / (corrupted - clean)",
    )
    t.add_column("rank", justify="right")
    t.add_column("node")
    t.add_column("patched logit diff", justify="right")
    t.add_column("delta", justify="right")
    t.add_column("effect", justify="right")
    for i, (node, patched, effect) in enumerate(result.ranked()[:top], 1):
        style = "red" if effect > 0 else "blue"
        t.add_row(str(i), node, f"{patched:.3f}", f"{patched - result.clean:+.3f}", f"[{style}]{effect:+.3f}[/{style}]")
    Console(file=file or sys.stdout, width=120).print(t)


def heatmap_png(result, dpi: int = 130) -> bytes:
    """Layers x heads heatmap of the normalised effects (MLPs: one column; path sweeps add an MLP
    column), diverging colormap centred on 0, labelled axes, title naming metric and corruption."""
    import io
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    eff = np.array(result.effects, dtype=float)  # [layers, heads or 1]
    xlabels = [str(j) for j in range(eff.shape[1])] if result.kind != "mlps" else ["MLP"]
    if result.kind == "path" and result.mlp_patched:
        eff = np.concatenate([eff, np.array([[result.effect(v)] for v in result.mlp_patched])], axis=1)
        xlabels.append("MLP")
    finite = eff[np.isfinite(eff)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax if vmax > 0 and not math.isnan(vmax) else 1.0
    fig_w = 2.2 + 0.55 * eff.shape[1]
    fig, ax = plt.subplots(figsize=(max(fig_w, 4.0), 1.2 + 0.24 * eff.shape[0]))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")  # grey: not swept
    im = ax.imshow(np.ma.masked_invalid(eff), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto", origin="upper")
    ax.set_xticks(range(len(xlabels)), xlabels)
    ax.set_yticks(range(eff.shape[0]), [str(L) for L in range(eff.shape[0])])
    ax.set_xlabel("head" if result.kind != "mlps" else "")
    ax.set_ylabel("layer")
    what = {"heads": "head outputs", "mlps": "MLP outputs", "path": "path patching into " + ", ".join(result.receivers)}
    where = f" at {','.join(result.positions)}" if result.positions else ""
    ax.set_title(
        f"{what[result.kind]}{where}\n{result.metric}: {result.dataset} <- {result.corruption} "
        f"(n={result.n}; clean {result.clean:.2f}, corrupt {result.corrupt:.2f})",
        fontsize=9,
    )
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("effect = (patched - clean) / (corrupt - clean)", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def run(args) -> int:
    spec = SweepSpec(
        "path" if args.path_to else ("mlps" if args.mlps else "heads"),
        tuple(p.strip() for p in (args.positions or "").split(",") if p.strip()),
        args.path_to,
    )
    if args.top < 0:
        return usage_error("E902", f"--top must be >= 0, not {args.top}")
    from circuitdsl.cli.outputs import Output, refused
    from circuitdsl.diagnostics import CircuitError, render

    if refused([Output("-o", args.output), Output("--json", args.json)], []):
        return int(ExitCode.USAGE)
    try:
        if spec.kind == "path":
            from circuitdsl.patching import PatchingError, parse_receiver

            try:
                parse_receiver(spec.receivers or "")
            except PatchingError as e:
                raise _Usage("E903", str(e)) from None
        model, clean, corrupt = load_inputs(args)
        layers = parse_layers(args.layers, model.shape.n_layers)
        if spec.kind == "mlps" and not model.shape.has_mlp:
            raise _Usage("E903", f"model `{args.model}` has no MLPs to patch", "patch its heads (the default) instead")
        result = run_sweep(
            model, clean, corrupt, spec, dataset=args.dataset, corruption=args.corrupt, max_rows=args.max_rows,
            layers=layers,
        )  # fmt: skip
    except _Usage as e:
        return usage_error(e.code, e.message, e.hint)
    except CircuitError as e:
        print(render(e.diagnostics, "full"), file=sys.stderr)
        return int(ExitCode.USAGE)
    print_table(result, args.top)
    if args.output:
        write_atomic(args.output, heatmap_png(result))
        print(f"wrote {args.output}", file=sys.stderr)
    if args.json:
        write_atomic(args.json, (json.dumps(result.to_json(), indent=2) + "\n").encode())
        print(f"wrote {args.json}", file=sys.stderr)
    print(f"{result.kind} sweep: {result.seconds:.1f} s", file=sys.stderr)
    return int(ExitCode.OK)
