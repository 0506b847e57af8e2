"""Probe, not part of papertag: does a second pass that asks only for tasks and methods name them better?

Issue 9 suggests focused passes per field that share the cached title + abstract prefix. This probe sends each dev
paper's usual messages with one question for tasks and methods appended to the user message (so the system prompt,
the examples and the abstract are the shared prefix), grammar-constrained to 2-3 tasks and 3-4 methods. Its answer
replaces the tasks and methods of the paper's stored one-pass answer, and the result is finished by papertag's own
grounding and scored against the gold labels; the one-pass answer alone is scored on the same papers.

Usage (from the repository root, after `evals/answers.py restore`; dev only, the test split is not tuned on):
    .venv/bin/python evals/probe_focused_pass.py [--db evals/evals.duckdb] [--limit N]

Reads the stored answers from a copy of the database (a run may hold the write lock) and calls the local model
directly through the openai SDK, one slot. Prints the scores and the probe's seconds and tokens per paper.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import openai

from analyse import VARIANTS, predictions, stored_answers
from papertag.backends import BackendOptions, open_endpoint
from papertag.evals import load_gold, outside_prompt
from papertag.prompts import load_prompt
from papertag.scoring import score

ROOT = Path(__file__).resolve().parents[1]
QUESTION = """

Answer only this, as JSON {"tasks": [...], "methods": [...]}, about the paper above:
- "tasks": 2 or 3 lower-case noun phrases, each a problem this paper works on, in the abstract's own words: its specific problem first, then the broader task it serves.
- "methods": 3 or 4 names written exactly as in the abstract: the method or system this paper introduces, by its name, first; then its key parts or techniques (modules, losses, training or search schemes); then the existing models or techniques it centrally uses. Never datasets, benchmarks, metrics, tools, or generic words such as "deep learning" or "Transformer"."""
PHRASES = {"type": "array", "items": {"type": "string", "maxLength": 80}}
SCHEMA = {"type": "object", "required": ["tasks", "methods"], "properties": {
    "tasks": PHRASES | {"minItems": 2, "maxItems": 3}, "methods": PHRASES | {"minItems": 3, "maxItems": 4}}}
CURRENT_RULES = VARIANTS[-1]  # all of papertag's post-processing, as `papertag eval` applies it


def ask_focused(papers, prompt) -> dict[str, dict]:
    """paper id -> the focused answer, with its seconds and tokens."""
    answers = {}
    with open_endpoint("local", BackendOptions(papers=1)) as endpoint:
        client = openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key)
        for paper in papers:
            messages = prompt.messages(paper.title, paper.abstract)
            messages[-1] = {"role": "user", "content": messages[-1]["content"] + QUESTION}
            started = time.monotonic()
            response = client.chat.completions.create(
                model=endpoint.model, messages=messages, temperature=0, max_tokens=200,
                response_format={"type": "json_schema", "json_schema": {"name": "focused", "schema": SCHEMA}})
            answers[paper.id] = {"tags": json.loads(response.choices[0].message.content),
                                 "seconds": time.monotonic() - started,
                                 "prompt_tokens": response.usage.prompt_tokens,
                                 "completion_tokens": response.usage.completion_tokens}
            print(f"{answers[paper.id]['seconds']:5.1f} s  {paper.title[:70]}", flush=True)
    return answers


def with_focused_fields(one_pass: dict, focused: dict, fields: tuple[str, ...]) -> dict:
    merged = {}
    for paper_id, (raw, domain_scores) in one_pass.items():
        answer = json.loads(raw)
        for name in fields:
            answer[name] = focused[paper_id]["tags"][name]
        merged[paper_id] = (json.dumps(answer), domain_scores)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "evals" / "evals.duckdb")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()

    prompt = load_prompt()
    gold = [item for item in load_gold(ROOT / "evals" / "gold.jsonl") if item.split == "dev"]
    gold, _ = outside_prompt(gold, prompt)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "answers.duckdb"
        shutil.copy(args.db, copy)
        one_pass = stored_answers(copy, "local", prompt.version)
    gold = [item for item in gold if item.paper.id in one_pass][:args.limit]
    one_pass = {item.paper.id: one_pass[item.paper.id] for item in gold}
    focused = ask_focused([item.paper for item in gold], prompt)

    rows = {"one pass": one_pass,
            "focused tasks and methods": with_focused_fields(one_pass, focused, ("tasks", "methods")),
            "focused tasks only": with_focused_fields(one_pass, focused, ("tasks",)),
            "focused methods only": with_focused_fields(one_pass, focused, ("methods",))}
    report = {"prompt": prompt.version, "papers": len(gold),
              "focused_pass": {key: round(sum(a[key] for a in focused.values()) / len(focused), 1)
                               for key in ("seconds", "prompt_tokens", "completion_tokens")}}
    for name, answers in rows.items():
        predicted = predictions(gold, answers, CURRENT_RULES)
        metrics = score([(item.labels, predicted[item.paper.id], item.paper.title) for item in gold])
        report[name] = {field: {k: round(v, 3) for k, v in metrics[field].items() if k in ("precision", "recall", "f1")}
                        for field in ("tasks", "methods")}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
