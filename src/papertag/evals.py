"""Tagging evals: load a hand-labelled gold file, tag its papers (reusing cached extractions), score, keep the run."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .backends import BackendOptions
from .category_domains import category_domain
from .errors import InputError, NotFound
from .ingest import IngestReport, canonical_spec, ingest
from .prompts import Prompt
from .schema import DOMAINS
from .scoring import paper_errors, score, score_tldrs
from .sources import Paper, make_paper, read_text
from .text import tag_key
from .queries import Reader
from .store import Store

GOLD_LIST_FIELDS = ("tasks", "methods", "benchmarks")


@dataclass(frozen=True)
class GoldPaper:
    paper: Paper
    split: str
    labels: dict[str, Any]


def json_records(path: Path) -> Iterator[tuple[str, dict]]:
    """Each non-blank line of a JSONL file as ("<path>: line N", object); a line that is not an object is refused."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object")
        yield where, record


def load_gold(path: Path) -> list[GoldPaper]:
    """Every problem names its line; a gold file is either wholly valid or refused."""
    papers: list[GoldPaper] = []
    for where, record in json_records(path):
        for key in ("title", "abstract"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise InputError(f"{where}: missing '{key}'")
        if record.get("split") not in ("dev", "test"):
            raise InputError(f"{where}: 'split' must be 'dev' or 'test', not {record.get('split')!r}")
        labels = record.get("gold")
        if not isinstance(labels, dict):
            raise InputError(f"{where}: missing 'gold' object")
        for key in GOLD_LIST_FIELDS:
            if not isinstance(labels.get(key), list) or not all(isinstance(v, str) for v in labels[key]):
                raise InputError(f"{where}: gold '{key}' must be a list of strings")
        if not isinstance(labels.get("summary"), str):
            raise InputError(f"{where}: gold 'summary' must be a string")
        if labels.get("domain") not in DOMAINS:
            raise InputError(f"{where}: unknown domain {labels.get('domain')!r} (use one of: {', '.join(DOMAINS)})")
        categories = record.get("categories") or []
        if isinstance(categories, str):
            categories = categories.split()  # as arXiv writes them: "cs.CL cs.LG"
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise InputError(f"{where}: 'categories' must be a list of arXiv categories")
        paper = make_paper(record["title"], record["abstract"], str(path), record.get("id"), categories=categories)
        papers.append(GoldPaper(paper, record["split"], labels))
    if not papers:
        raise InputError(f"{path}: no labelled papers")
    return papers


@dataclass(frozen=True)
class TldrPaper:
    paper: Paper
    targets: tuple[str, ...]


def _first_record(text: str) -> Any:
    for line in text.splitlines():
        if line.strip():
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def is_scitldr(path: Path) -> bool:
    """SciTLDR files carry the abstract as `source` sentences and the references as `target`; gold files do not."""
    record = _first_record(read_text(path))
    return isinstance(record, dict) and "source" in record and "target" in record and "gold" not in record


def load_scitldr(path: Path, limit: int | None = None) -> list[TldrPaper]:
    """The first `limit` papers of a SciTLDR-format file (a fixed subset for tuning), or all of them."""
    papers: list[TldrPaper] = []
    for where, record in json_records(path):
        if limit is not None and len(papers) >= limit:
            break
        source, targets = record.get("source"), record.get("target")
        if not isinstance(source, list) or not all(isinstance(s, str) for s in source) or not "".join(source).strip():
            raise InputError(f"{where}: 'source' must be a non-empty list of sentences")
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            raise InputError(f"{where}: 'target' must be a non-empty list of reference summaries")
        if not isinstance(record.get("title"), str) or not record["title"].strip():
            raise InputError(f"{where}: missing 'title'")
        paper = make_paper(record["title"], " ".join(source), str(path), record.get("paper_id"))
        papers.append(TldrPaper(paper, tuple(targets)))
    if not papers:
        raise InputError(f"{path}: no papers")
    return papers


def _tag_and_score(
    store: Store,
    papers: list[Paper],
    scorer: Callable[[dict[str, dict[str, Any]]], dict[str, Any]],
    *,
    gold_path: Path,
    split: str,
    spec: str,
    prompt: Prompt,
    options: BackendOptions | None,
    on_start: Callable[[int], None],
    on_result: Callable,
    make_extractor: Callable | None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Tag the papers (reusing cached extractions), score the predictions, store the run."""
    spec = canonical_spec(spec)
    extra = {"make_extractor": make_extractor} if make_extractor else {}
    # vectors=False: scoring needs no embeddings for 'papertag similar', so an eval run does not pay for them.
    report: IngestReport = ingest(store, papers, spec=spec, prompt=prompt, options=options,
                                  on_start=on_start, on_result=on_result, vectors=False, **extra)
    store.release()  # let go of the file for the reader; save_eval_run opens it again
    with Reader(store.path) as reader:
        predictions = reader.predictions(spec, prompt)
    machines = {paper_id: prediction.pop("answered_on") for paper_id, prediction in predictions.items()}
    run = {
        "model": spec,
        "prompt_version": prompt.version,
        "gold_path": str(gold_path),
        "gold_sha256": hashlib.sha256(gold_path.read_bytes()).hexdigest(),
        "split": split,
        # Which machines the scored answers came from: greedy answers differ between CPUs (machine.py).
        "metrics": scorer(predictions) | {"answered_on": answered_on(machines, papers)},
    }
    run["id"] = store.save_eval_run(run)
    run["ingest"] = {"extracted": report.extracted, "cached": report.cached, "failed": report.failed,
                     "seconds": round(report.wall_seconds, 1)}
    return run, predictions


def answered_on(machines: dict[str, str | None], papers: list[Paper]) -> dict[str, int]:
    """How many of these papers' answers came from each machine, most first; answers stored before machines were
    recorded count as "not recorded"."""
    counts = Counter(machines[paper.id] or "not recorded" for paper in papers if paper.id in machines)
    return dict(counts.most_common())


def answered_on_text(metrics: dict[str, Any]) -> str:
    """"AMD EPYC, 2 threads (60)": the machines of a run's answers, for tables."""
    if "answered_on" not in metrics:  # a run stored before machines were recorded
        return "not recorded"
    return "; ".join(f"{machine} ({count})" for machine, count in metrics["answered_on"].items())


def run_summary_eval(
    store: Store,
    papers: list[TldrPaper],
    *,
    gold_path: Path,
    spec: str,
    prompt: Prompt,
    options: BackendOptions | None = None,
    on_start: Callable[[int], None] = lambda total: None,
    on_result: Callable = lambda result: None,
    make_extractor: Callable | None = None,
) -> dict[str, Any]:
    """Summaries scored as the SciTLDR paper scores them: ROUGE-1/2/L F1 against the best-ROUGE-1 reference."""
    run, _ = _tag_and_score(
        store, [item.paper for item in papers],
        lambda predictions: score_tldrs(
            (list(item.targets), (predictions.get(item.paper.id) or {}).get("summary")) for item in papers),
        gold_path=gold_path, split=f"scitldr:{len(papers)}",  # the subset is the file's first N papers
        spec=spec, prompt=prompt, options=options, on_start=on_start, on_result=on_result, make_extractor=make_extractor,
    )
    return run


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
    in_split = [item for item in labelled if split == "all" or item.split == split]
    if not in_split:
        raise InputError(f"{gold_path}: no papers in split {split!r}")
    gold, in_prompt = outside_prompt(in_split, prompt)
    if not gold:
        raise InputError(f"{gold_path}: every paper in split {split!r} is a few-shot example in the prompt")
    run, predictions = _tag_and_score(
        store, [item.paper for item in gold],
        lambda predictions: score((item.labels, predictions.get(item.paper.id), item.paper.title) for item in gold)
        | category_agreement(gold, predictions)
        | {"in_prompt": in_prompt},  # stored with the run: runs that scored these papers are told apart
        gold_path=gold_path, split=split, spec=spec, prompt=prompt, options=options,
        on_start=on_start, on_result=on_result, make_extractor=make_extractor,
    )
    run["errors"] = [
        {"id": item.paper.id, "title": item.paper.title, **({"failed": True} if item.paper.id not in predictions else {}),
         "fields": errors}
        for item in gold
        if (errors := paper_errors(item.labels, predictions.get(item.paper.id)))
    ]
    return run


def outside_prompt(gold: list[GoldPaper], prompt: Prompt) -> tuple[list[GoldPaper], list[str]]:
    """The papers that are not few-shot examples in the prompt, and the titles of those that are: the model sees
    an example's answer with every paper, so scoring it would measure copying, not tagging."""
    example_titles = {tag_key(example.get("title", "")) for example in prompt.examples}
    outside, in_prompt = [], []
    for item in gold:
        if tag_key(item.paper.title) in example_titles:
            in_prompt.append(item.paper.title)
        else:
            outside.append(item)
    return outside, in_prompt


def category_agreement(gold: list[GoldPaper], predictions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How often the domain the arXiv categories point to (category_domains.py) agrees with the model's, and with
    the gold label, on the gold papers that have categories with an opinion. Nothing when none has categories."""
    with_categories = [item for item in gold if item.paper.categories]
    opinions = [(category_domain(item.paper.categories), (predictions.get(item.paper.id) or {}).get("domain"),
                 item.labels["domain"]) for item in with_categories]
    opinions = [row for row in opinions if row[0]]
    if not with_categories:
        return {}
    agree_model = sum(by_category == model for by_category, model, _ in opinions)
    agree_gold = sum(by_category == label for by_category, _, label in opinions)
    return {"category_domain": {
        "papers_with_categories": len(with_categories), "with_opinion": len(opinions),
        "agree_with_model": agree_model, "agree_with_gold": agree_gold,
        "model_agreement": round(agree_model / len(opinions), 4) if opinions else None,
        "gold_agreement": round(agree_gold / len(opinions), 4) if opinions else None,
    }}


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
    ("SciTLDR ROUGE-1", ("scitldr", "rouge1")),
    ("SciTLDR ROUGE-2", ("scitldr", "rouge2")),
    ("SciTLDR ROUGE-L", ("scitldr", "rougeL")),
]


# What `papertag eval --history` shows per run: the tag metrics and the SciTLDR ROUGE-1.
HISTORY_METRICS = HEADLINE_METRICS[:7] + [row for row in HEADLINE_METRICS if row[0] == "SciTLDR ROUGE-1"]


def metric(metrics: dict[str, Any], path: tuple[str, ...]) -> float | None:
    """None when a run has no such metric (a SciTLDR run has no tags, a gold run no SciTLDR scores)."""
    value: Any = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def compare(runs: list[dict[str, Any]], first: int, second: int) -> dict[str, Any]:
    by_id = {run["id"]: run for run in runs}
    for run_id in (first, second):
        if run_id not in by_id:
            raise NotFound(f"no eval run {run_id}; 'papertag eval --history' lists them")
    a, b = by_id[first], by_id[second]
    notes = []
    if a["gold_sha256"] != b["gold_sha256"] or a["split"] != b["split"]:
        notes.append("runs used different gold files or splits; deltas are not like for like")
    counts = [run["metrics"].get("papers") for run in (a, b)]
    if counts[0] != counts[1]:  # e.g. a run from before few-shot examples were left out of scoring
        notes.append(f"runs scored different numbers of papers ({counts[0]} against {counts[1]})")
    machines = [set(run["metrics"]["answered_on"]) for run in (a, b) if "answered_on" in run["metrics"]]
    if len(machines) == 2 and machines[0] != machines[1]:  # runs stored before machines were recorded say nothing
        notes.append(f"answers came from different machines ({answered_on_text(a['metrics'])} against "
                     f"{answered_on_text(b['metrics'])}), which alone changes some answers")
    note = "; ".join(notes)
    rows = []
    for label, path in HEADLINE_METRICS:
        before, after = metric(a["metrics"], path), metric(b["metrics"], path)
        if before is None and after is None:
            continue
        delta = None if before is None or after is None else round(after - before, 4)
        rows.append({"metric": label, "a": before, "b": after, "delta": delta})
    return {"a": _describe(a), "b": _describe(b), "note": note, "metrics": rows}


def _describe(run: dict[str, Any]) -> dict[str, Any]:
    return {key: run[key] for key in ("id", "model", "prompt_version", "split", "created_at")}
