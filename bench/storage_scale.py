"""Benchmark 3: storage at scale — bulk-load synthetic papers, extractions and tags, then time `query --benchmark`.

    .venv/bin/python bench/storage_scale.py [--papers 1000000] [--chunk 250000] [--queries 200] [--append]

Papers, extractions and tags are generated column-wise (bench/_synth.py: numpy + pyarrow, no loop per row) and
loaded through papertag's own bulk path, Store.merge_papers and Store.append (Arrow tables, one statement per
table and chunk), into a fresh DuckDB file in a temporary folder. Generation is timed apart from loading. Then
papertag.queries.Reader.query — what `papertag query --benchmark NAME` runs — is timed on a mix of common, mid
and rare benchmark names, and once with a --task substring. Targets (issue 4): load ≥ 50,000 papers/s; query
p50 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from papertag.prompts import load_prompt
from papertag.queries import Reader
from papertag.store import Store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import ROOT, append_results, command_line, machine_info  # noqa: E402
from _synth import check_hashes, load_chunk, make_chunk, sentence_pool, vocabularies  # noqa: E402

MODEL = "openai:bench"
TASK_QUERY = "speech recognition"  # a substring of several task phrases
LOAD_TARGET = 50_000  # papers/s
P50_TARGET_MS = 50.0


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, int(round(share * len(sorted_values))) - 1))]


def load(path: Path, papers: int, chunk: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    vocab, sentences = vocabularies(rng), sentence_pool(rng)
    prompt = load_prompt()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    store = Store(path)
    generate_s = load_s = 0.0
    tags = 0
    for start in range(0, papers, chunk):
        began = time.perf_counter()
        part = make_chunk(rng, start, min(chunk, papers - start), sentences, vocab, model=MODEL,
                          prompt_version=prompt.version, schema_version=prompt.schema_version, now=now)
        if start == 0:
            check_hashes(part.papers)
        generated = time.perf_counter()
        generate_s += generated - began
        # The timed part: papertag's bulk write path, as a loader of precomputed results would call it.
        tags += load_chunk(store, part)
        load_s += time.perf_counter() - generated
        print(f"  loaded {start + part.papers.num_rows:,} papers, {tags:,} tags ({load_s:.1f} s)", file=sys.stderr)
    began = time.perf_counter()
    store.close()  # checkpoints: the data is in the file, not the write-ahead log
    load_s += time.perf_counter() - began
    size = path.stat().st_size + (path.with_name(path.name + ".wal").stat().st_size
                                  if path.with_name(path.name + ".wal").exists() else 0)
    return {"papers": papers, "tags": tags, "load_s": load_s, "generate_s": generate_s, "bytes": size, "vocab": vocab}


def spellings(name: str, index: int) -> str:
    """Queries use the spellings people type: lower case, upper case, spaces for hyphens."""
    return (name.lower(), name.upper(), name.replace("-", " "), name)[index % 4]


def time_queries(path: Path, vocab, count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    names = vocab["benchmark"].values.to_pylist()
    groups = {  # rank ranges in the Zipf order
        "common (ranks 1-20)": names[:20],
        "mid (ranks 200-400)": list(rng.choice(names[200:400], 20, replace=False)),
        "rare (ranks 1500-3000)": list(rng.choice(names[1500:3000], 20, replace=False)),
    }
    plan = [(group, spellings(name, i)) for group, members in groups.items() for i, name in enumerate(members)]
    order = rng.permutation(count) % len(plan)
    results: dict[str, list[tuple[float, int]]] = {group: [] for group in groups}
    with Reader(path) as reader:
        began = time.perf_counter()
        cold_rows = len(reader.query(benchmark=names[0]))
        cold_ms = (time.perf_counter() - began) * 1000
        for index in order:
            group, name = plan[index]
            began = time.perf_counter()
            rows = reader.query(benchmark=name)
            results[group].append(((time.perf_counter() - began) * 1000, len(rows)))
        task_runs = []
        for _ in range(5):
            began = time.perf_counter()
            task_rows = len(reader.query(task=TASK_QUERY))
            task_runs.append((time.perf_counter() - began) * 1000)
    return {"groups": results, "cold_ms": cold_ms, "cold_rows": cold_rows, "cold_name": names[0],
            "task_ms": statistics.median(task_runs), "task_rows": task_rows}


def time_cli_query(path: Path, name: str) -> float:
    """One `papertag query` as a user runs it: process start, imports, opening the file, the query, JSON out."""
    papertag = ROOT / ".venv" / "bin" / "papertag"
    began = time.perf_counter()
    subprocess.run([str(papertag), "query", "--benchmark", name, "--db", str(path), "--json"],
                   check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - began) * 1000


def report(loaded: dict, queried: dict, cli_ms: float, chunk: int) -> str:
    papers_per_s = loaded["papers"] / loaded["load_s"]
    every = sorted(ms for runs in queried["groups"].values() for ms, _ in runs)
    p50, p99 = statistics.median(every), percentile(every, 0.99)
    lines = [
        "| papers | tags | chunk | load s | papers/s | tags/s | DB size | generation s (not in load) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {loaded['papers']:,} | {loaded['tags']:,} | {chunk:,} | {loaded['load_s']:.1f} | {papers_per_s:,.0f} "
        f"| {loaded['tags'] / loaded['load_s']:,.0f} | {loaded['bytes'] / 2**20:,.0f} MiB | {loaded['generate_s']:.1f} |",
        "",
        "| `query --benchmark` names | queries | p50 ms | p99 ms | result rows (min / median / max) |",
        "|---|---:|---:|---:|---|",
    ]
    for group, runs in queried["groups"].items():
        if not runs:
            continue
        times = sorted(ms for ms, _ in runs)
        rows = sorted(n for _, n in runs)
        lines.append(f"| {group} | {len(runs)} | {statistics.median(times):.1f} | {percentile(times, 0.99):.1f} "
                     f"| {rows[0]:,} / {statistics.median(rows):,.0f} / {rows[-1]:,} |")
    lines += [
        f"| **all** | {len(every)} | **{p50:.1f}** | **{p99:.1f}** | |",
        "",
        f"- First query on the freshly opened file (`{queried['cold_name']}`, {queried['cold_rows']:,} rows): "
        f"{queried['cold_ms']:.0f} ms; not in the percentiles.",
        f"- `query --task \"{TASK_QUERY}\"` (substring of the task key): {queried['task_ms']:.0f} ms median of 5, "
        f"{queried['task_rows']:,} rows.",
        f"- `papertag query --benchmark {queried['cold_name']} --json` as a process (start-up, imports, open, query, "
        f"JSON): {cli_ms:.0f} ms.",
        f"- Load target (≥ {LOAD_TARGET:,} papers/s): {papers_per_s:,.0f} papers/s — "
        f"**{'met' if papers_per_s >= LOAD_TARGET else 'missed'}**.",
        f"- Query target (p50 ≤ {P50_TARGET_MS:.0f} ms): {p50:.1f} ms — **{'met' if p50 <= P50_TARGET_MS else 'missed'}**.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=250_000, help="papers per merge_papers/append call")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--db", type=Path, help="keep the database here (must not exist) instead of a temporary folder")
    parser.add_argument("--append", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    machine, command = machine_info(), command_line()
    with tempfile.TemporaryDirectory(prefix="papertag-bench-") as folder:
        path = args.db or Path(folder) / "scale.duckdb"
        if path.exists():
            parser.error(f"{path} exists; the benchmark loads into a fresh database")
        loaded = load(path, args.papers, args.chunk, args.seed)
        queried = time_queries(path, loaded["vocab"], args.queries, args.seed)
        cli_ms = time_cli_query(path, queried["cold_name"])
    body = report(loaded, queried, cli_ms, args.chunk)
    print(body)
    if args.append:
        append_results(f"Storage at scale ({args.papers:,} synthetic papers)", command, body, machine=machine)


if __name__ == "__main__":
    main()
