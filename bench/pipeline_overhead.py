"""Benchmark 1: papertag's own cost per paper, against a fake OpenAI-compatible server with fixed latency.

    .venv/bin/python bench/pipeline_overhead.py [--papers 2000] [--append]

The server (bench/fake_llm_server.py) runs in another process, so the CPU time measured here is the client's
alone: parsing answers, validation, grounding, DuckDB writes, threads. Targets (issue 4): with 200 ms latency
and concurrency 64, at least 80% of the ideal 320 papers/s; client CPU at most 3 ms per paper.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from papertag.backends import BackendOptions
from papertag.ingest import ingest
from papertag.prompts import load_prompt
from papertag.sources import make_paper
from papertag.store import Store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import append_results, command_line, machine_info  # noqa: E402

ABSTRACT = ("We adapt a language model with LoRA and evaluate it on MMLU, where it improves accuracy over full "
            "fine-tuning while training far fewer parameters. ") * 8


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, str(HERE / "fake_llm_server.py"), "--latency", str(latency)],
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    return server, f"http://127.0.0.1:{port}/v1"


def run_once(count: int, concurrency: int, latency: float) -> dict:
    papers = [make_paper(f"Paper {i}: adapting models", f"{i}. {ABSTRACT}", "bench") for i in range(count)]
    server, base_url = start_server(latency)
    try:
        with tempfile.TemporaryDirectory() as folder:
            store = Store(Path(folder) / "bench.duckdb")
            wall, cpu = time.perf_counter(), time.process_time()
            latencies: list[float] = []
            report = ingest(store, papers, spec="openai:bench", prompt=load_prompt(),
                            options=BackendOptions(base_url=base_url), concurrency=concurrency,
                            on_result=lambda result: latencies.append(result.latency_s))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stored = store.con.execute("SELECT count(*) FROM current_extractions").fetchone()[0]
            store.close()
    finally:
        server.kill()
        server.wait()
    assert report.extracted == count == stored, (report.extracted, report.failed, stored)
    latencies.sort()
    return {
        "concurrency": concurrency, "latency_ms": latency * 1000, "papers": count,
        "papers_per_s": count / wall, "ideal_papers_per_s": concurrency / latency,
        "cpu_ms_per_paper": cpu / count * 1000,
        "p50_ms": statistics.median(latencies) * 1000, "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--sweep-latency", type=float, default=0.02,
                        help="server latency for the concurrency sweep (s); short, so concurrency 1 ends in minutes")
    parser.add_argument("--append", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    machine = machine_info()  # the load at the start is the one the run began under
    runs = [run_once(args.papers, c, args.sweep_latency) for c in (1, 8, 32, 128)]
    target = run_once(args.papers, 64, 0.2)
    runs.append(target)
    lines = ["| concurrency | server latency | papers/s | ideal papers/s | client CPU ms/paper | p50 ms | p99 ms |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['concurrency']} | {r['latency_ms']:.0f} ms | {r['papers_per_s']:.1f} | {r['ideal_papers_per_s']:.0f} "
                     f"| {r['cpu_ms_per_paper']:.2f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} |")
    share = target["papers_per_s"] / target["ideal_papers_per_s"]
    worst_cpu = max(r["cpu_ms_per_paper"] for r in runs)
    lines += [
        "",
        f"- Throughput target (200 ms, concurrency 64, ≥ 80% of 320 papers/s): {target['papers_per_s']:.1f} papers/s = "
        f"{share:.0%} of ideal — **{'met' if share >= 0.8 else 'missed'}**.",
        f"- Client CPU target (≤ 3 ms per paper): highest {worst_cpu:.2f} ms, at 200 ms/64 {target['cpu_ms_per_paper']:.2f} ms "
        f"— **{'met' if worst_cpu <= 3 else 'missed'}**.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.append:
        append_results("Pipeline overhead (fake server, no model)", command_line(), body, machine=machine)


if __name__ == "__main__":
    main()
