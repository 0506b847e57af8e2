"""The main job: papers → (skip what is done) → extract concurrently → store in small batches."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

from .backends import BackendOptions, open_endpoint
from .embed import embed_missing
from .extract import Extraction, Extractor, recheck
from .prompts import Prompt
from .sources import Paper
from .store import DatabaseBusy, Store

FLUSH_EVERY_S = 1.0  # an interrupted run loses at most about this much finished work
FLUSH_EVERY_N = 64  # "a few dozen": bounds the loss when papers finish faster than one per 15 ms
BUSY_WAIT_S = 0.2  # how long a flush waits for readers before keeping its papers for the next one


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a run; every finished paper was committed. Carries the run's report."""

    def __init__(self, report: "IngestReport"):
        super().__init__()
        self.report = report


@dataclass
class IngestReport:
    papers: int = 0
    new_or_changed: int = 0
    cached: int = 0
    rechecked: int = 0  # stored answers re-validated under new rules, without an LLM call
    extracted: int = 0
    failed: int = 0
    truncated: int = 0
    dropped_tags: int = 0  # removed by grounding: a hallucination rate
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_seconds: float = 0.0  # summed request latency: with requests in parallel, more than the time it took
    extraction_seconds: float = 0.0  # wall time of the extraction phase (after the endpoint is up)
    embedded: int = 0  # paper texts given a vector for 'papertag similar' (new texts only)
    embedding_seconds: float = 0.0
    wall_seconds: float = 0.0
    search_index_rebuilt: bool = False
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)  # (paper id, error)
    input_problems: list[str] = field(default_factory=list)  # input records skipped, each naming its file and line

    @property
    def succeeded(self) -> bool:
        """Every paper tagged and no input record skipped (the CLI's exit code 0)."""
        return not self.failed and not self.input_problems

    def as_dict(self) -> dict[str, Any]:
        """The counts and the per-paper figures of the run, as printed and as JSON."""
        calls = self.extracted + self.failed

        def per_call(total: float, digits: int) -> float:
            return round(total / calls, digits) if calls else 0

        return {
            "papers": self.papers,
            "new_or_changed": self.new_or_changed,
            "cached": self.cached,
            "rechecked": self.rechecked,
            "extracted": self.extracted,
            "failed": self.failed,
            "truncated": self.truncated,
            "dropped_tags": self.dropped_tags,
            "skipped_input_lines": len(self.input_problems),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_per_paper": per_call(self.prompt_tokens + self.completion_tokens, 1),
            # Wall time: with requests in parallel, summed latency would count the same second several times.
            "seconds_per_paper": per_call(self.extraction_seconds, 2),
            "mean_request_seconds": per_call(self.llm_seconds, 2),
            "embedded": self.embedded,
            "embedding_seconds": round(self.embedding_seconds, 2),
            "wall_seconds": round(self.wall_seconds, 2),
            "interrupted": self.interrupted,
            "failures": [{"id": paper_id, "error": error} for paper_id, error in self.failures],
        }

    def count(self, result: Extraction) -> None:
        if result.ok:
            self.extracted += 1
        else:
            self.failed += 1
            self.failures.append((result.paper.id, result.error or "unknown error"))
        self.truncated += result.truncated
        self.dropped_tags += len(result.dropped)
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.llm_seconds += result.latency_s


def canonical_spec(spec: str) -> str:
    return spec.rstrip(":")


def plan(store: Store, papers: list[Paper], spec: str, prompt: Prompt, *, force: bool, retry_failed_only: bool) -> list[Paper]:
    if retry_failed_only:
        failed = store.failed_paper_ids(spec, prompt)
        return [paper for paper in papers if paper.id in failed]
    if force:
        return papers
    done = store.done_keys(spec, prompt)
    return [paper for paper in papers if (paper.id, paper.content_hash) not in done]


def recheck_stored(store: Store, todo: list[Paper], spec: str, prompt: Prompt) -> tuple[list[Extraction], list[Paper]]:
    """Answers the model already gave for the same text (under this id or another, under older validation or
    grounding rules) are re-checked instead of asking again. Returns the re-checked extractions and the papers
    that still need the model."""
    answers = store.reusable_answers(spec, prompt, [paper.content_hash for paper in todo])
    rechecked, remaining = [], []
    for paper in todo:
        raw, domain_scores, answered_on = answers.get(paper.content_hash, (None, None, None))
        result = recheck(paper, raw, domain_scores, answered_on) if raw else None
        if result:
            rechecked.append(result)
        else:
            remaining.append(paper)
    return rechecked, remaining


@dataclass
class Work:
    """What a run still has to ask the model, once the store has the papers and the cache has answered."""

    todo: list[Paper]
    papers: int
    new_or_changed: int
    cached: int
    rechecked: int
    dropped_tags: int  # by grounding, in the re-checked answers


def prepare(store: Store, papers: list[Paper], spec: str, prompt: Prompt, *,
            force: bool = False, retry_failed_only: bool = False) -> Work:
    """Store the papers, skip what is done, re-check stored answers: shared by ingest and batch submit."""
    # One paper, one row: the same paper twice in the input, or already stored under another source, costs one call.
    resolved = store.resolve_papers(papers)
    papers = resolved.papers
    new_or_changed = store.add_papers(papers, resolved.absorbed)
    todo = plan(store, papers, spec, prompt, force=force, retry_failed_only=retry_failed_only)
    cached = len(papers) - len(todo) if not retry_failed_only else 0
    rechecked: list[Extraction] = []
    if todo and not force:
        rechecked, todo = recheck_stored(store, todo, spec, prompt)
        store.save(rechecked, spec, prompt)
    return Work(todo, len(papers), new_or_changed, cached, len(rechecked),
                sum(len(result.dropped) for result in rechecked))


def ingest(
    store: Store,
    papers: list[Paper],
    *,
    spec: str,
    prompt: Prompt,
    options: BackendOptions | None = None,
    concurrency: int | None = None,
    force: bool = False,
    retry_failed_only: bool = False,
    on_start: Callable[[int], None] = lambda total: None,
    on_result: Callable[[Extraction], None] = lambda result: None,
    on_wait: Callable[[str], None] = lambda message: None,
    on_embed: Callable[[int], None] = lambda count: None,
    make_extractor: Callable = Extractor,
    vectors: bool = True,
) -> IngestReport:
    """Tag the papers not yet done. On Ctrl-C, every finished paper is committed, then RunInterrupted (a
    KeyboardInterrupt carrying the report) is raised."""
    started = time.perf_counter()
    spec = canonical_spec(spec)
    work = prepare(store, papers, spec, prompt, force=force, retry_failed_only=retry_failed_only)
    store.release()  # readers may open the database while the model loads and works
    report = IngestReport(papers=work.papers, new_or_changed=work.new_or_changed, cached=work.cached,
                          rechecked=work.rechecked, dropped_tags=work.dropped_tags)
    todo = work.todo
    on_start(len(todo))
    if todo:
        # The endpoint (and the local model's load) is only paid for when there is work.
        with open_endpoint(spec, dataclasses.replace(options or BackendOptions(), papers=len(todo))) as endpoint:
            extractor = make_extractor(endpoint, prompt)
            extraction_started = time.perf_counter()
            _run(store, todo, extractor, concurrency or endpoint.concurrency, spec, prompt, report, on_result, on_wait)
            if report.interrupted:
                # Raised inside the endpoint's block, so a backend can skip a slow orderly stop: the caller exits.
                raise RunInterrupted(report)
            report.extraction_seconds = time.perf_counter() - extraction_started
    if vectors:
        # After the tagging, so the model's requests start at once; new texts only (about 0.1 s each here).
        embedding_started = time.perf_counter()
        try:
            report.embedded = embed_missing(store, on_start=on_embed)
        except KeyboardInterrupt:
            report.interrupted = True  # vectors already committed are kept; the next run embeds the rest
            raise RunInterrupted(report) from None
        report.embedding_seconds = time.perf_counter() - embedding_started
    if not report.interrupted:
        # An interrupted run leaves the index as it was; the next run sees the changed papers and indexes them.
        report.search_index_rebuilt = refresh_search_index(store, on_wait)
    report.wall_seconds = time.perf_counter() - started
    return report


def refresh_search_index(store: Store, on_wait: Callable[[str], None] = lambda message: None) -> bool:
    """Update the keyword-search index with the papers whose current record changed; like the last flush, it waits for
    readers as long as it takes."""
    while True:
        try:
            store.open()
            store.refresh_read_tables()  # the derived read tables' sort and facet counts (read_tables.py)
            return store.refresh_search_index()
        except DatabaseBusy as busy:
            on_wait(f"{busy}; the search index is updated once it is free")
        finally:
            store.release()


def same_text_groups(todo: list[Paper]) -> tuple[list[Paper], dict[str, list[Paper]]]:
    """One paper per content hash goes to the model; the others (the same text under another id) get a copy of
    its answer. Returns the papers to send and, per hash, the papers waiting for it."""
    leaders: dict[str, Paper] = {}
    followers: dict[str, list[Paper]] = {}
    for paper in todo:
        if paper.content_hash in leaders:
            followers.setdefault(paper.content_hash, []).append(paper)
        else:
            leaders[paper.content_hash] = paper
    return list(leaders.values()), followers


def copy_for(result: Extraction, paper: Paper) -> Extraction:
    """The same answer for the same text under another id; it cost no tokens or time of its own."""
    return dataclasses.replace(result, paper=paper, prompt_tokens=0, completion_tokens=0, latency_s=0.0)


def _run(store, todo, extractor, concurrency, spec, prompt, report, on_result, on_wait) -> None:
    pending_writes: list[Extraction] = []
    last_flush = time.monotonic()

    def flush(*, until_done: bool) -> None:
        """Commit the finished papers and release the file. While a reader holds it, keep them in memory and try
        again at the next flush; the last flush waits as long as it takes."""
        nonlocal last_flush
        last_flush = time.monotonic()
        while pending_writes:
            try:
                store.open(wait_s=None if until_done else BUSY_WAIT_S)
                store.save(pending_writes, spec, prompt)
                pending_writes.clear()
            except DatabaseBusy as busy:
                if not until_done:
                    return
                on_wait(f"{busy}; {len(pending_writes)} finished papers wait in memory")
            finally:
                store.release()

    send, waiting = same_text_groups(todo)
    queue = iter(send)
    executor = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="extract")
    in_flight: set[Future] = set()
    try:
        # Bounded in-flight work: at most `concurrency` papers are being extracted at once.
        for paper in queue:
            in_flight.add(executor.submit(extractor.extract, paper))
            if len(in_flight) >= concurrency:
                break
        while in_flight:
            done, in_flight = wait(in_flight, timeout=FLUSH_EVERY_S, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                copies = [copy_for(result, paper) for paper in waiting.get(result.paper.content_hash, [])]
                for finished in (result, *copies):
                    report.count(finished)
                    pending_writes.append(finished)
                    on_result(finished)
                next_paper = next(queue, None)
                if next_paper is not None:
                    in_flight.add(executor.submit(extractor.extract, next_paper))
            if len(pending_writes) >= FLUSH_EVERY_N or time.monotonic() - last_flush >= FLUSH_EVERY_S:
                flush(until_done=False)
    except KeyboardInterrupt:
        report.interrupted = True  # the caller reports it; finished papers are flushed below
    finally:
        # Workers stuck in a request are abandoned, not joined: the caller exits without waiting for them.
        executor.shutdown(wait=False, cancel_futures=True)
        flush(until_done=True)  # keep every finished paper, whatever stopped the run
