"""Benchmark: what 'papertag similar' costs — embedding at ingest, and the nearest-neighbour query at scale.

    .venv/bin/python bench/similar_latency.py [--papers 100000 1000000] [--queries 10] [--write]

1. Demo database: the 31 sample abstracts ingested by `papertag ingest` (tags from bench/fake_llm_server.py, so
   only papertag's own work is timed); the run's `embedding_seconds` per paper, then `papertag similar ID`
   as a new process (what a person waits for) and Reader.similar in-process (what a web page or library waits for).
2. Scale: synthetic papers and extractions (bench/_synth.py) with random unit vectors in paper_vectors, loaded
   through Store.add_vectors; Reader.similar timed on --queries papers. The query is a full scan (one cosine per
   stored text): it measures what the plain scan costs before an index is worth adding.
--write appends the results to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
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
from _report import ROOT, append_results, command_line, machine_info  # noqa: E402
from _synth import load_chunk, make_chunk, sentence_pool, vocabularies  # noqa: E402

SAMPLE = ROOT / "data" / "hf-papers-skills.txt"
CHUNK = 100_000


def papertag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # `python -m papertag` runs the code next to this script, whichever papertag the venv has installed.
    return subprocess.run([sys.executable, "-m", "papertag", *args], capture_output=True, text=True, env=env,
                          check=True, timeout=600)


def demo(folder: Path) -> dict:
    env = os.environ | {"PAPERTAG_CACHE_DIR": str(folder / "cache"),
                        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    db = folder / "demo.duckdb"
    server = subprocess.Popen([sys.executable, str(HERE / "fake_llm_server.py"), "--latency", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        report = json.loads(papertag("ingest", str(SAMPLE), "--db", str(db), "--model", "openai:bench",
                                     "--base-url", f"http://127.0.0.1:{port}/v1", "--json", env=env | {"OPENAI_API_KEY": "x"}).stdout)
    finally:
        server.kill()
        server.wait()
    with Reader(db) as reader:
        ids = [row["id"] for row in reader.summaries()]
        reader.similar(ids[0])  # warm
        in_process = []
        for paper_id in ids:
            started = time.perf_counter()
            reader.similar(paper_id)
            in_process.append(time.perf_counter() - started)
    cli = []
    for paper_id in ids[:5]:
        started = time.perf_counter()
        papertag("similar", paper_id, "--db", str(db), "--json", env=env)
        cli.append(time.perf_counter() - started)
    return {"papers": report["papers"], "embedded": report["embedded"],
            "embedding_s_per_paper": report["embedding_seconds"] / max(1, report["embedded"]),
            "reader_ms_p50": 1000 * statistics.median(in_process), "cli_ms_p50": 1000 * statistics.median(cli)}


def scale(folder: Path, papers: int, queries: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    vocab, sentences = vocabularies(rng), sentence_pool(rng)
    prompt = load_prompt()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    db = folder / f"scale-{papers}.duckdb"
    vector_load_s = 0.0
    with Store(db) as store:
        for start in range(0, papers, CHUNK):
            chunk = make_chunk(rng, start, min(CHUNK, papers - start), sentences, vocab, model="openai:bench",
                               prompt_version=prompt.version, schema_version=prompt.schema_version, now=now)
            load_chunk(store, chunk)
            vectors = rng.standard_normal((chunk.papers.num_rows, DIMENSIONS), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            started = time.perf_counter()
            store.add_vectors(MODEL_NAME, chunk.papers["content_hash"].to_pylist(), vectors)
            vector_load_s += time.perf_counter() - started
        store.con.execute("CHECKPOINT")
    size_mb = db.stat().st_size / 2**20
    with Reader(db) as reader:
        ids = [row[0] for row in reader.con.execute(f"SELECT id FROM papers USING SAMPLE {queries + 1} ROWS").fetchall()]
        reader.similar(ids.pop())  # warm: the first query reads the vectors from disk
        timings = []
        for paper_id in ids:
            started = time.perf_counter()
            found = reader.similar(paper_id)
            timings.append(time.perf_counter() - started)
        assert len(found) == 10
    return {"papers": papers, "vector_load_s": vector_load_s, "db_mb": size_mb,
            "p50_ms": 1000 * statistics.median(timings), "max_ms": 1000 * max(timings)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="papertag-similar-") as tmp:
        folder = Path(tmp)
        shown = demo(folder)
        lines = [
            "| what | measured |", "|---|---|",
            f"| embedding at ingest (31 sample papers, model load included) | {shown['embedding_s_per_paper']:.3f} s per paper |",
            f"| `Reader.similar` on the demo database, p50 of 31 | {shown['reader_ms_p50']:.1f} ms |",
            f"| `papertag similar ID --json`, a new process, p50 of 5 | {shown['cli_ms_p50']:.0f} ms |",
        ]
        print("\n".join(lines), flush=True)
        for papers in args.papers:
            result = scale(folder, papers, args.queries)
            line = (f"| `Reader.similar` over {papers:,} stored vectors, p50 (max) of {args.queries} | "
                    f"{result['p50_ms']:.0f} ms ({result['max_ms']:.0f} ms); vectors loaded in "
                    f"{result['vector_load_s']:.1f} s, database {result['db_mb']:,.0f} MB |")
            print(line, flush=True)
            lines.append(line)
            (folder / f"scale-{papers}.duckdb").unlink()
    if args.write:
        append_results("similar: embedding and nearest-neighbour latency", command_line(), "\n".join(lines),
                       machine=machine)


if __name__ == "__main__":
    main()
