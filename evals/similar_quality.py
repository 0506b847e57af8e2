"""How related are the papers 'papertag similar' finds? Scored on the 128 hand-labelled gold papers.

For each gold paper, its K nearest neighbours among the other 127 under each method, and the share of those
neighbours that
  (a) have the same gold domain;
  (b) share at least one gold task or benchmark: by tag key (papertag.text.tag_key: case, punctuation and spacing
      folded), and by the eval scorer's own matching (papertag.scoring: same_phrase for tasks, same_benchmark for
      benchmarks).
A "random" row gives what neighbours drawn at random would score (the exact expectation, not a sample).

Usage (from the repository root): .venv/bin/python evals/similar_quality.py [--gold evals/gold.jsonl] [--k 5] [--json]
It prints its section of evals/RESULTS.md as Markdown.
No model call and no database: the embedder runs here, on title + abstract exactly as ingest embeds them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np

from papertag.embed import Embedder, paper_text
from papertag.scoring import same_benchmark, same_phrase
from papertag.text import tag_key

ROOT = Path(__file__).resolve().parents[1]
# A short list of English function words for the tf-idf baseline; idf already damps the rest.
STOP_WORDS = set("""a an the of for and or in on to with via by from as at is are was were be been this that these
those we our it its their which can not than then also such into over under using based new show shows paper
propose proposed approach method methods results""".split())


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tfidf_vectors(texts: list[str]) -> np.ndarray:
    """Sublinear tf × smoothed idf over lower-cased word tokens, L2-normalised (scikit-learn's defaults plus
    sublinear_tf, written out so the eval needs no extra dependency)."""
    docs = [Counter(w for w in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.casefold()) if w not in STOP_WORDS)
            for text in texts]
    vocabulary = {word: i for i, word in enumerate(sorted(set().union(*docs)))}
    document_frequency = np.zeros(len(vocabulary))
    for doc in docs:
        for word in doc:
            document_frequency[vocabulary[word]] += 1
    idf = np.log((1 + len(docs)) / (1 + document_frequency)) + 1
    matrix = np.zeros((len(docs), len(vocabulary)), dtype=np.float32)
    for row, doc in enumerate(docs):
        for word, count in doc.items():
            matrix[row, vocabulary[word]] = (1 + math.log(count)) * idf[vocabulary[word]]
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def nearest(similarity: np.ndarray, k: int) -> list[list[int]]:
    """The k most similar other papers of each paper; ties broken by position, so the result is deterministic."""
    scores = similarity.copy()
    np.fill_diagonal(scores, -np.inf)
    return [list(np.argsort(-row, kind="stable")[:k]) for row in scores]


def related_by_key(a: dict, b: dict) -> bool:
    return bool({tag_key(t) for t in a["tasks"]} & {tag_key(t) for t in b["tasks"]}) or \
        bool({tag_key(x) for x in a["benchmarks"]} & {tag_key(x) for x in b["benchmarks"]})


def related_by_scorer(a: dict, b: dict) -> bool:
    return any(same_phrase(x, y) for x in a["tasks"] for y in b["tasks"]) or \
        any(same_benchmark(x, y) for x in a["benchmarks"] for y in b["benchmarks"])


def scores_for(neighbours: list[list[int]], gold: list[dict]) -> dict[str, float]:
    pairs = [(gold[i], gold[j]) for i, row in enumerate(neighbours) for j in row]
    return {
        "same domain": sum(a["domain"] == b["domain"] for a, b in pairs) / len(pairs),
        "shared task/benchmark (tag key)": sum(related_by_key(a, b) for a, b in pairs) / len(pairs),
        "shared task/benchmark (scorer)": sum(related_by_scorer(a, b) for a, b in pairs) / len(pairs),
    }


def random_expectation(gold: list[dict]) -> dict[str, float]:
    """Each neighbour equally likely to be any other paper: the mean over papers of the share of others related."""
    n = len(gold)
    totals = Counter()
    for i, a in enumerate(gold):
        others = [b for j, b in enumerate(gold) if j != i]
        totals["same domain"] += sum(a["domain"] == b["domain"] for b in others) / (n - 1)
        totals["shared task/benchmark (tag key)"] += sum(related_by_key(a, b) for b in others) / (n - 1)
        totals["shared task/benchmark (scorer)"] += sum(related_by_scorer(a, b) for b in others) / (n - 1)
    return {name: total / n for name, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, default=ROOT / "evals" / "gold.jsonl")
    parser.add_argument("--k", type=int, default=5, help="neighbours per paper")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    papers = load(args.gold)
    gold = [paper["gold"] for paper in papers]
    texts = [paper_text(paper["title"], paper["abstract"]) for paper in papers]

    started = time.perf_counter()
    embedder = Embedder()
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    minilm = embedder.embed(texts)
    embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tfidf = tfidf_vectors(texts)
    tfidf_seconds = time.perf_counter() - started

    minilm_similarity, tfidf_similarity = minilm @ minilm.T, tfidf @ tfidf.T
    rows = {
        "MiniLM-L6-v2 int8 ONNX (papertag similar)": scores_for(nearest(minilm_similarity, args.k), gold),
        "tf-idf (words, sublinear tf)": scores_for(nearest(tfidf_similarity, args.k), gold),
        "mean of both cosines": scores_for(nearest((minilm_similarity + tfidf_similarity) / 2, args.k), gold),
        "random neighbours (expected)": random_expectation(gold),
    }
    timing = {"papers": len(texts), "embedder_load_seconds": round(load_seconds, 2),
              "minilm_seconds_per_paper": round(embed_seconds / len(texts), 4),
              "tfidf_seconds_total": round(tfidf_seconds, 3)}
    if args.json:
        print(json.dumps({"k": args.k, "methods": rows, "timing": timing}, indent=2))
        return
    print(markdown(rows, timing, args.k))


def markdown(rows: dict[str, dict[str, float]], timing: dict, k: int) -> str:
    """The section of evals/RESULTS.md (evals/make_results.py includes it)."""
    metrics = list(next(iter(rows.values())))
    lines = [
        f"## Similar papers (`papertag similar`): neighbours among the {timing['papers']} gold papers", "",
        "`.venv/bin/python evals/similar_quality.py` (no model call, no database). For each gold paper, its "
        f"{k} nearest other gold papers by each method; the share of those neighbours with the same gold domain, and "
        "with at least one gold task or benchmark in common, matched by tag key (case, punctuation and spacing "
        "folded) or by the eval scorer's rules (word-set Jaccard ≥ 0.5 for tasks, benchmark name variants). "
        "Gold tasks are specific phrases that few papers share, so the second measure is low for every method; "
        f"the random row is its floor. Each share is over {timing['papers']} × {k} = {timing['papers'] * k} "
        "neighbours, so a difference under about 0.05 is within noise.", "",
        f"| method ({k} neighbours per paper) | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.3f}" for m in metrics) + " |")
    lines += ["", f"Embedding speed in this run: {timing['minilm_seconds_per_paper']:.3f} s per paper on "
              f"{os.cpu_count()} cores (model load {timing['embedder_load_seconds']:.2f} s, load average "
              f"{os.getloadavg()[0]:.1f}); tf-idf {timing['tfidf_seconds_total']:.2f} s for all {timing['papers']} papers."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
