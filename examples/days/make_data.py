"""Writes succ.jsonl and succ_shift.jsonl: days-of-week successor prompts for SmolLM2 with named spans.

Row i of succ.jsonl is `PREFIX D, D+1, D+2,` -> ` D+3` (wrong answer: ` D+4`); row i of succ_shift.jsonl is
the same prompt shifted by one day (`D+1, D+2, D+3,`), the paired corruption: the model then says D+4.
Named spans: D1, D2, D3 (the three days) and END (the last comma, where the answer is predicted).
Run from the repository root: python examples/days/make_data.py
"""

import json
from pathlib import Path

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PREFIXES = ["Days:", "Week:", "Schedule:", "Order:"]


def row(prefix: str, start: int, answer_from: int) -> dict:
    a, b, c = (DAYS[(start + k) % 7] for k in range(3))
    return {
        "text": f"{prefix} [[D1:{a}]], [[D2:{b}]], [[D3:{c}]][[END:,]]",
        "answer": " " + DAYS[(answer_from + 3) % 7],
        "wrong": " " + DAYS[(answer_from + 4) % 7],
        "start": DAYS[answer_from],
    }


def main() -> None:
    here = Path(__file__).parent
    clean = [row(p, s, s) for p in PREFIXES for s in range(7)]
    shifted = [row(p, s + 1, s) for p in PREFIXES for s in range(7)]  # the clean row's answers, kept for pairing
    for name, rows in (("succ.jsonl", clean), ("succ_shift.jsonl", shifted)):
        (here / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    main()
