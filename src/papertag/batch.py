"""The OpenAI Batch API path: submit papers as batch jobs, check on them, collect their results into the store.

Each request carries exactly what the live path sends (extract.chat_arguments and extract.response_format), and
each answer is validated and grounded the same way, so a batch extraction is stored like any other.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

import openai
from openai.types import Batch
from pydantic import ValidationError

from .backends import BackendOptions, Endpoint, open_endpoint
from .errors import BackendError, ConfigurationError
from .extract import (Extraction, chat_arguments, check_answer, describe, error_line, fit_abstract, max_abstract_chars,
                      response_format)
from .ingest import canonical_spec, prepare
from .machine import server_host
from .prompts import Prompt
from .settings import Settings
from .sources import Paper
from .store import Store

CHAT_ENDPOINT = "/v1/chat/completions"
# OpenAI's limits per batch: 50,000 requests and a 200 MB input file (kept under it with room to spare).
MAX_REQUESTS_PER_BATCH = 50_000
MAX_BYTES_PER_BATCH = 190 * 1024 * 1024
# Batch statuses (https://platform.openai.com/docs/api-reference/batch/object). Expired and cancelled batches
# still return the requests they finished, so they are collected like completed ones.
WITH_RESULTS = {"completed", "expired", "cancelled"}
FAILED = "failed"  # the input was rejected; there are no results


@dataclass
class SubmitReport:
    papers: int = 0
    new_or_changed: int = 0
    cached: int = 0  # already tagged by this model and prompt, or waiting in an uncollected batch
    rechecked: int = 0  # stored answers re-validated under new rules, as ingest does
    submitted: int = 0
    truncated: int = 0
    batches: list[str] = field(default_factory=list)


@dataclass
class JobStatus:
    batch_id: str
    model: str
    status: str
    papers: int
    requests_completed: int
    requests_failed: int
    requests_total: int
    submitted_at: datetime
    error: str | None = None


@dataclass
class CollectReport:
    batch_id: str
    status: str
    outcome: str  # "collected", "pending" (not finished; collect again later) or "failed" (no results)
    extracted: int = 0
    failed: int = 0
    changed_since_submit: int = 0  # re-ingested with new text meanwhile: the answer is about the old text, not stored
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)  # (paper id, error)


def request_line(paper: Paper, model: str, prompt: Prompt, max_chars: int, schema_format: dict) -> dict:
    """One line of the batch input file: the live path's request for this paper, addressed by paper id."""
    abstract, _ = fit_abstract(paper.abstract, max_chars)
    body = {"model": model, **chat_arguments(prompt, paper.title, abstract), "response_format": schema_format}
    return {"custom_id": paper.id, "method": "POST", "url": CHAT_ENDPOINT, "body": body}


def submit(store: Store, papers: list[Paper], *, spec: str, prompt: Prompt, base_url: str | None = None,
           settings: Settings | None = None) -> SubmitReport:
    """Add the papers to the store and submit every one not yet tagged by this model and prompt as batch jobs."""
    spec = canonical_spec(spec)
    with _endpoint(spec, base_url, settings) as endpoint:  # a bad spec or missing key fails before anything is written
        # The same cache rule as ingest, plus papers already waiting in a batch.
        work = prepare(store, papers, spec, prompt)
        report = SubmitReport(papers=work.papers, new_or_changed=work.new_or_changed, cached=work.cached,
                              rechecked=work.rechecked)
        todo = work.todo
        waiting = store.waiting_batch_keys(spec, prompt.version)
        report.cached += sum((paper.id, paper.content_hash) in waiting for paper in todo)
        todo = [paper for paper in todo if (paper.id, paper.content_hash) not in waiting]
        if not todo:
            return report
        max_chars = max_abstract_chars(prompt, endpoint.context_tokens)
        report.truncated = sum(len(paper.abstract) > max_chars for paper in todo)
        schema_format = response_format()
        lines = [
            (paper, (json.dumps(request_line(paper, endpoint.model, prompt, max_chars, schema_format),
                                ensure_ascii=False) + "\n").encode())
            for paper in todo
        ]
        client = _client(endpoint)
        for chunk in _chunks(lines):
            created = _create_batch(client, b"".join(line for _, line in chunk))
            store.add_batch_job(created.id, created.input_file_id, model=spec, prompt_version=prompt.version,
                                base_url=endpoint.base_url, max_abstract_chars=max_chars,
                                papers=[paper for paper, _ in chunk], status=created.status)
            report.submitted += len(chunk)
            report.batches.append(created.id)
    return report


def status(store: Store, settings: Settings | None = None) -> list[JobStatus]:
    """Every uncollected job as the API sees it now."""
    statuses = []
    for job in store.uncollected_batch_jobs():
        batch = _retrieve(_job_client(job, settings), job)
        error = _batch_error(batch)
        store.update_batch_job(job["batch_id"], batch.status, error)
        counts = batch.request_counts
        statuses.append(JobStatus(
            batch_id=job["batch_id"], model=job["model"], status=batch.status, papers=len(job["papers"]),
            requests_completed=counts.completed if counts else 0, requests_failed=counts.failed if counts else 0,
            requests_total=counts.total if counts else 0, submitted_at=job["submitted_at"], error=error,
        ))
    return statuses


def collect(store: Store, prompt: Prompt, settings: Settings | None = None) -> list[CollectReport]:
    """Store the results of every finished, uncollected job; report the others. Each job is collected once."""
    reports = []
    for job in store.uncollected_batch_jobs():
        client = _job_client(job, settings)
        batch = _retrieve(client, job)
        error = _batch_error(batch)
        report = CollectReport(job["batch_id"], batch.status, "pending", error=error)
        reports.append(report)
        if batch.status not in WITH_RESULTS | {FAILED}:
            store.update_batch_job(job["batch_id"], batch.status, error)
            continue
        if batch.status == FAILED:
            report.outcome = "failed"  # nothing to store; its papers go into the next submit
        else:
            report.outcome = "collected"
            lines = _download(client, job, batch.output_file_id) + _download(client, job, batch.error_file_id)
            results = _results(store, job, batch.status, lines, report)
            # The answers were given to the job's prompt version; validation and grounding are today's.
            store.save(results, job["model"], dataclasses.replace(prompt, version=job["prompt_version"]))
        store.update_batch_job(job["batch_id"], batch.status, error, collected=True)
    store.refresh_read_tables()  # like the search index: a no-op unless a collected job changed what readers see
    store.refresh_search_index()
    return reports


def check_spec(spec: str, base_url: str | None = None, settings: Settings | None = None) -> None:
    """Fail on one line, before anything is written, if the spec cannot be used for batch jobs."""
    with _endpoint(canonical_spec(spec), base_url, settings):
        pass


def _endpoint(spec: str, base_url: str | None, settings: Settings | None):
    if spec.partition(":")[0] != "openai":
        raise ConfigurationError(f"batch jobs need an OpenAI model spec, openai:<model>, not {spec!r}")
    return open_endpoint(spec, BackendOptions(base_url=base_url, settings=settings or Settings.from_env()))


def _client(endpoint: Endpoint) -> openai.OpenAI:
    return openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key)


@contextmanager
def _api(doing: str) -> Iterator[None]:
    """An API failure becomes one line naming what was being done."""
    try:
        yield
    except openai.OpenAIError as error:
        raise BackendError(f"{doing}: {describe(error)}") from None


def _chunks(lines: list[tuple[Paper, bytes]]) -> Iterator[list[tuple[Paper, bytes]]]:
    chunk, size = [], 0
    for paper, line in lines:
        if chunk and (len(chunk) == MAX_REQUESTS_PER_BATCH or size + len(line) > MAX_BYTES_PER_BATCH):
            yield chunk
            chunk, size = [], 0
        chunk.append((paper, line))
        size += len(line)
    if chunk:
        yield chunk


def _create_batch(client: openai.OpenAI, data: bytes) -> Batch:
    with _api("uploading the batch input file"):
        uploaded = client.files.create(file=("papertag-batch.jsonl", data, "application/jsonl"), purpose="batch")
    with _api("creating the batch"):
        return client.batches.create(input_file_id=uploaded.id, endpoint=CHAT_ENDPOINT, completion_window="24h")


def _job_client(job: dict[str, Any], settings: Settings | None) -> openai.OpenAI:
    # The key comes from the settings (the environment) each time; only the base URL is stored.
    with _endpoint(job["model"], job["base_url"], settings) as endpoint:
        return _client(endpoint)


def _retrieve(client: openai.OpenAI, job: dict[str, Any]) -> Batch:
    with _api(f"checking batch {job['batch_id']}"):
        return client.batches.retrieve(job["batch_id"])


def _batch_error(batch: Batch) -> str | None:
    """Why a batch failed or stopped early, on one line."""
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        where = f" (line {first.line})" if first.line else ""
        return error_line(f"{first.code}: {first.message}{where}{more}")
    if batch.status in ("failed", "expired", "cancelled"):
        return f"batch {batch.status}"
    return None


def _download(client: openai.OpenAI, job: dict[str, Any], file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    with _api(f"downloading {file_id} of batch {job['batch_id']}"):
        text = client.files.content(file_id).text
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # a garbled line: its paper is recorded as having no result
    return lines


def _results(store: Store, job: dict[str, Any], batch_status: str, lines: list[dict], report: CollectReport) -> list[Extraction]:
    """One extraction per submitted paper whose text is unchanged: good, or failed with its error."""
    by_paper = {line.get("custom_id"): line for line in lines}
    missing = {"error": {"code": "no_result", "message": f"the {batch_status} batch returned nothing for this paper"}}
    submitted = {paper["id"]: paper["content_hash"] for paper in job["papers"]}
    current = store.papers_by_id(list(submitted))
    answered_on = server_host(job["base_url"])
    results = []
    for paper_id, content_hash in submitted.items():
        paper = current.get(paper_id)
        if paper is None or paper.content_hash != content_hash:
            report.changed_since_submit += 1
            continue
        result = extraction_from_line(by_paper.get(paper_id, missing), paper, job["max_abstract_chars"])
        result.answered_on = answered_on
        results.append(result)
        if result.ok:
            report.extracted += 1
        else:
            report.failed += 1
            report.failures.append((paper.id, result.error or "unknown error"))
        report.prompt_tokens += result.prompt_tokens
        report.completion_tokens += result.completion_tokens
    return results


def extraction_from_line(line: dict, paper: Paper, max_chars: int) -> Extraction:
    """Validate one output line with the live path's pydantic model and grounding."""
    abstract, truncated = fit_abstract(paper.abstract, max_chars)  # the abstract exactly as it was sent

    def failed(error: str, raw: str | None = None, usage: dict | None = None) -> Extraction:
        return Extraction(paper, None, raw, *_tokens(usage), 0.0, truncated, error_line(error))

    if line.get("error"):  # the request never ran, e.g. batch_expired
        return failed(f"{line['error'].get('code')}: {line['error'].get('message')}")
    response = line.get("response") or {}
    body = response.get("body") or {}
    if response.get("status_code") != 200:
        message = " ".join(str((body.get("error") or {}).get("message") or "no message").split())
        return failed(f"HTTP {response.get('status_code')}: {message}")
    usage = body.get("usage") or {}
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return failed("the response has no message", usage=usage)
    if choice.get("finish_reason") == "length":
        return failed("the answer hit the output token limit before the JSON was complete", content, usage)
    try:
        tags, dropped = check_answer(paper, content or "", abstract)
    except ValidationError as error:
        return failed(describe(error), content, usage)
    return Extraction(
        paper=paper, tags=tags, dropped=dropped, raw_response=content,
        prompt_tokens=_tokens(usage)[0], completion_tokens=_tokens(usage)[1],
        latency_s=0.0,  # a batched request has no latency of its own
        truncated=truncated,
    )


def _tokens(usage: dict | None) -> tuple[int, int]:
    """Prompt and completion tokens; a failed request's tokens are paid for too, so they are kept."""
    usage = usage or {}
    return usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
