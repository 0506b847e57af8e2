"""Benchmark 4: cached re-run — re-ingest papers that are all extracted already; no LLM call may happen.

    .venv/bin/python bench/cached_rerun.py [--papers 100000] [--append]

Builds a database of already-extracted papers through papertag's bulk write path (bench/_synth.py: papers with
real content hashes, one good extraction each under the model spec, prompt version and schema version that
ingest looks up: "openai:bench", load_prompt().version and .schema_version), writes the same papers as a JSONL
file, then times:

1. in process: papertag.sources.parse_file + papertag.ingest.ingest with an extractor factory that counts every
   extractor made and every extract() call, with the endpoint pointed at 127.0.0.1:9 (closed), asserting both
   counters stay at zero;
2. end to end: `.venv/bin/papertag ingest FILE --model openai:bench --base-url http://127.0.0.1:9/v1 --db DB --json`
   as a fresh process, which would fail loudly on any LLM call.

Target (issue 4): ≤ 10 s with zero LLM calls.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np

from papertag.backends import BackendOptions
from papertag.ingest import ingest
from papertag.prompts import load_prompt
from papertag.sources import parse_file
from papertag.store import Store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import ROOT, append_results, busy_cpu_seconds, command_line, machine_info  # noqa: E402
from _synth import check_hashes, load_chunk, make_chunk, sentence_pool, timed_methods, vocabularies  # noqa: E402

MODEL = "openai:bench"
CLOSED_PORT_URL = "http://127.0.0.1:9/v1"  # nothing listens on port 9: any request fails at once
TARGET_S = 10.0


class CountingExtractor:
    """Stands in for papertag.extract.Extractor: counts, and never answers."""

    made = 0
    calls = 0
    lock = threading.Lock()

    def __init__(self, endpoint, prompt):
        with CountingExtractor.lock:
            CountingExtractor.made += 1

    def extract(self, paper):
        with CountingExtractor.lock:
            CountingExtractor.calls += 1
        raise AssertionError(f"LLM call for {paper.id} on a cached re-run")


def build(folder: Path, papers: int, chunk: int, seed: int) -> tuple[Path, Path, float]:
    """A database of extracted papers and a JSONL file of the same papers; returns their paths and build seconds."""
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    vocab, sentences = vocabularies(rng), sentence_pool(rng)
    prompt = load_prompt()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    db, jsonl = folder / "rerun.duckdb", folder / "papers.jsonl"
    store = Store(db)
    writer = duckdb.connect()
    parts = []
    for start in range(0, papers, chunk):
        part = make_chunk(rng, start, min(chunk, papers - start), sentences, vocab, model=MODEL,
                          prompt_version=prompt.version, schema_version=prompt.schema_version, now=now, source=str(jsonl))
        if start == 0:
            check_hashes(part.papers)
        load_chunk(store, part)
        parts.append(part.papers.select(["id", "title", "abstract"]))
    store.close()
    for index, table in enumerate(parts):  # one JSON object per line, written by DuckDB, not by a Python loop
        writer.register("part", table)
        writer.execute(f"COPY part TO '{folder / f'part{index}.jsonl'}' (FORMAT json)")
        writer.unregister("part")
    writer.close()
    with jsonl.open("wb") as out:
        for index in range(len(parts)):
            out.write((folder / f"part{index}.jsonl").read_bytes())
            (folder / f"part{index}.jsonl").unlink()
    return db, jsonl, time.perf_counter() - began


def rerun_in_process(db: Path, jsonl: Path, papers: int) -> dict:
    busy_before, own_before = busy_cpu_seconds(), time.process_time()
    began = time.perf_counter()
    parsed = parse_file(jsonl)
    parse_s = time.perf_counter() - began
    assert not parsed.problems and len(parsed.papers) == papers, (parsed.problems[:3], len(parsed.papers))
    opened = time.perf_counter()
    store = Store(db)
    open_s = time.perf_counter() - opened
    spent = timed_methods(store, ("add_papers", "done_keys", "reusable_answers", "save"))
    ingest_began = time.perf_counter()
    report = ingest(store, parsed.papers, spec=MODEL, prompt=load_prompt(), options=BackendOptions(base_url=CLOSED_PORT_URL),
                    make_extractor=CountingExtractor)
    ingest_s = time.perf_counter() - ingest_began
    store.close()
    total_s = time.perf_counter() - began
    others_s = (busy_cpu_seconds() - busy_before) - (time.process_time() - own_before) if busy_before is not None else None
    assert CountingExtractor.made == 0 and CountingExtractor.calls == 0, (CountingExtractor.made, CountingExtractor.calls)
    assert report.cached == papers and report.extracted == report.failed == report.rechecked == report.new_or_changed == 0, report
    return {"parse_s": parse_s, "open_s": open_s, "ingest_s": ingest_s, "total_s": total_s, **spent,
            "other_s": ingest_s - sum(spent.values()), "cached": report.cached,
            "cpu_s": time.process_time() - own_before, "others_s": others_s}


def rerun_cli(db: Path, jsonl: Path, papers: int) -> dict:
    papertag = ROOT / ".venv" / "bin" / "papertag"
    command = [str(papertag), "ingest", str(jsonl), "--model", MODEL, "--base-url", CLOSED_PORT_URL, "--db", str(db), "--json"]
    began = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if finished.returncode != 0:
        raise SystemExit(f"papertag ingest exited {finished.returncode}:\n{finished.stderr[-2000:]}")
    data = json.loads(finished.stdout)
    assert data["cached"] == papers and data["extracted"] == data["failed"] == 0, data
    return {"wall_s": wall, "ingest_wall_s": data["wall_seconds"], "cached": data["cached"],
            "extracted": data["extracted"], "failed": data["failed"]}


def report(papers: int, build_s: float, size: int, inproc: dict, cli: dict) -> str:
    rows = [
        ("parse_file (read, decode, JSON, clean, hash)", inproc["parse_s"]),
        ("Store() open and migrate check", inproc["open_s"]),
        ("ingest: add_papers (merge into papers)", inproc["add_papers"]),
        ("ingest: plan → done_keys", inproc["done_keys"]),
        ("ingest: recheck_stored → reusable_answers", inproc["reusable_answers"]),
        ("ingest: save (nothing to save)", inproc["save"]),
        ("ingest: the rest (unique_papers, set look-ups)", inproc["other_s"]),
    ]
    lines = [
        f"{papers:,} papers already extracted by `{MODEL}` under the current prompt and schema versions "
        f"(database {size / 2**20:,.0f} MiB, built in {build_s:.1f} s, not timed below).",
        "",
        "| step (in process) | seconds |",
        "|---|---:|",
        *[f"| {name} | {seconds:.2f} |" for name, seconds in rows],
        f"| **total, parse to close** | **{inproc['total_s']:.2f}** |",
        "",
        "| run | wall s | papers cached | LLM calls |",
        "|---|---:|---:|---:|",
        f"| in process (parse_file + ingest, counting extractor factory) | {inproc['total_s']:.2f} | {inproc['cached']:,} "
        f"| {CountingExtractor.calls} (extractors made: {CountingExtractor.made}) |",
        f"| `papertag ingest … --base-url {CLOSED_PORT_URL}` as a process | {cli['wall_s']:.2f} | {cli['cached']:,} "
        f"| {cli['extracted'] + cli['failed']} (its own wall_seconds: {cli['ingest_wall_s']:.2f}) |",
        "",
        *([f"- During the in-process run this process used {inproc['cpu_s']:.1f} CPU-s; other processes on the machine "
            f"used {inproc['others_s']:.1f} of the {os.cpu_count() * inproc['total_s']:.1f} that {os.cpu_count()} cores give."]
          if inproc["others_s"] is not None else []),
        f"- Target (≤ {TARGET_S:.0f} s with zero LLM calls): in process {inproc['total_s']:.1f} s, CLI {cli['wall_s']:.1f} s, "
        f"no LLM call — **{'met' if max(inproc['total_s'], cli['wall_s']) <= TARGET_S else 'missed'}**.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=50_000, help="papers per bulk write while building")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--append", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    machine, command = machine_info(), command_line()
    with tempfile.TemporaryDirectory(prefix="papertag-bench-") as name:
        folder = Path(name)
        db, jsonl, build_s = build(folder, args.papers, args.chunk, args.seed)
        size = db.stat().st_size
        inproc = rerun_in_process(db, jsonl, args.papers)
        cli = rerun_cli(db, jsonl, args.papers)
    body = report(args.papers, build_s, size, inproc, cli)
    print(body)
    if args.append:
        append_results(f"Cached re-run ({args.papers:,} papers)", command, body, machine=machine)


if __name__ == "__main__":
    main()
