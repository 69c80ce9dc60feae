"""`circuitdsl measure`: the behaviour itself, before any hypothesis -- the model's accuracy, logit
difference, probability and margin on a dataset (and on its paired corruption), per example and in
aggregate.

    circuitdsl measure --model smollm2-135m --dataset data/succ.jsonl [--corrupt data/succ_shift.jsonl] \\
        [--n N] [--show 10] [--json-out measure.json]

The metrics are the engine's own (circuitdsl.engine.metrics, SEMANTICS.md section 4), each averaged
over an example's scored positions: accuracy (the answer is the argmax), logit_diff (answer minus
wrong answer; needs `wrong`), prob (of the answer), prob_diff, margin (answer minus the largest other
logit), logprob. The corrupted rows are scored with their clean rows' answers (as `ablate ... by
paired` and `patch` score them): how far the corruption moves the behaviour. A metric a dataset
cannot give (no wrong answers; answer sets for a one-token metric) is reported as such, not guessed.
The tables go to stdout, diagnostics to stderr. Exit: 0 measured, 2 a usage, dataset or model error.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run", "measure", "METRICS"]

METRICS = ("accuracy", "logit_diff", "prob", "prob_diff", "margin", "logprob")


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument(
        "--model", default="smollm2-135m", help="registry name or Hugging Face directory (default smollm2-135m)"
    )
    p.add_argument("--dataset", required=True, help="a registered generator or a JSONL file")
    p.add_argument("--corrupt", default=None, help="its paired corruption (a generator or a JSONL file), optional")
    p.add_argument(
        "--n", type=int, default=None, help="examples (default: 32 from a generator, every row of a JSONL file)"
    )
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="extra generator argument (JSON value)"
    )
    p.add_argument(
        "--show", type=int, default=10, metavar="N", help="examples in the per-example table (default 10; 0: none)"
    )
    p.add_argument(
        "--json-out", metavar="PATH", default=None, help="write every number (aggregate and per example) as JSON"
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="rows per forward pass (default 32); results do not depend on it"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def _scored_logits(model, examples, batch_size: int) -> list:
    """Each example's logits at its scored positions ([S, V] float64 on the CPU), one batch per layout."""
    import torch

    out: list = [None] * len(examples)
    by_len: dict[int, list[int]] = {}
    for i, e in enumerate(examples):
        by_len.setdefault(len(e.tokens), []).append(i)
    with torch.inference_mode():
        for rows in by_len.values():
            for k in range(0, len(rows), batch_size):
                chunk = rows[k : k + batch_size]
                toks = torch.tensor([examples[i].tokens for i in chunk], dtype=torch.long, device=model.device)
                logits = model.run(toks)[0]
                for j, i in enumerate(chunk):
                    out[i] = logits[j, list(examples[i].scored_positions)].detach().double().cpu()
    return out


def _usable(kind, examples, d_vocab_out) -> str | None:
    """None when the metric can be computed on these examples, else why not."""
    from circuitdsl.diagnostics import CircuitError
    from circuitdsl.engine.metrics import check_metric

    try:
        check_metric(kind, examples, d_vocab_out=d_vocab_out)
    except CircuitError as e:
        return e.diagnostics[0].message
    return None


def measure(model, clean, corrupt=None, *, batch_size: int = 32) -> dict[str, Any]:
    """Every metric of METRICS per example on `clean` (and on `corrupt`, scored with the clean answers);
    returns {"metrics": {name: {"clean": [..], "corrupt": [..] | None} | {"unavailable": why}}, "top": [...]}."""
    from circuitdsl.engine.metrics import metric_values
    from circuitdsl.ir import MetricKind

    d_out = getattr(model, "d_vocab_out", None)
    lc = _scored_logits(model, clean, batch_size)
    lx = _scored_logits(model, corrupt, batch_size) if corrupt is not None else None
    metrics: dict[str, Any] = {}
    for name in METRICS:
        kind = MetricKind(name)
        why = _usable(kind, clean, d_out)
        if why:
            metrics[name] = {"unavailable": why}
            continue
        vc = metric_values(kind, lc, clean, lc)
        vx = metric_values(kind, lx, clean, lc) if lx is not None else None
        metrics[name] = {"clean": [float(v) for v in vc], "corrupt": None if vx is None else [float(v) for v in vx]}
    top_c = [int(x[-1].argmax()) for x in lc]  # the prediction at the last scored position
    top_x = [int(x[-1].argmax()) for x in lx] if lx is not None else None
    return {"metrics": metrics, "top": top_c, "top_corrupt": top_x}


def _agg(values: list[float]) -> dict[str, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "se": sd / math.sqrt(n) if n > 1 else 0.0, "min": min(values), "max": max(values)}


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if v != 0 else "0"


def run(args) -> int:
    from circuitdsl.cli.patch import _parse_args_kv, _Usage, boot, check_dataset_args, model_limits, usage_error
    from circuitdsl.datasets.source import dataset_from_arg, paired_from_args, show_token
    from circuitdsl.diagnostics import CircuitError, render

    if args.n is not None and args.n < 1:
        return usage_error("E902", f"--n must be a positive integer, not {args.n}")
    if args.show < 0 or args.batch_size < 1:
        return usage_error("E902", "--show must be >= 0 and --batch-size >= 1")
    from circuitdsl.cli.outputs import Output, refused

    if refused([Output("--json-out", args.json_out)], [args.dataset, args.corrupt]):
        return int(ExitCode.USAGE)
    try:
        import torch

        from circuitdsl.cli.common import device_diagnostic

        bad = device_diagnostic(args.device)
        if bad is not None:
            raise _Usage(bad.code, bad.message, bad.hint)
        torch.set_num_threads(max(1, args.threads))
        gen_args = _parse_args_kv(args.arg)
        specs = [args.dataset] + ([args.corrupt] if args.corrupt else [])
        check_dataset_args(specs, args.n, args.seed, gen_args)
        model = boot(args.model, args.device)
        lim = model_limits(model)
        if args.corrupt:
            clean_ds, corrupt_ds = paired_from_args(args.dataset, args.corrupt, model.tokenizer, n=args.n, seed=args.seed,
                                                    args=gen_args, **lim)  # fmt: skip
        else:
            clean_ds = dataset_from_arg(args.dataset, model.tokenizer, n=args.n, seed=args.seed, args=gen_args, **lim)
            corrupt_ds = None
        from circuitdsl.engine.data import validate

        for ds in (clean_ds, corrupt_ds):
            if ds is not None:
                validate(ds, lim["n_ctx"], lim["vocab_size"], vocab_out=getattr(model, "d_vocab_out", None))
    except _Usage as e:
        return usage_error(e.code, e.message, e.hint)
    except CircuitError as e:
        print(render(e.diagnostics, "full"), file=sys.stderr)
        return int(ExitCode.USAGE)
    clean = list(clean_ds.examples)
    corrupt = list(corrupt_ds.examples) if corrupt_ds is not None else None
    m = measure(model, clean, corrupt, batch_size=args.batch_size)
    tok = model.tokenizer

    def show(t: int) -> str:
        return show_token(tok, t)

    doc: dict[str, Any] = {
        "schema": "circuitdsl-measure/1",
        "model": args.model,
        "dataset": args.dataset,
        "corrupt": args.corrupt,
        "n": len(clean),
        "aggregate": {},
        "unavailable": {},
        "examples": [],
    }
    for name, v in m["metrics"].items():
        if "unavailable" in v:
            doc["unavailable"][name] = v["unavailable"]
            continue
        doc["aggregate"][name] = {"clean": _agg(v["clean"]), "corrupt": _agg(v["corrupt"]) if v["corrupt"] else None}
    for i, ex in enumerate(clean):
        row: dict[str, Any] = {
            "id": ex.id,
            "text": ex.text if ex.text is not None else None,
            "tokens": list(ex.tokens),
            "answer": [show(a) for a in ex.answers],
            "wrong": [show(w) for w in ex.wrongs],
            "predicted": show(m["top"][i]),
            "clean": {k: v["clean"][i] for k, v in m["metrics"].items() if "clean" in v},
        }
        if corrupt is not None:
            row["corrupt_text"] = corrupt[i].text
            row["predicted_corrupt"] = show(m["top_corrupt"][i])
            row["corrupt"] = {k: v["corrupt"][i] for k, v in m["metrics"].items() if v.get("corrupt")}
        if ex.origin is not None:
            row["line"] = ex.origin.line
        doc["examples"].append(row)
    _print(doc, args.show)
    if args.json_out:
        from circuitdsl.atomic import write_bytes

        write_bytes(args.json_out, (json.dumps(doc, indent=2) + "\n").encode(), parents=True)
        print(f"wrote {args.json_out}", file=sys.stderr)
    return int(ExitCode.OK)


def _print(doc: dict, show: int) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(file=sys.stdout, width=120, highlight=False)
    has_x = doc["corrupt"] is not None
    t = Table(title=f"{doc['model']} on {doc['dataset']} (n={doc['n']})"
              + (f"; corrupted: {doc['corrupt']}, scored with the clean answers" if has_x else ""))  # fmt: skip
    t.add_column("metric")
    t.add_column("clean: mean ± se", justify="right")
    t.add_column("min .. max", justify="right")
    if has_x:
        t.add_column("corrupted: mean ± se", justify="right")
        t.add_column("clean - corrupted", justify="right")
    for name, a in doc["aggregate"].items():
        c = a["clean"]
        cells = [name, f"{_fmt(c['mean'])} ± {_fmt(c['se'])}", f"{_fmt(c['min'])} .. {_fmt(c['max'])}"]
        if has_x:
            x = a["corrupt"]
            cells += [f"{_fmt(x['mean'])} ± {_fmt(x['se'])}", _fmt(c["mean"] - x["mean"])]
        t.add_row(*cells)
    con.print(t)
    for name, why in doc["unavailable"].items():
        con.print(f"{name}: not measured: {why}")
    if show and doc["examples"]:
        w = Table(title=f"per example (first {min(show, doc['n'])} of {doc['n']}; all of them with --json-out)")
        key = "logit_diff" if "logit_diff" in doc["aggregate"] else "margin"
        for col in ("line" if doc["examples"][0].get("line") else "id", "text", "answer", "predicted", key, "prob"):
            w.add_column(col)
        if has_x:
            w.add_column("corrupted: predicted")

        def bare(t: str) -> str:  # "' Thursday' (14963)" -> "' Thursday'": the table is for reading
            return t.rsplit(" (", 1)[0] if t.endswith(")") and " (" in t else t

        for r in doc["examples"][:show]:
            text = r["text"] if r["text"] is not None else " ".join(map(str, r["tokens"]))
            cells = [str(r["line"]) if r.get("line") else r["id"][:16], text[-40:], ",".join(bare(a) for a in r["answer"]),
                     bare(r["predicted"]), _fmt(r["clean"].get(key)), _fmt(r["clean"].get("prob"))]  # fmt: skip
            if has_x:
                cells.append(bare(r["predicted_corrupt"]))
            w.add_row(*cells)
        con.print(w)
