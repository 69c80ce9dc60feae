"""`circuitdsl tokens DATASET --model M`: how a dataset tokenizes, row by row -- each token with its
index, the named positions (and the token each one lands on), the scored positions with their answer
and wrong answer. DATASET is a JSONL file (rows with `text`, span markers included, or `tokens`) or a
registered generator; the rows are read exactly as every other command reads them, so a span that
does not fall on token boundaries is the same E430 at file:line:col.

    circuitdsl tokens data/succ.jsonl --model smollm2-135m [--rows 3] [--json-out tokens.json]

Exit: 0 shown, 2 a usage, dataset or model error.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run", "describe"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("dataset", metavar="DATASET", help="a JSONL file or a registered generator")
    p.add_argument("--model", default="smollm2-135m", help="whose tokenizer (default smollm2-135m)")
    p.add_argument("--rows", type=int, default=5, metavar="N", help="rows shown (default 5; 0: all)")
    p.add_argument("--n", type=int, default=None, help="generator: examples to make (default 32)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="extra generator argument (JSON value)"
    )
    p.add_argument("--json-out", metavar="PATH", default=None, help="write every row's tokens and positions as JSON")
    return p


def describe(e, tokenizer) -> dict[str, Any]:
    """One example as a person reads it: tokens, named positions, scored positions with answers."""
    from circuitdsl.datasets.source import show_token

    def tok(t: int) -> str:
        return show_token(tokenizer, t)

    scored = []
    for k, p in enumerate(e.scored_positions):
        item = {"index": p, "token": tok(e.tokens[p]), "answer": [tok(t) for t in e.answer_set(k)] if e.answers else []}
        if e.wrongs:
            item["wrong"] = [tok(t) for t in e.wrong_set(k)]
        scored.append(item)
    return {
        "id": e.id,
        "line": e.origin.line if e.origin is not None else None,
        "text": e.text,
        "tokens": [tok(t) for t in e.tokens],
        "positions": {name: [{"index": i, "token": tok(e.tokens[i])} for i in idx] for name, idx in e.positions},
        "scored": scored,
    }


def _tokenizer_only(model: str):
    """(tokenizer, {vocab_size, n_ctx}) without loading the weights (seconds, not a minute); (None, None) when
    the model's tokenizer cannot be had alone (the caller then loads the model)."""
    import json as _json
    from pathlib import Path

    from circuitdsl.models.shapes import TINY_DIR

    try:
        if model == "tiny":
            cfg = _json.loads((TINY_DIR / "config.json").read_text(encoding="utf-8"))
            return None, {"vocab_size": int(cfg["d_vocab"]), "n_ctx": int(cfg["n_ctx"])}
        if model == "smollm2-135m":
            from circuitdsl.models import smollm2

            d = Path(smollm2.ensure_hf_dir())
        else:
            d = Path(model)
        if not (d / "tokenizer.json").is_file() and not (d / "tokenizer_config.json").is_file():
            return None, None
        cfg = _json.loads((d / "config.json").read_text(encoding="utf-8"))
        from transformers import AutoTokenizer

        from circuitdsl.backends.base import TokenizerAdapter

        n_ctx = next((int(cfg[k]) for k in ("n_positions", "max_position_embeddings", "n_ctx") if k in cfg), None)
        return TokenizerAdapter(AutoTokenizer.from_pretrained(str(d))), {
            "vocab_size": cfg.get("vocab_size"),
            "n_ctx": n_ctx,
        }
    except Exception:  # anything unusual: the full load says what is wrong, with its diagnostics
        return None, None


def run(args) -> int:
    from circuitdsl.cli.patch import _parse_args_kv, _Usage, boot, check_dataset_args, model_limits, usage_error
    from circuitdsl.datasets.source import dataset_from_arg
    from circuitdsl.diagnostics import CircuitError, render

    if args.rows < 0 or (args.n is not None and args.n < 1):
        return usage_error("E902", "--rows must be >= 0 and --n >= 1")
    from circuitdsl.cli.outputs import Output, refused

    if refused([Output("--json-out", args.json_out)], [args.dataset]):
        return int(ExitCode.USAGE)
    try:
        gen_args = _parse_args_kv(args.arg)
        check_dataset_args([args.dataset], args.n, args.seed, gen_args)
        tok, limits = _tokenizer_only(args.model)
        if limits is None:  # not a model whose tokenizer loads alone: load it whole
            model = boot(args.model, "cpu")
            tok, limits = model.tokenizer, model_limits(model)
        ds = dataset_from_arg(args.dataset, tok, n=args.n, seed=args.seed, args=gen_args, **limits)
    except _Usage as e:
        return usage_error(e.code, e.message, e.hint)
    except CircuitError as e:
        print(render(e.diagnostics, "full"), file=sys.stderr)
        return int(ExitCode.USAGE)
    rows = [describe(e, tok) for e in ds.examples]
    shown = rows if args.rows == 0 else rows[: args.rows]
    for r in shown:
        where = f"line {r['line']}" if r["line"] is not None else f"example {r['id']}"
        print(f"{where}: {len(r['tokens'])} tokens" + (f"  {r['text']!r}" if r["text"] is not None else ""))
        print(
            "  " + "  ".join(f"{i}:{t.rsplit(' (', 1)[0] if tok is not None else t}" for i, t in enumerate(r["tokens"]))
        )
        for name, items in r["positions"].items():
            print(f"  {name:>10} -> " + ", ".join(f"{x['index']} {x['token']}" for x in items))
        for s in r["scored"]:
            wrong = f", wrong {' | '.join(s['wrong'])}" if "wrong" in s else ""
            print(f"  {'scored':>10} -> {s['index']} {s['token']}: answer {' | '.join(s['answer'])}{wrong}")
    if len(shown) < len(rows):
        print(f"({len(rows) - len(shown)} more rows; --rows 0 shows every row)")
    layouts = ds.layouts()
    print(f"{len(rows)} rows, {len(layouts)} layout(s) (token length and named positions)")
    if args.json_out:
        from circuitdsl.atomic import write_bytes

        write_bytes(args.json_out, (json.dumps({"dataset": args.dataset, "model": args.model, "rows": rows}, indent=2) + "\n").encode(),
                    parents=True)  # fmt: skip
        print(f"wrote {args.json_out}", file=sys.stderr)
    return int(ExitCode.OK)
