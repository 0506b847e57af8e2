"""Client-side cost of `ingest()` against the loopback fake OpenAI server from the tests (no model, no network).

Usage: .venv/bin/python bench/client_overhead.py [PAPERS] [CONCURRENCY...]
Prints papers/s and process CPU per paper; the fake server runs in the same process, so CPU includes it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_openai import FakeOpenAI  # noqa: E402

from papertag.backends import BackendOptions  # noqa: E402
from papertag.ingest import ingest  # noqa: E402
from papertag.prompts import load_prompt  # noqa: E402
from papertag.sources import make_paper  # noqa: E402
from papertag.store import Store  # noqa: E402


def measure(count: int, concurrency: int) -> None:
    papers = [make_paper(f"Paper {i}", f"Abstract {i}, evaluated on AgentBench and MT-Bench. " * 20, "bench")
              for i in range(count)]
    with FakeOpenAI() as server, tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.duckdb")
        wall, cpu = time.perf_counter(), time.process_time()
        ingest(store, papers, spec="openai:fake", prompt=load_prompt(),
               options=BackendOptions(base_url=server.base_url), concurrency=concurrency)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        store.close()
    print(f"papers {count} concurrency {concurrency}: {count / wall:.1f} papers/s, "
          f"{cpu / count * 1000:.1f} ms process CPU per paper")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    for concurrency in [int(c) for c in sys.argv[2:]] or [1, 8]:
        measure(count, concurrency)
