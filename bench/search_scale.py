"""Keyword search at scale: index build time (Store.refresh_search_index, the step at the end of an ingest) and
query latency (Reader.search, and Reader.browse as the web list page calls it) on synthetic papers.

    PYTHONPATH=src python bench/search_scale.py [--papers 20000 100000]

Papers come from bench/_synth.py (realistic lengths, Zipf-distributed tags), loaded through papertag's bulk write path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _synth import load_chunk, make_chunk, sentence_pool, vocabularies  # noqa: E402

from papertag.queries import Reader  # noqa: E402
from papertag.store import Store  # noqa: E402

QUERIES = ["language model agents", "graph neural network", "diffusion image generation", "reinforcement policy reward",
           "quantization", "retrieval question answering", "robust", "federated privacy"]
CHUNK = 20_000


def p50_ms(call, repeats: int = 3) -> float:
    times = []
    for query in QUERIES:
        for _ in range(repeats):
            started = time.perf_counter()
            call(query)
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def run(papers: int, folder: Path) -> dict[str, float]:
    db = folder / f"search-{papers}.duckdb"
    rng = np.random.default_rng(7)
    sentences, vocab = sentence_pool(rng), vocabularies(rng)
    with Store(db) as store:
        for start in range(0, papers, CHUNK):
            chunk = make_chunk(rng, start, min(CHUNK, papers - start), sentences, vocab, model="bench", prompt_version="p",
                               schema_version="s", now=datetime(2026, 1, 1))
            load_chunk(store, chunk)
        started = time.perf_counter()
        store.refresh_search_index()
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        store.refresh_search_index()  # nothing changed: the comparison with the records finds no paper
        unchanged_s = time.perf_counter() - started
    with Reader(db) as reader:
        search_ms = p50_ms(lambda text: reader.search(text))
        filtered_ms = p50_ms(lambda text: reader.search(text, domain="nlp"))
        browse_ms = p50_ms(lambda text: reader.browse(text))
    return {"papers": papers, "index build s": build_s, "unchanged check s": unchanged_s,
            "search p50 ms": search_ms, "search + domain p50 ms": filtered_ms, "browse (web list) p50 ms": browse_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, nargs="+", default=[20_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, Path(tmp)) for n in args.papers]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:,}" if c == "papers" else f"{row[c]:.2f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
