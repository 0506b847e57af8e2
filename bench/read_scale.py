"""Issue 11, section 6: the four reads at scale — `query --benchmark`, the web list page with facet counts, keyword
search and `similar` — on one synthetic database of 1,000,000 papers / 5,000,000 tags, in process, p50 and p99.

    .venv/bin/python bench/read_scale.py --db /tmp/scale.duckdb [--papers 1000000] [--append]

The database is built once if `--db` does not exist yet (bench/_synth.py papers, extractions and tags through
Store.merge_papers / Store.append, a random unit vector per text through Store.add_vectors, then the end-of-ingest
step papertag runs after every ingest), and reused as it is otherwise, so code changes can be timed on the same
data. Each read is timed in one process with one Reader, as the library and the web server call it.
Targets: query p50 ≤ 50 ms, list page ≤ 200 ms, search ≤ 200 ms, similar ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from papertag.embed import DIMENSIONS, MODEL_NAME
from papertag.prompts import load_prompt
from papertag.queries import Reader
from papertag.store import Store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import append_results, command_line, machine_info  # noqa: E402
from _synth import load_chunk, make_chunk, sentence_pool, vocabularies  # noqa: E402

CHUNK = 250_000
SEARCHES = ["language model agents", "graph neural network", "diffusion image generation", "reinforcement policy reward",
            "quantization", "retrieval question answering", "robust", "federated privacy"]
TARGETS_MS = {"query --benchmark": 50, "list page": 200, "search": 200, "similar": 100}


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, int(round(share * len(sorted_values))) - 1))]


def build(path: Path, papers: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    vocab, sentences = vocabularies(rng), sentence_pool(rng)
    prompt = load_prompt()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    spent = {"papers and tags s": 0.0, "vectors s": 0.0}
    with Store(path) as store:
        for start in range(0, papers, CHUNK):
            chunk = make_chunk(rng, start, min(CHUNK, papers - start), sentences, vocab, model="openai:bench",
                               prompt_version=prompt.version, schema_version=prompt.schema_version, now=now)
            began = time.perf_counter()
            load_chunk(store, chunk)
            spent["papers and tags s"] += time.perf_counter() - began
            vectors = rng.standard_normal((chunk.papers.num_rows, DIMENSIONS), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            began = time.perf_counter()
            store.add_vectors(MODEL_NAME, chunk.papers["content_hash"].to_pylist(), vectors)
            spent["vectors s"] += time.perf_counter() - began
            print(f"  loaded {start + chunk.papers.num_rows:,} papers", file=sys.stderr, flush=True)
        began = time.perf_counter()
        end_of_ingest(store)
        spent["end-of-ingest refresh s"] = time.perf_counter() - began
    return spent


def end_of_ingest(store: Store) -> None:
    """What an ingest runs once at its end (ingest.refresh_search_index), whichever version of papertag this is."""
    if hasattr(store, "refresh_read_tables"):
        store.refresh_read_tables()
    store.refresh_search_index()


def timed(call, arguments: list, repeats: int = 1) -> list[float]:
    times: list[float] = []
    for _ in range(repeats):
        for argument in arguments:
            began = time.perf_counter()
            call(argument)
            times.append((time.perf_counter() - began) * 1000)
    print(f"  {len(times)} calls, p50 {statistics.median(times):.1f} ms", file=sys.stderr, flush=True)
    return sorted(times)


def measure(path: Path, seed: int, queries: int, similar: int) -> dict[str, dict]:
    rng = np.random.default_rng(seed + 1)
    results: dict[str, dict] = {}
    with Reader(path) as reader:
        names = [row["value"] for row in reader.tags("benchmark")]  # most common first
        groups = {"common": names[:20:2], "mid": names[200:400:20], "rare": names[1500:3000:150]}
        plan = [name for members in groups.values() for name in members]
        order = [plan[i % len(plan)] for i in rng.permutation(max(queries, len(plan)))]
        reader.query(benchmark=order[0])  # the first read of a freshly opened file pays for the disk
        results["query --benchmark"] = {"times": timed(lambda name: reader.query(benchmark=name), order),
                                        "what": f"{len(order)} calls over 30 names: 10 common (ranks 1-20), 10 mid (200-400), 10 rare (1500-3000)"}
        pages = [0, 20, 400]
        filters = [{}, {"benchmark": names[0]}, {"benchmark": names[300]}, {"domain": "nlp"},
                   {"domain": "computer-vision", "benchmark": names[5]}]
        list_calls = [(offset, f) for offset in pages for f in filters]
        results["list page"] = {"times": timed(lambda call: reader.browse(offset=call[0], limit=20, facet_limit=10, **call[1]),
                                               list_calls),
                                "what": "browse(): 20 papers, total and 4 facets of 10; no filter, a common and a mid benchmark, a domain, domain and benchmark; pages 1, 2 and 21"}
        results["search"] = {"times": timed(lambda text: reader.search(text), SEARCHES, repeats=2),
                             "what": f"search(), {len(SEARCHES)} texts × 2"}
        results["list page with search"] = {
            "times": timed(lambda text: reader.browse(text, limit=20, facet_limit=10), SEARCHES),
            "what": f"browse(text), {len(SEARCHES)} texts"}
        ids = [row[0] for row in reader.con.execute(f"SELECT id FROM papers USING SAMPLE {similar + 1} ROWS (reservoir, 7)").fetchall()]
        began = time.perf_counter()
        reader.similar(ids.pop())
        first_similar_ms = (time.perf_counter() - began) * 1000
        results["similar"] = {"times": timed(lambda paper_id: reader.similar(paper_id), ids),
                              "what": f"similar(id), {len(ids)} sampled papers, after one first call ({first_similar_ms:,.0f} ms, not counted)"}
    return results


def report(path: Path, built: dict[str, float] | None, results: dict[str, dict]) -> str:
    lines = ["| read | calls | p50 ms | p99 ms | max ms | target p50 | |", "|---|---:|---:|---:|---:|---:|---|"]
    for name, result in results.items():
        times = result["times"]
        p50 = statistics.median(times)
        target = TARGETS_MS.get(name.replace(" with search", ""))
        verdict = "" if target is None else ("met" if p50 <= target else "**missed**")
        lines.append(f"| {name} | {len(times)} | {p50:.1f} | {percentile(times, 0.99):.1f} | {times[-1]:.1f} "
                     f"| {target or ''} | {verdict} |")
    lines.append("")
    lines += [f"- {name}: {result['what']}." for name, result in results.items()]
    size = path.stat().st_size / 2**20
    lines.append(f"- Database: {size:,.0f} MiB; this run: " + ", ".join(
        f"{key} {value:.1f}" for key, value in (built or {}).items()) + ".")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="built here if missing, reused otherwise")
    parser.add_argument("--papers", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=90, help="query --benchmark calls")
    parser.add_argument("--similar", type=int, default=20, help="similar calls")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--append", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    machine, command = machine_info(), command_line()
    built = build(args.db, args.papers, args.seed) if not args.db.exists() else None
    if args.db.exists() and built is None:  # migrations and the end-of-ingest step of this version
        began = time.perf_counter()
        with Store(args.db) as store:
            opened = time.perf_counter()
            end_of_ingest(store)
        built = {"open and migrate s": opened - began, "end-of-ingest step s": time.perf_counter() - opened}
        print(f"  {built}", file=sys.stderr, flush=True)
    results = measure(args.db, args.seed, args.queries, args.similar)
    body = report(args.db, built, results)
    print(body)
    if args.append:
        append_results(f"Reads at scale ({args.papers:,} synthetic papers)", command, body, machine=machine)


if __name__ == "__main__":
    main()
