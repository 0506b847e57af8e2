"""Tagging evals: load a hand-labelled gold file, tag its papers (reusing cached extractions), score, keep the run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .backends import BackendOptions
from .errors import PapertagError
from .ingest import IngestReport, canonical_spec, ingest
from .prompts import Prompt
from .schema import DOMAINS
from .scoring import paper_errors, score
from .sources import Paper, make_paper, read_text
from .store import Store

GOLD_LIST_FIELDS = ("tasks", "methods", "benchmarks")


@dataclass(frozen=True)
class GoldPaper:
    paper: Paper
    split: str
    labels: dict[str, Any]


def load_gold(path: Path) -> list[GoldPaper]:
    """Every problem names its line; a gold file is either wholly valid or refused."""
    text = read_text(path)
    papers: list[GoldPaper] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise PapertagError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise PapertagError(f"{where}: expected a JSON object")
        for key in ("title", "abstract"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise PapertagError(f"{where}: missing '{key}'")
        if record.get("split") not in ("dev", "test"):
            raise PapertagError(f"{where}: 'split' must be 'dev' or 'test', not {record.get('split')!r}")
        labels = record.get("gold")
        if not isinstance(labels, dict):
            raise PapertagError(f"{where}: missing 'gold' object")
        for key in GOLD_LIST_FIELDS:
            if not isinstance(labels.get(key), list) or not all(isinstance(v, str) for v in labels[key]):
                raise PapertagError(f"{where}: gold '{key}' must be a list of strings")
        if not isinstance(labels.get("summary"), str):
            raise PapertagError(f"{where}: gold 'summary' must be a string")
        if labels.get("domain") not in DOMAINS:
            raise PapertagError(f"{where}: unknown domain {labels.get('domain')!r} (use one of: {', '.join(DOMAINS)})")
        paper = make_paper(record["title"], record["abstract"], str(path), record.get("id"))
        papers.append(GoldPaper(paper, record["split"], labels))
    if not papers:
        raise PapertagError(f"{path}: no labelled papers")
    return papers


def run_eval(
    store: Store,
    labelled: list[GoldPaper],
    *,
    gold_path: Path,
    split: str,
    spec: str,
    prompt: Prompt,
    options: BackendOptions | None = None,
    on_start: Callable[[int], None] = lambda total: None,
    on_result: Callable = lambda result: None,
    make_extractor: Callable | None = None,
) -> dict[str, Any]:
    gold = [item for item in labelled if split == "all" or item.split == split]
    if not gold:
        raise PapertagError(f"{gold_path}: no papers in split {split!r}")
    spec = canonical_spec(spec)
    extra = {"make_extractor": make_extractor} if make_extractor else {}
    report: IngestReport = ingest(
        store, [item.paper for item in gold], spec=spec, prompt=prompt, options=options,
        on_start=on_start, on_result=on_result, **extra,
    )
    predictions = store.predictions(spec, prompt)
    metrics = score((item.labels, predictions.get(item.paper.id), item.paper.title) for item in gold)
    run = {
        "model": spec,
        "prompt_version": prompt.version,
        "gold_path": str(gold_path),
        "gold_sha256": hashlib.sha256(gold_path.read_bytes()).hexdigest(),
        "split": split,
        "metrics": metrics,
    }
    run["id"] = store.save_eval_run(run)
    run["errors"] = [
        {"id": item.paper.id, "title": item.paper.title, **({"failed": True} if item.paper.id not in predictions else {}),
         "fields": errors}
        for item in gold
        if (errors := paper_errors(item.labels, predictions.get(item.paper.id)))
    ]
    run["ingest"] = {"extracted": report.extracted, "cached": report.cached, "failed": report.failed,
                     "seconds": round(report.wall_seconds, 1)}
    return run


# The metrics a comparison and the results table show, as (label, path into the metrics dict).
HEADLINE_METRICS = [
    ("benchmark F1", ("benchmarks", "f1")),
    ("benchmark P", ("benchmarks", "precision")),
    ("benchmark R", ("benchmarks", "recall")),
    ("task F1", ("tasks", "f1")),
    ("method F1", ("methods", "f1")),
    ("micro F1", ("micro", "f1")),
    ("domain acc", ("domain", "accuracy")),
    ("ROUGE-1", ("summary", "rouge1")),
    ("ROUGE-L", ("summary", "rougeL")),
    ("within 30 words", ("summary", "within_30_words")),
    ("not title", ("summary", "not_title")),
    ("failed papers", ("failed",)),
]


def metric(metrics: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = metrics
    for key in path:
        value = value[key]
    return value


def compare(runs: list[dict[str, Any]], first: int, second: int) -> dict[str, Any]:
    by_id = {run["id"]: run for run in runs}
    for run_id in (first, second):
        if run_id not in by_id:
            raise PapertagError(f"no eval run {run_id}; 'papertag eval --history' lists them")
    a, b = by_id[first], by_id[second]
    if a["gold_sha256"] != b["gold_sha256"] or a["split"] != b["split"]:
        note = "runs used different gold files or splits; deltas are not like for like"
    else:
        note = ""
    rows = []
    for label, path in HEADLINE_METRICS:
        before, after = metric(a["metrics"], path), metric(b["metrics"], path)
        rows.append({"metric": label, "a": before, "b": after, "delta": round(after - before, 4)})
    return {"a": _describe(a), "b": _describe(b), "note": note, "metrics": rows}


def _describe(run: dict[str, Any]) -> dict[str, Any]:
    return {key: run[key] for key in ("id", "model", "prompt_version", "split", "created_at")}
