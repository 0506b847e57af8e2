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

from papertag.prompts import load_prompt
from papertag.queries import Reader
from papertag.store import Store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import ROOT, append_results, busy_cpu_seconds, command_line, machine_info  # noqa: E402
from _synth import check_hashes, load_chunk, make_chunk, sentence_pool, timed_methods, vocabularies  # noqa: E402

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
    phases = timed_methods(store, ("merge_papers", "next_extraction_ids", "append"))
    busy_before, own_before = busy_cpu_seconds(), time.process_time()
    generate_s = load_s = load_cpu_s = 0.0
    tags = 0
    for start in range(0, papers, chunk):
        began = time.perf_counter()
        part = make_chunk(rng, start, min(chunk, papers - start), sentences, vocab, model=MODEL,
                          prompt_version=prompt.version, schema_version=prompt.schema_version, now=now)
        if start == 0:
            check_hashes(part.papers)
        generated, cpu = time.perf_counter(), time.process_time()
        generate_s += generated - began
        # The timed part: papertag's bulk write path, as a loader of precomputed results would call it.
        tags += load_chunk(store, part)
        load_s += time.perf_counter() - generated
        load_cpu_s += time.process_time() - cpu
        print(f"  loaded {start + part.papers.num_rows:,} papers, {tags:,} tags ({load_s:.1f} s)", file=sys.stderr)
    began, cpu = time.perf_counter(), time.process_time()
    store.close()  # checkpoints: the data is in the file, not the write-ahead log
    phases["close (checkpoint)"] = time.perf_counter() - began
    load_s += phases["close (checkpoint)"]
    load_cpu_s += time.process_time() - cpu
    # CPU other processes took while this ran (generation included: the same process, untimed).
    others_s = (busy_cpu_seconds() - busy_before) - (time.process_time() - own_before) if busy_before is not None else None
    wal = path.with_name(path.name + ".wal")
    size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return {"papers": papers, "tags": tags, "load_s": load_s, "load_cpu_s": load_cpu_s, "generate_s": generate_s,
            "bytes": size, "vocab": vocab, "phases": phases, "others_s": others_s,
            "wall_s": load_s + generate_s}


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
    results: dict[str, list[tuple[float, float, int]]] = {group: [] for group in groups}
    with Reader(path) as reader:
        began = time.perf_counter()
        cold_rows = len(reader.query(benchmark=names[0]))
        cold_ms = (time.perf_counter() - began) * 1000
        for index in order:
            group, name = plan[index]
            began, cpu = time.perf_counter(), time.process_time()
            rows = reader.query(benchmark=name)
            results[group].append(((time.perf_counter() - began) * 1000, (time.process_time() - cpu) * 1000, len(rows)))
        task_runs = []
        for _ in range(5):
            began = time.perf_counter()
            task_rows = len(reader.query(task=TASK_QUERY))
            task_runs.append((time.perf_counter() - began) * 1000)
        profile = profile_query(reader, names[300])
    return {"groups": results, "cold_ms": cold_ms, "cold_rows": cold_rows, "cold_name": names[0],
            "task_ms": statistics.median(task_runs), "task_rows": task_rows, "profile": profile, "profiled": names[300]}


def profile_query(reader: Reader, name: str) -> list[tuple[float, str]]:
    """DuckDB's own profile of one `query --benchmark`: the operators that take the time, as shares."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "profile.json"
        reader.con.execute("PRAGMA enable_profiling = 'json'")
        reader.con.execute(f"PRAGMA profiling_output = '{output}'")
        reader.query(benchmark=name)
        reader.con.execute("PRAGMA disable_profiling")
        tree = json.loads(output.read_text())
    operators: list[tuple[float, str]] = []

    def walk(node: dict) -> None:
        info = node.get("extra_info", {})
        label = node.get("operator_name") or node.get("operator_type") or "?"
        detail = info.get("Table") or info.get("Conditions") or ""
        if isinstance(detail, list):
            detail = " AND ".join(detail)
        filters = info.get("Filters")
        if filters:
            detail += " WHERE " + (" AND ".join(filters) if isinstance(filters, list) else str(filters))
        if node.get("operator_rows_scanned"):
            detail += f", {node['operator_rows_scanned']:,} rows scanned"
        operators.append((node.get("operator_timing", 0.0), f"{label.strip()} {detail}".strip()))
        for child in node.get("children", []):
            walk(child)

    for child in tree.get("children", []):
        walk(child)
    total = sum(seconds for seconds, _ in operators) or 1.0
    return [(seconds / total, label) for seconds, label in sorted(operators, reverse=True)[:5]]


def time_cli_query(path: Path, name: str) -> float:
    """One `papertag query` as a user runs it: process start, imports, opening the file, the query, JSON out."""
    # `python -m papertag` with this interpreter: a worktree or a fresh clone may have no .venv of its own.
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "papertag", "query", "--benchmark", name, "--db", str(path), "--json"],
                   check=True, stdout=subprocess.DEVNULL,
                   env=os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])})
    return (time.perf_counter() - began) * 1000


def report(loaded: dict, queried: dict, cli_ms: float, chunk: int) -> str:
    papers_per_s = loaded["papers"] / loaded["load_s"]
    every = sorted(ms for runs in queried["groups"].values() for ms, _, _ in runs)
    p50, p99 = statistics.median(every), percentile(every, 0.99)
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in loaded["phases"].items())
    lines = [
        "| papers | tags | chunk | load s | load CPU s | papers/s | tags/s | DB size | generation s (not in load) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {loaded['papers']:,} | {loaded['tags']:,} | {chunk:,} | {loaded['load_s']:.1f} | {loaded['load_cpu_s']:.1f} "
        f"| {papers_per_s:,.0f} | {loaded['tags'] / loaded['load_s']:,.0f} | {loaded['bytes'] / 2**20:,.0f} MiB "
        f"| {loaded['generate_s']:.1f} |",
        "",
        f"Load time by Store call: {phases}. " + (
            f"Other processes on the machine used {loaded['others_s']:.0f} CPU-s of the "
            f"{os.cpu_count() * loaded['wall_s']:.0f} that {os.cpu_count()} cores give during generation and load."
            if loaded["others_s"] is not None else ""),
        "",
        "| `query --benchmark` names | queries | p50 ms | p99 ms | p50 CPU ms | result rows (min / median / max) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for group, runs in queried["groups"].items():
        if not runs:
            continue
        times = sorted(ms for ms, _, _ in runs)
        rows = sorted(n for _, _, n in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        lines.append(f"| {group} | {len(runs)} | {statistics.median(times):.1f} | {percentile(times, 0.99):.1f} | {cpu:.0f} "
                     f"| {rows[0]:,} / {statistics.median(rows):,.0f} / {rows[-1]:,} |")
    all_cpu = statistics.median(c for runs in queried["groups"].values() for _, c, _ in runs)
    lines += [
        f"| **all** | {len(every)} | **{p50:.1f}** | **{p99:.1f}** | {all_cpu:.0f} | |",
        "",
        f"- First query on the freshly opened file (`{queried['cold_name']}`, {queried['cold_rows']:,} rows): "
        f"{queried['cold_ms']:.0f} ms; not in the percentiles.",
        f"- `query --task \"{TASK_QUERY}\"` (substring of the task key): {queried['task_ms']:.0f} ms median of 5, "
        f"{queried['task_rows']:,} rows.",
        f"- `papertag query --benchmark {queried['cold_name']} --json` as a process (start-up, imports, open, query, "
        f"JSON): {cli_ms:.0f} ms.",
        f"- DuckDB profile of `query --benchmark {queried['profiled']}` (share of operator time): "
        + "; ".join(f"{share:.0%} {label}" for share, label in queried["profile"]) + ".",
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
