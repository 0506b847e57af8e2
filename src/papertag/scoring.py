"""Scoring predicted tags against hand labels. Pure functions: no I/O, no model.

Matching rules (documented in evals/README.md):
- benchmarks: equal after folding case, punctuation and spacing, a trailing plural and a trailing
  "benchmark"/"dataset" word; "Name (ACR)" matches "Name" or "ACR".
- tasks, methods: the same, or word-set Jaccard overlap >= 0.5 (stop words and plural "s" removed).
- Every predicted item matches at most one gold item and vice versa (greedy, in order).
- Precision, recall and F1 are micro-averaged: summed over papers, then divided.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Callable, Iterable

from .grounding import name_variants
from .schema import MAX_SUMMARY_WORDS
from .text import squash_whitespace, tag_key

FUZZY_JACCARD = 0.5
STOP_WORDS = {"a", "an", "the", "of", "for", "and", "in", "on", "to", "with", "via", "by", "from", "based", "using"}
GENERIC_TAIL = {"benchmark", "benchmarks", "dataset", "datasets"}


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def benchmark_keys(name: str) -> set[str]:
    keys = set()
    for variant in name_variants(name):
        words = re.findall(r"\w+", variant.casefold())
        while len(words) > 1 and words[-1] in GENERIC_TAIL:
            words.pop()
        key = _singular(tag_key(" ".join(words)))
        if key:
            keys.add(key)
    return keys


@cache
def _words(phrase: str) -> frozenset[str]:
    return frozenset(_singular(w) for w in re.findall(r"[a-z0-9]+", phrase.casefold()) if w not in STOP_WORDS)


def same_benchmark(predicted: str, gold: str) -> bool:
    return bool(benchmark_keys(predicted) & benchmark_keys(gold))


def same_phrase(predicted: str, gold: str) -> bool:
    """Tasks and methods: the same name, or mostly the same words."""
    if benchmark_keys(predicted) & benchmark_keys(gold):
        return True
    a, b = _words(predicted), _words(gold)
    return bool(a and b) and len(a & b) / len(a | b) >= FUZZY_JACCARD


def matched_and_missed(predicted: list[str], gold: list[str], same) -> tuple[list[str], list[str]]:
    """(false positives, misses) for one paper. Greedy, in order: each item matches at most one on the other side."""
    unmatched_gold = list(gold)
    false_positives = []
    for item in predicted:
        for index, candidate in enumerate(unmatched_gold):
            if same(item, candidate):
                del unmatched_gold[index]
                break
        else:
            false_positives.append(item)
    return false_positives, unmatched_gold


def count_matches(predicted: list[str], gold: list[str], same: Callable[[str, str], bool]) -> int:
    false_positives, _ = matched_and_missed(predicted, gold, same)
    return len(predicted) - len(false_positives)


@dataclass
class PRF:
    true_positives: int = 0
    predicted: int = 0
    gold: int = 0

    def add(self, predicted: list[str], gold: list[str], same) -> None:
        self.true_positives += count_matches(predicted, gold, same)
        self.predicted += len(predicted)
        self.gold += len(gold)

    @property
    def precision(self) -> float:
        if self.predicted == 0:
            return 1.0 if self.gold == 0 else 0.0
        return self.true_positives / self.predicted

    @property
    def recall(self) -> float:
        if self.gold == 0:
            return 1.0 if self.predicted == 0 else 0.0
        return self.true_positives / self.gold

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, float]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "true_positives": self.true_positives, "predicted": self.predicted, "gold": self.gold}


LIST_FIELDS: dict[str, Callable[[str, str], bool]] = {
    "benchmarks": same_benchmark,
    "tasks": same_phrase,
    "methods": same_phrase,
}


@cache
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def summary_scores(predicted: str, gold: str, title: str) -> dict[str, float]:
    scores = _rouge().score(gold, predicted)
    return {
        "rouge1": scores["rouge1"].fmeasure,
        "rougeL": scores["rougeL"].fmeasure,
        "within_30_words": float(len(predicted.split()) <= MAX_SUMMARY_WORDS),
        "not_title": float(tag_key(predicted) != tag_key(title)),
    }


def tldr_scores(predicted: str, targets: list[str]) -> dict[str, float]:
    """SciTLDR's rule: ROUGE F1 (stemmed) against every reference TLDR, keeping the one with the best ROUGE-1."""
    if not predicted or not targets:
        return {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    best = max((_rouge().score(target, predicted) for target in targets), key=lambda s: s["rouge1"].fmeasure)
    return {name: best[name].fmeasure for name in ("rouge1", "rouge2", "rougeL")}


def score_tldrs(pairs: Iterable[tuple[list[str], str | None]]) -> dict:
    """pairs: (reference TLDRs, predicted summary or None for a failed paper). Averages over papers, failed ones
    scoring 0, as the SciTLDR paper averages over every test paper."""
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    papers = failed = words = 0
    for targets, predicted in pairs:
        papers += 1
        if predicted is None:
            failed += 1
            predicted = ""
        words += len(predicted.split())
        for name, value in tldr_scores(squash_whitespace(predicted), targets).items():
            totals[name] += value
    average = {name: round(total / papers, 4) if papers else 0.0 for name, total in totals.items()}
    return {"scitldr": average | {"words": round(words / papers, 1) if papers else 0.0}, "papers": papers, "failed": failed}


EMPTY_PREDICTION = {"summary": "", "tasks": [], "methods": [], "benchmarks": [], "domain": None}


def score(pairs: Iterable[tuple[dict, dict | None, str]]) -> dict:
    """pairs: (gold labels, predicted labels or None for a failed paper, title). Returns every metric."""
    fields = {name: PRF() for name in LIST_FIELDS}
    overall = PRF()
    domain_hits = papers = failed = 0
    summary_totals = {"rouge1": 0.0, "rougeL": 0.0, "within_30_words": 0.0, "not_title": 0.0}
    for gold, predicted, title in pairs:
        papers += 1
        if predicted is None:
            failed += 1
            predicted = EMPTY_PREDICTION  # a failed paper scores as an empty answer, never skipped
        for name, same in LIST_FIELDS.items():
            fields[name].add(predicted[name], gold[name], same)
            overall.add(predicted[name], gold[name], same)
        domain_hits += predicted["domain"] == gold["domain"]
        if predicted["summary"]:
            for key, value in summary_scores(squash_whitespace(predicted["summary"]), gold["summary"], title).items():
                summary_totals[key] += value
    metrics = {name: prf.as_dict() for name, prf in fields.items()}
    metrics["micro"] = overall.as_dict()
    metrics["domain"] = {"accuracy": round(domain_hits / papers, 4) if papers else 0.0}
    metrics["summary"] = {key: round(total / papers, 4) if papers else 0.0 for key, total in summary_totals.items()}
    metrics["papers"] = papers
    metrics["failed"] = failed
    return metrics


def paper_errors(gold: dict, predicted: dict | None) -> dict[str, dict[str, list[str]]]:
    """Per field: the predicted items that matched nothing and the gold items nobody found."""
    predicted = predicted or EMPTY_PREDICTION
    errors = {}
    for name, same in LIST_FIELDS.items():
        false_positives, misses = matched_and_missed(predicted[name], gold[name], same)
        if false_positives or misses:
            errors[name] = {"false_positives": false_positives, "misses": misses}
    if predicted["domain"] != gold["domain"]:
        errors["domain"] = {"false_positives": [str(predicted["domain"])], "misses": [gold["domain"]]}
    return errors
