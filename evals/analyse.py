"""Offline analysis of stored answers: post-processing ablations, domain confusion matrix, error categories.

No model is called. The raw answers a model gave under one prompt version are read back from an eval database and
finished again under each variant of papertag's post-processing, then scored against the gold file.

Usage (from the repository root, after an eval run has stored the answers):
    .venv/bin/python evals/analyse.py --prompt-version V [--db evals/evals.duckdb] [--model local] [--split dev]

With --lean it prints instead the model's mean probability per domain label over the split's stored answers (no label
is read): the MODEL_LEAN that src/papertag/domains.py divides out, to be measured again for every new prompt version.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import duckdb

from papertag import domains, grounding
from papertag.evals import load_gold, outside_prompt
from papertag.prompts import load_prompt
from papertag.extract import finish
from papertag.schema import DOMAINS, PaperTags
from papertag.scoring import matched_and_missed, paper_errors, same_benchmark, score
from papertag.text import tag_key

ROOT = Path(__file__).resolve().parents[1]
GENERIC_METHODS = {"transformer", "transformers", "finetuning", "deeplearning", "neuralnetwork", "neuralnetworks", "llm",
                   "llms", "largelanguagemodels", "largelanguagemodel", "machinelearning", "deepneuralnetworks"}


def stored_answers(db: Path, model: str, prompt_version: str) -> dict[str, tuple[str, dict | None]]:
    """paper id -> the newest raw answer this model gave under this prompt version, with its domain probabilities."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            """SELECT paper_id, raw_response, domain_scores FROM extractions
               WHERE model = ? AND prompt_version = ? AND raw_response IS NOT NULL
               QUALIFY row_number() OVER (PARTITION BY paper_id ORDER BY id DESC) = 1""",
            [model, prompt_version],
        ).fetchall()
    finally:
        con.close()
    return {paper_id: (raw, json.loads(scores) if scores else None) for paper_id, raw, scores in rows}


@contextmanager
def variant(name: str):
    """Switch parts of the post-processing off, to measure what each part adds."""
    saved = (grounding.strip_task_words, grounding.looks_like_benchmark, grounding.GENERIC_TASKS, domains.MIN_SCORE)
    saved_v6 = (grounding.names_a_dataset, grounding.defined_acronyms, grounding.specific_tasks,
                grounding.related_tasks)
    saved_v9 = (grounding.written_in_lower_case, grounding.GAN_NAME, grounding.strip_model_tail)
    try:
        if VARIANTS.index(name) < VARIANTS.index(GROUNDING_V9):
            grounding.written_in_lower_case = lambda name, abstract: False
            grounding.GAN_NAME = re.compile(r"(?!)")
            grounding.strip_model_tail = lambda name: name
        if VARIANTS.index(name) < VARIANTS.index(GROUNDING_V6):
            grounding.names_a_dataset = lambda method: False
            grounding.defined_acronyms = lambda text: {}
            grounding.specific_tasks = lambda tasks, dropped: tasks
            grounding.related_tasks = lambda tasks, source_text, dropped: tasks
        if name in ("validated only", "grounding v2 rules"):
            grounding.strip_task_words = lambda value: value
            grounding.GENERIC_TASKS = set()
            grounding.looks_like_benchmark = lambda value: (
                any(c.isupper() or c.isdigit() for c in value)
                and not grounding.MODEL_NAME.match(tag_key(value))
                and not grounding.NOT_A_DATASET_TAIL.search(value.strip()))
        if name != "+ domain cues (current)":
            domains.MIN_SCORE = 10**6
        yield
    finally:
        grounding.strip_task_words, grounding.looks_like_benchmark, grounding.GENERIC_TASKS, domains.MIN_SCORE = saved
        (grounding.names_a_dataset, grounding.defined_acronyms, grounding.specific_tasks,
         grounding.related_tasks) = saved_v6
        grounding.written_in_lower_case, grounding.GAN_NAME, grounding.strip_model_tail = saved_v9


def predictions(gold, answers, name: str) -> dict[str, dict | None]:
    result = {}
    with variant(name):
        for item in gold:
            raw, domain_scores = answers.get(item.paper.id, (None, None))
            if raw is None:
                result[item.paper.id] = None
                continue
            try:
                tags = PaperTags.model_validate_json(raw, context={"title": item.paper.title})
            except ValueError:
                tags = PaperTags.model_construct(**json.loads(raw))  # an answer to an older, looser schema
            if name != "validated only":
                calibrated = VARIANTS.index(name) >= VARIANTS.index("+ domain calibrated by the model's probabilities")
                tags, _ = finish(tags, item.paper.title, item.paper.abstract, domain_scores if calibrated else None)
            result[item.paper.id] = tags.model_dump()
    return result


GROUNDING_V6 = ("+ datasets named as methods, acronyms in both forms, one-word tasks (grounding v6), "
                "tasks sharing no word with the paper (v8)")
GROUNDING_V9 = ("+ benchmarks the abstract writes only in lower case, GAN names, a model name after a benchmark "
                "(grounding v9)")
VARIANTS = ("validated only", "grounding v2 rules", "+ benchmark shape rules, generic tasks", GROUNDING_V6, GROUNDING_V9,
            "+ domain calibrated by the model's probabilities", "+ domain cues (current)")


def error_categories(gold, predicted) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for item in gold:
        labels, guess = item.labels, predicted.get(item.paper.id)
        if guess is None:
            counts["failed paper"] += 1
            continue
        fps, misses = matched_and_missed(guess["benchmarks"], labels["benchmarks"], same_benchmark)
        for fp in fps:
            if any(tag_key(g) in tag_key(fp) or tag_key(fp) in tag_key(g) for g in labels["benchmarks"]):
                counts["benchmark: partial name (extra or missing words)"] += 1
            elif not labels["benchmarks"]:
                counts["benchmark: listed where the gold has none"] += 1
            else:
                counts["benchmark: not a gold benchmark"] += 1
        counts["benchmark: missed"] += len(misses)
        errors = paper_errors(labels, guess)
        for field in ("tasks", "methods"):
            found = errors.get(field, {})
            for fp in found.get("false_positives", []):
                kind = "generic word" if field == "methods" and tag_key(fp) in GENERIC_METHODS else "not in gold"
                counts[f"{field[:-1]}: {kind}"] += 1
            counts[f"{field[:-1]}: missed"] += len(found.get("misses", []))
        if guess["domain"] != labels["domain"]:
            counts["domain: wrong"] += 1
    return counts


def confusion(gold, predicted) -> list[str]:
    matrix = collections.Counter((item.labels["domain"], (predicted.get(item.paper.id) or {}).get("domain") or "failed")
                                 for item in gold)
    short = {d: d.replace("reinforcement-learning", "rl").replace("information-retrieval", "ir")
             .replace("software-engineering", "se").replace("security-privacy", "sec").replace("computer-vision", "cv")
             .replace("speech-audio", "speech").replace("graph-learning", "graph").replace("bio-medical", "bio")
             .replace("ml-systems", "sys").replace("ml-theory", "theory").replace("multimodal", "mm").replace("robotics", "robot")
             for d in DOMAINS}
    lines = ["| gold \\ predicted | " + " | ".join(short[d] for d in DOMAINS) + " | right |",
             "|---|" + "---|" * (len(DOMAINS) + 1)]
    for row in DOMAINS:
        total = sum(matrix[(row, col)] for col in list(DOMAINS) + ["failed"])
        if not total:
            continue
        cells = [str(matrix[(row, col)] or "·") for col in DOMAINS]
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {matrix[(row, row)]}/{total} |")
    return lines


def model_lean(gold, answers) -> dict[str, float]:
    """Mean probability per domain label over the papers' stored answers; the gold labels are not looked at."""
    scored = [answers[item.paper.id][1] for item in gold if item.paper.id in answers and answers[item.paper.id][1]]
    if not scored:
        raise SystemExit("no stored domain probabilities for these papers")
    return {label: round(sum(s.get(label, 0.0) for s in scored) / len(scored), 3) for label in DOMAINS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "evals" / "evals.duckdb")
    parser.add_argument("--gold", type=Path, default=ROOT / "evals" / "gold.jsonl")
    parser.add_argument("--model", default="local")
    parser.add_argument("--prompt-version", required=True)
    parser.add_argument("--split", default="dev", choices=("dev", "test", "all"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lean", action="store_true", help="print the model's mean domain probabilities and stop")
    args = parser.parse_args()
    gold = [item for item in load_gold(args.gold) if args.split == "all" or item.split == args.split]
    answers = stored_answers(args.db, args.model, args.prompt_version)
    if args.lean:
        print(json.dumps(model_lean(gold, answers)))
        return
    gold, in_prompt = outside_prompt(gold, load_prompt())  # scored as `papertag eval` scores: examples left out
    if in_prompt:
        print(f"note: {len(in_prompt)} papers are few-shot examples in the prompt and are not scored", file=sys.stderr)
    missing = sum(item.paper.id not in answers for item in gold)
    if missing:
        print(f"note: {missing} of {len(gold)} papers have no stored answer and score as empty", file=sys.stderr)
    report = {"split": args.split, "papers": len(gold), "prompt_version": args.prompt_version, "variants": {}}
    for name in VARIANTS:
        predicted = predictions(gold, answers, name)
        metrics = score((item.labels, predicted[item.paper.id], item.paper.title) for item in gold)
        report["variants"][name] = metrics
    current = predictions(gold, answers, VARIANTS[-1])
    report["errors"] = dict(error_categories(gold, current).most_common())
    report["confusion"] = confusion(gold, current)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"| post-processing ({args.split}, {len(gold)} papers, prompt `{args.prompt_version}`) | bench P | bench R | bench F1 | task F1 | method F1 | domain acc | ROUGE-L |")
    print("|---|---|---|---|---|---|---|---|")
    for name, m in report["variants"].items():
        print(f"| {name} | {m['benchmarks']['precision']:.3f} | {m['benchmarks']['recall']:.3f} | {m['benchmarks']['f1']:.3f} | "
              f"{m['tasks']['f1']:.3f} | {m['methods']['f1']:.3f} | {m['domain']['accuracy']:.3f} | {m['summary']['rougeL']:.3f} |")
    print()
    print("| error category | count |\n|---|---|")
    for name, count in report["errors"].items():
        print(f"| {name} | {count} |")
    print()
    print("\n".join(report["confusion"]))


if __name__ == "__main__":
    main()
