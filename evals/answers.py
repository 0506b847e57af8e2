"""The eval answer cache as a text file in git, so a fresh checkout re-scores without asking the model again.

`evals/evals.duckdb` (the eval database) is not in git: it is a binary that every run rewrites. Without its stored
answers a new checkout asks the model again for every gold and SciTLDR paper, about 2.5 hours on 2 cores, and on
another CPU gets some other answers. `evals/answers.jsonl` keeps, per model, prompt version and paper text, the newest
good answer the model gave: the raw JSON, the domain probabilities and the machine that made it.

    .venv/bin/python evals/answers.py export   # evals/evals.duckdb -> evals/answers.jsonl (make_results does this)
    .venv/bin/python evals/answers.py restore  # evals/answers.jsonl -> evals/evals.duckdb (make_results does this)

Restored answers go in as extractions of an unknown schema version, so `papertag eval` re-checks each one under
today's validation and grounding rules, as it does any stored answer, and only asks the model for what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

from papertag.store import Store

ROOT = Path(__file__).resolve().parents[1]
DB = ROOT / "evals" / "evals.duckdb"
ANSWERS = ROOT / "evals" / "answers.jsonl"
RESTORED = "restored from evals/answers.jsonl"  # the schema version restored rows carry: never today's
FIELDS = ("model", "prompt_version", "content_hash", "paper_id", "raw_response", "domain_scores", "answered_on",
          "prompt_tokens", "completion_tokens", "latency_s", "created_at")


def export(db: Path, answers: Path) -> int:
    """Write the newest good answer per model, prompt version and text, sorted so a new run adds lines to the diff.
    The row written is the model's own answer, with what it cost, not a later re-check of it (no tokens): re-checks
    are stored again on every run, and the file should only change when the model answered."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            f"""SELECT {", ".join(FIELDS)} FROM extractions WHERE status = 'ok' AND raw_response IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY model, prompt_version, content_hash
                                           ORDER BY completion_tokens > 0 DESC, id DESC) = 1
                ORDER BY model, prompt_version, content_hash""").fetchall()
    finally:
        con.close()
    with answers.open("w", encoding="utf-8") as out:
        for row in rows:
            record = dict(zip(FIELDS, row))
            record["created_at"] = record["created_at"].isoformat(timespec="seconds")
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return len(rows)


def restore(db: Path, answers: Path) -> int:
    """Add the file's answers that the database lacks; returns how many were added."""
    records = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines() if line.strip()]
    store = Store(db)  # creates or migrates the database, as papertag itself would
    try:
        con = store.con
        have = set(con.execute("SELECT model, prompt_version, content_hash FROM extractions WHERE status = 'ok'"
                               " AND raw_response IS NOT NULL").fetchall())
        missing = [r for r in records if (r["model"], r["prompt_version"], r["content_hash"]) not in have]
        if not missing:
            return 0
        con.executemany(
            """INSERT INTO extractions (paper_id, content_hash, model, prompt_version, status, raw_response,
                   prompt_tokens, completion_tokens, latency_s, truncated, created_at, dropped_tags, schema_version,
                   domain_scores, answered_on)
               VALUES (?, ?, ?, ?, 'ok', ?, ?, ?, ?, false, ?, [], ?, ?, ?)""",
            [[r["paper_id"], r["content_hash"], r["model"], r["prompt_version"], r["raw_response"], r["prompt_tokens"],
              r["completion_tokens"], r["latency_s"], r["created_at"], RESTORED, r["domain_scores"], r["answered_on"]]
             for r in missing])
    finally:
        store.close()
    return len(missing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("export", "restore"))
    parser.add_argument("--db", type=Path, default=DB)
    parser.add_argument("--answers", type=Path, default=ANSWERS)
    args = parser.parse_args()
    source = args.db if args.action == "export" else args.answers
    if not source.exists():
        sys.exit(f"{source}: no such file")
    if args.action == "export":
        print(f"wrote {export(args.db, args.answers)} answers to {args.answers}", file=sys.stderr)
    else:
        print(f"restored {restore(args.db, args.answers)} answers into {args.db}", file=sys.stderr)


if __name__ == "__main__":
    main()
