"""Keyword search: what the end-of-ingest index update costs on a large database (search_index.update), for
batches of new papers and for re-tagged ones.

    .venv/bin/python bench/search_update.py --db /tmp/scale.duckdb [--batches 3] [--papers 64]

Each batch writes `--papers` synthetic papers with their extractions (bench/_synth.py, as an ingest's batch), then
times Store.refresh_search_index, the step an ingest runs once at its end. The papers stay in the database.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _synth import load_chunk, make_chunk, sentence_pool, vocabularies  # noqa: E402

from papertag.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--papers", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(int(time.time()))
    sentences, vocab = sentence_pool(rng), vocabularies(rng)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with Store(args.db) as store:
        store.refresh_search_index()  # start from an index that is up to date
        total = store.con.execute("SELECT count(*) FROM papers").fetchone()[0]
        for batch in range(args.batches):
            # New papers past the stored ids, then as many stored ids written again (a new text and extraction).
            for label, start in (("new", 10_000_000 + int(rng.integers(1_000_000_000))),
                                 ("rewritten", int(rng.integers(total - args.papers)))):
                chunk = make_chunk(rng, start, args.papers, sentences, vocab, model="openai:bench-update",
                                   prompt_version="p", schema_version="s", now=now)
                load_chunk(store, chunk)
                began = time.perf_counter()
                changed = store.refresh_search_index()
                print(f"batch {batch + 1}, {args.papers} {label} papers: index update {time.perf_counter() - began:.2f} s "
                      f"(changed: {changed})", flush=True)


if __name__ == "__main__":
    main()
