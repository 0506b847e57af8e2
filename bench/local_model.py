"""Benchmark 2 of issue 4: papertag's real ingest path against direct calls to the same embedded llama.cpp server.

Usage (from the repository root):
    .venv/bin/python bench/local_model.py [--model local] [--papers N] [--slots 1 2 4]
                                          [--no-raw] [--raw-first] [--append]

For each slot count the model is loaded once (PAPERTAG_LOCAL_SLOTS=slots, concurrency = slots) and both phases
run against that one server:
  papertag  papertag.ingest.ingest() into a fresh temporary DuckDB, with the real Extractor and load_prompt();
  raw       one plain httpx POST /v1/chat/completions per paper, from `slots` threads, with the exact JSON body
            papertag sends for that paper (same messages, response_format grammar, temperature 0, max_tokens).
Token counts come from each response's `usage`, rates from wall time; llama.cpp's own `timings` are shown too.

Fairness: llama.cpp keeps each slot's last prompt and reuses its longest matching prefix. Before each phase, one
filler request per slot (an abstract not in the set, max_tokens 1) leaves every slot holding the static prefix
(system prompt + few-shot examples) and nothing of the measured papers. Both phases therefore start like a
warmed-up ingest, and neither can reuse a paper the other just evaluated. The report still checks, per slot count,
that both phases got the same prompt-cache hits, the same llama.cpp speed and a quiet machine, and marks the row
"not comparable" if not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from unittest.mock import patch

import httpx
import openai

import papertag.ingest as ingest_module
from papertag.backends import BackendOptions, open_endpoint
from papertag.extract import Extractor
from papertag.prompts import load_prompt
from papertag.settings import Settings
from papertag.sources import make_paper, parse_file
from papertag.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import append_results, busy_cpu_seconds, command_line, machine_info  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "hf-papers-skills.txt"
TARGET_OVERHEAD_PCT = 5.0
MAX_OTHER_LOAD = 0.05  # of all cores, used by other processes during a phase
MAX_SERVER_DRIFT = 0.10  # llama.cpp's own speed differing more than this: the phases did not get the same CPU
MAX_CACHE_DIFFERENCE = 0.01  # of prompt tokens; one slot re-evaluating the static prefix is ~2.5% on 31 papers
FILLER_ABSTRACT = (
    "This placeholder abstract only warms the server before a measured phase. It describes a method for "
    "sorting library books by colour, evaluated on a made-up shelf benchmark, and reports that nothing of "
    "interest was found. It shares no text with the sample abstracts, so no slot can reuse a measured prompt."
)


def fillers(slots: int) -> list:
    # Distinct, so llama.cpp cannot serve them as one prompt shared between slots.
    return [make_paper(f"Warm-up filler {i}, not a measured paper", FILLER_ABSTRACT, "bench") for i in range(slots)]


@dataclass
class Tally:
    """What the server reported across the responses of one phase (retries included), and the client's CPU."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    prompt_n: int = 0  # llama.cpp timings: prompt tokens actually evaluated, and how long that took
    prompt_ms: float = 0.0
    predicted_n: int = 0
    predicted_ms: float = 0.0
    client_cpu_s: float = 0.0  # CPU of the client's own threads: unlike wall time, other load barely moves it
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, body: dict) -> None:
        usage, timings = body.get("usage") or {}, body.get("timings") or {}
        with self.lock:
            self.calls += 1
            self.prompt_tokens += usage.get("prompt_tokens", 0)
            self.completion_tokens += usage.get("completion_tokens", 0)
            self.cached_tokens += (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            self.prompt_n += timings.get("prompt_n", 0)
            self.prompt_ms += timings.get("prompt_ms", 0.0)
            self.predicted_n += timings.get("predicted_n", 0)
            self.predicted_ms += timings.get("predicted_ms", 0.0)

    def hook(self, response: httpx.Response) -> None:
        """httpx response hook for papertag's client: reads the body once more (well under 1 ms per paper)."""
        if response.request.method == "POST" and response.status_code == 200:
            response.read()
            self.add(response.json())

    def timed(self, function):
        """`function`, adding the CPU time of the worker thread that runs it to client_cpu_s."""
        def wrapper(*args):
            started = time.thread_time()
            try:
                return function(*args)
            finally:
                with self.lock:
                    self.client_cpu_s += time.thread_time() - started
        return wrapper


@dataclass
class Phase:
    side: str  # "papertag" or "raw"
    papers: int
    failed: int
    wall_s: float
    tally: Tally
    outputs: dict[str, str | None]  # paper id -> the model's JSON text
    other_load: float | None = None  # share of all cores busy with other processes during the phase


class OtherLoad:
    """Measures how much of the machine other processes used while the block ran (Linux only)."""

    def __enter__(self):
        self.busy, self.own, self.wall = busy_cpu_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        busy = busy_cpu_seconds()
        own, wall = time.process_time() - self.own, time.perf_counter() - self.wall
        self.share = None if busy is None else max(0.0, busy - self.busy - own) / (wall * (os.cpu_count() or 1))


@dataclass
class Measurement:
    """One slot count: the server's load time and the phases run against it."""

    slots: int
    model_file: str
    load_s: float
    phases: dict[str, Phase]


def papertag_requests(endpoint, prompt, papers) -> dict[str, dict]:
    """The exact JSON body papertag's Extractor sends for each paper, captured by a mock transport, so the raw
    side cannot drift from papertag (messages, instructor's response_format, sampling settings)."""
    bodies: list[dict] = []

    def capture(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(400, json={"error": "captured"})  # not transient: one request per paper

    extractor = Extractor(endpoint, prompt, http_client=httpx.Client(transport=httpx.MockTransport(capture)),
                          attempts=1, validation_retries=0)
    captured = {}
    for paper in papers:
        extractor.extract(paper)
        captured[paper.id] = bodies[-1]
    return captured


def reset_slots(client: httpx.Client, filler_bodies: list[dict]) -> None:
    """One filler request per slot, all at once so each lands on its own slot (see the module docstring)."""
    with ThreadPoolExecutor(len(filler_bodies)) as pool:
        post = lambda body: client.post("/chat/completions", json={**body, "max_tokens": 1})  # noqa: E731
        for response in pool.map(post, filler_bodies):
            response.raise_for_status()


def run_papertag(endpoint, prompt, papers, slots) -> Phase:
    tally, outputs = Tally(), {}

    def make_extractor(endpoint, prompt):
        # openai's own default client settings, plus the hook that reads usage and timings.
        http_client = openai.DefaultHttpxClient(event_hooks={"response": [tally.hook]})
        extractor = Extractor(endpoint, prompt, http_client=http_client)
        extractor.extract = tally.timed(extractor.extract)
        return extractor

    def on_result(result) -> None:
        outputs[result.paper.id] = result.raw_response
        print("." if result.ok else "x", end="", file=sys.stderr, flush=True)

    # ingest() opens its own endpoint; hand it the already running server instead, so both phases share it.
    shared = patch.object(ingest_module, "open_endpoint", lambda spec, options=None: nullcontext(endpoint))
    with shared, tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.duckdb")  # opening and migrating the database is not timed
        started, main_cpu = time.perf_counter(), time.thread_time()
        ingest_report = ingest_module.ingest(store, papers, spec=endpoint.spec, prompt=prompt, concurrency=slots,
                                             make_extractor=make_extractor, on_result=on_result)
        wall = time.perf_counter() - started
        tally.client_cpu_s += time.thread_time() - main_cpu  # the main thread writes the database
        store.close()
    print(file=sys.stderr)
    return Phase("papertag", len(papers), ingest_report.failed, wall, tally, outputs)


def run_raw(client: httpx.Client, bodies: dict[str, dict], papers, slots) -> Phase:
    tally = Tally()

    @tally.timed
    def call(paper):
        response = client.post("/chat/completions", json=bodies[paper.id])
        response.raise_for_status()
        body = response.json()
        tally.add(body)
        print(".", end="", file=sys.stderr, flush=True)
        return paper.id, body["choices"][0]["message"]["content"]

    started, main_cpu = time.perf_counter(), time.thread_time()
    with ThreadPoolExecutor(slots) as pool:  # at most `slots` requests in flight, like ingest's concurrency
        outputs = dict(pool.map(call, papers))
    wall = time.perf_counter() - started
    tally.client_cpu_s += time.thread_time() - main_cpu
    print(file=sys.stderr)
    return Phase("raw", len(papers), 0, wall, tally, outputs)


def measure(spec: str, papers, slots: int, *, raw: bool, raw_first: bool) -> Measurement:
    prompt = load_prompt()
    started = time.perf_counter()
    settings = replace(Settings.from_env(), local_slots=slots)  # passed in, not set in the environment
    with open_endpoint(spec, BackendOptions(settings=settings)) as endpoint:
        load_s = time.perf_counter() - started
        assert endpoint.concurrency == slots, f"local.py ignored local_slots={slots}"
        warmups = fillers(slots)
        bodies = papertag_requests(endpoint, prompt, [*warmups, *papers])
        auth = {"Authorization": f"Bearer {endpoint.api_key}"}
        with httpx.Client(base_url=endpoint.base_url, headers=auth, timeout=600) as client:
            filler_bodies = [bodies[filler.id] for filler in warmups]
            # On a fresh multi-slot server, one slot was seen to re-evaluate the static prefix on the request
            # after its first filler; a second round of fillers, before any phase, fixed that every time.
            reset_slots(client, filler_bodies)
            sides = ["papertag", "raw"] if raw else ["papertag"]
            phases = {}
            for side in reversed(sides) if raw_first else sides:
                print(f"{slots} slot(s), {side}: warming slots, then {len(papers)} papers", file=sys.stderr)
                reset_slots(client, filler_bodies)
                with OtherLoad() as other:
                    if side == "papertag":
                        phases[side] = run_papertag(endpoint, prompt, papers, slots)
                    else:
                        phases[side] = run_raw(client, bodies, papers, slots)
                phases[side].other_load = other.share
        return Measurement(slots, endpoint.model, load_s, {side: phases[side] for side in sides})


def row(slots: int, phase: Phase) -> str:
    t, n, wall = phase.tally, phase.papers, phase.wall_s
    server = (f"{t.prompt_n / t.prompt_ms * 1000:.0f} / {t.predicted_n / t.predicted_ms * 1000:.1f}"
              if t.prompt_ms and t.predicted_ms else "n/a")
    cells = [
        slots, phase.side, n, phase.failed, f"{wall:.1f}", f"{n / wall * 60:.2f}",
        f"{t.prompt_tokens / wall:.0f}", f"{t.completion_tokens / wall:.1f}", server,
        f"{t.prompt_tokens / n:,.0f} ({t.cached_tokens / n:,.0f}) + {t.completion_tokens / n:,.0f}", t.calls,
        f"{t.client_cpu_s / n * 1000:.0f}", "n/a" if phase.other_load is None else f"{phase.other_load:.0%}",
    ]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def fairness_problems(ours: Phase, raw: Phase) -> list[str]:
    """Both phases send the same requests to the same server; where the server saw them differently, say so."""
    problems = []
    loads = [phase.other_load for phase in (ours, raw) if phase.other_load is not None]
    if loads and max(loads) > MAX_OTHER_LOAD:
        problems.append(f"other processes kept {max(loads):.0%} of the CPU busy during a phase")
    a, b = ours.tally, raw.tally
    if a.predicted_n and b.predicted_n and a.predicted_ms and b.predicted_ms:
        speeds = sorted([a.predicted_n / a.predicted_ms, b.predicted_n / b.predicted_ms])
        if speeds[1] / speeds[0] - 1 > MAX_SERVER_DRIFT:
            problems.append(f"llama.cpp itself generated {speeds[1] / speeds[0] - 1:.0%} faster in one phase, so "
                            "something else was using the CPU")
    cached = abs(a.cached_tokens - b.cached_tokens) / max(a.prompt_tokens, 1)
    if cached > MAX_CACHE_DIFFERENCE:
        problems.append(f"llama.cpp's prompt cache served {a.cached_tokens / ours.papers:,.0f} vs "
                        f"{b.cached_tokens / raw.papers:,.0f} prompt tokens per paper (papertag vs raw)")
    return problems


def order(args) -> str:
    if not args.raw:
        return "papertag only"
    return "raw then papertag" if args.raw_first else "papertag then raw"


def report(results: list[Measurement], args) -> str:
    lines = [
        "| slots | side | papers | failed | wall s | papers/min | prompt tok/s | gen tok/s "
        "| llama.cpp prompt / gen tok/s | tokens per paper: prompt (cached) + completion | LLM calls "
        "| client CPU ms/paper | other processes' CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lines += [row(result.slots, phase) for phase in result.phases.values()]
    threads = Settings.from_env().local_threads or os.cpu_count()
    loads = ", ".join(f"{result.slots} slot(s) {result.load_s:.1f} s" for result in results)
    lines += [
        "",
        f"- Model `{args.model}` ({results[0].model_file}), {threads} threads; concurrency = slots. Load: {loads}.",
        "- Rates are usage tokens over the phase's wall time. llama.cpp's column is its own per-request speed "
        "(uncached prompt tokens, generated tokens). Client CPU counts the benchmark's Python threads only; 'other "
        "processes' is the share of all cores busy outside this process during the phase.",
        f"- Order: {order(args)}; before each phase every slot gets one filler request, so every phase starts "
        "with only the static prompt prefix cached.",
    ]
    missed = []
    for result in results:
        if "raw" not in result.phases:
            continue
        ours, raw = result.phases["papertag"], result.phases["raw"]
        overhead = (ours.wall_s / raw.wall_s - 1) * 100
        cpu_share = (ours.tally.client_cpu_s - raw.tally.client_cpu_s) / raw.wall_s * 100
        same = sum(ours.outputs.get(paper_id) == text for paper_id, text in raw.outputs.items())
        met = overhead <= TARGET_OVERHEAD_PCT
        if not met:
            missed.append(result.slots)
        lines.append(
            f"- {result.slots} slot(s): papertag overhead over raw **{overhead:+.1f}%** (target ≤ "
            f"{TARGET_OVERHEAD_PCT:.0f}%: {'met' if met else '**MISSED**'}); papertag's extra client CPU is "
            f"{cpu_share:.1f}% of the raw wall time; identical model output for {same}/{raw.papers} papers; "
            f"{ours.tally.calls - raw.tally.calls:+d} LLM calls (validation re-asks)."
        )
        for problem in fairness_problems(ours, raw):
            lines.append(f"  - **Not comparable**: {problem}. Re-run on a quiet machine before trusting this row.")
    if len(results) > 1:
        rates = {result.slots: result.phases["papertag"].papers / result.phases["papertag"].wall_s * 60
                 for result in results}
        lines.append("- papertag papers/min by slots: " + ", ".join(f"{s} → {r:.2f}" for s, r in rates.items())
                     + f"; fastest: {max(rates, key=rates.get)} slot(s).")
        busiest = max((phase.other_load or 0.0) for result in results for phase in result.phases.values())
        if busiest > MAX_OTHER_LOAD:
            lines.append(f"  - **Not comparable**: other processes kept up to {busiest:.0%} of the CPU busy. Re-run on "
                         "a quiet machine before choosing a slot count.")
    if missed:
        lines.append("- Target missed: profile the papertag phase (py-spy or pyinstrument) and record the "
                     "bottleneck here, as issue 4 asks.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local", help="model spec: local, local:fast or local:/path.gguf")
    parser.add_argument("--papers", type=int, default=None, help="first N sample abstracts (default all 31)")
    parser.add_argument("--slots", type=int, nargs="+", default=[1], help="llama.cpp slot counts to measure")
    parser.add_argument("--no-raw", dest="raw", action="store_false", help="only the papertag path")
    parser.add_argument("--raw-first", action="store_true", help="run the raw phase before papertag's")
    parser.add_argument("--append", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    if not args.model.startswith("local"):
        parser.error("this benchmark drives the embedded llama.cpp server: use local, local:fast or local:PATH")

    machine, command = machine_info(), command_line()
    papers = parse_file(SAMPLES).papers[: args.papers]
    results = [measure(args.model, papers, slots, raw=args.raw, raw_first=args.raw_first) for slots in args.slots]
    body = report(results, args)
    print(f"\nMachine: {machine}\nCommand: {command}\n\n{body}")
    if args.append:
        append_results("Local model: papertag vs the raw llama.cpp server (issue 4, benchmark 2)",
                       command, body, machine=machine)
        print("\nappended to bench/RESULTS.md")


if __name__ == "__main__":
    main()
