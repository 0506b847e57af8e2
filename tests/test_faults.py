"""Ingest against a server that fails in every way an OpenAI-compatible API can (tests/fault_server.py).

Retryable faults (HTTP 429/5xx, resets, timeouts, cut-off bodies) are retried with bounded exponential backoff;
a bad answer is re-asked by instructor; a fault that would repeat (HTTP 400, no choices, output cut at
max_tokens) fails its paper at once. Whatever happens, every paper ends up stored exactly once, as ok or as
failed with a one-line error, and a later run picks up exactly the failed ones.
"""

import json
import random
import time

import pytest
from typer.testing import CliRunner

from fault_server import FaultServer, always, by_title
from papertag.backends import BackendOptions, open_endpoint
from papertag.cli import app
from papertag.extract import Extractor
from papertag.prompts import load_prompt
from papertag.sources import make_paper
from reliability import record, stored_statuses
from test_ingest import run

TIMEOUT_S = 0.5  # PAPERTAG_TIMEOUT here; the fake answers in milliseconds
ATTEMPTS, ASKS = 5, 3  # Extractor's defaults: 5 tries for transient errors, each a first ask + 2 instructor re-asks

RETRIED, REASKED, FAILS, FINE = "retried", "re-asked", "fails at once", "fine"
# fault -> (how the client treats it, part of the stored error when it never stops, behaviour for the docs)
EXPECTED = {
    "429 Retry-After": (RETRIED, "HTTP 429", "retried after max(backoff, Retry-After); every worker pauses"),
    "429": (RETRIED, "HTTP 429", "retried with exponential backoff; every worker pauses"),
    "500": (RETRIED, "HTTP 500", "retried with exponential backoff"),
    "502": (RETRIED, "HTTP 502", "retried with exponential backoff"),
    "503": (RETRIED, "HTTP 503", "retried with exponential backoff; every worker pauses"),
    "connection reset": (RETRIED, "Connection reset by peer", "retried with exponential backoff"),
    "read timeout": (RETRIED, "timed out", "retried after PAPERTAG_TIMEOUT with exponential backoff"),
    "truncated body": (RETRIED, "peer closed connection", "HTTP body cut short: retried with exponential backoff"),
    "slow trickle": (FINE, None, "body dribbled out slowly: waited for, answer used"),
    "truncated json": (REASKED, "not valid JSON", "HTTP body is broken JSON: asked again, at most 3 asks"),
    "wrong types": (REASKED, "does not fit the schema", "re-asked with the validation errors, at most 3 asks"),
    "missing fields": (REASKED, "Field required", "re-asked with the validation errors, at most 3 asks"),
    "unknown domain": (REASKED, "domain", "re-asked with the validation errors, at most 3 asks"),
    "refusal text": (REASKED, "in prose, not JSON", "re-asked, at most 3 asks; the error quotes the model"),
    "refusal field": (REASKED, "model refused", "re-asked, at most 3 asks; the error quotes the refusal"),
    "empty choices": (FAILS, "No choices", "paper failed at once (nothing to re-ask about)"),
    "cut-off output": (FAILS, "max_tokens", "paper failed at once (the same prompt would be cut again)"),
    "400": (FAILS, "HTTP 400", "paper failed at once (the request itself is refused)"),
}
PERSISTENT = "; if it never stops the paper fails with a one-line error and --retry-failed picks it up"


def behaviour(fault: str) -> str:
    kind, _, text = EXPECTED[fault]
    return text + (PERSISTENT if kind in (RETRIED, REASKED) else "")


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch):
    monkeypatch.setenv("PAPERTAG_TIMEOUT", str(TIMEOUT_S))


def faulty(decide) -> FaultServer:
    return FaultServer(decide, hold_s=TIMEOUT_S * 4, trickle_gap_s=TIMEOUT_S / 10)


def expected_outcome(script: list[str]) -> tuple[bool, int]:
    """(succeeds, requests made) for a paper whose requests meet the faults in `script`, then good answers."""
    requests = 0
    for _attempt in range(ATTEMPTS):
        for _ask in range(ASKS):
            fault = script[requests] if requests < len(script) else "ok"
            requests += 1
            kind = EXPECTED[fault][0] if fault in EXPECTED else FINE
            if kind in (FINE, FAILS):
                return kind == FINE, requests
            if kind == RETRIED:
                break  # a new attempt, with instructor's re-asks counted afresh
        else:
            return False, requests  # re-asks used up
    return False, requests


def papers(count: int, prefix: str = "Paper"):
    return [make_paper(f"{prefix} {i}", f"Abstract of {prefix.lower()} {i}, evaluated on MT-Bench.", "x", f"{prefix.lower()}-{i}")
            for i in range(count)]


def check_run(db_path, server, batch, scripts, report) -> set[str]:
    """Everything the issue asks of one run; returns the ids that failed."""
    outcomes = {paper.id: expected_outcome(scripts.get(paper.title, [])) for paper in batch}
    failed = {paper_id for paper_id, (ok, _) in outcomes.items() if not ok}
    assert {paper.title: server.attempts[paper.title] for paper in batch} == {
        paper.title: outcomes[paper.id][1] for paper in batch}  # bounded: no more requests than the policy allows
    assert (report.papers, report.extracted, report.failed) == (len(batch), len(batch) - len(failed), len(failed))
    assert {paper_id for paper_id, _ in report.failures} == failed
    assert stored_statuses(db_path) == {  # every paper exactly once, with its outcome
        paper.id: ["failed" if paper.id in failed else "ok"] for paper in batch}
    return failed


@pytest.mark.parametrize("fault", EXPECTED)
def test_each_fault_alone(fault, db_path):
    batch = papers(6)
    once, forever = batch[0], batch[1]  # the others never meet the fault
    scripts = {once.title: [fault], forever.title: [fault] * 20}
    with faulty(by_title(scripts)) as server:
        report = run(db_path, batch, server)
    statuses = stored_statuses(db_path)
    kind, error, _ = EXPECTED[fault]
    record(fault, behaviour(fault), cases=2, lost=sum(not statuses.get(paper.id) for paper in (once, forever)))

    failed = check_run(db_path, server, batch, scripts, report)
    assert failed == {FAILS: {once.id, forever.id}, FINE: set()}.get(kind, {forever.id})
    for _, message in report.failures:
        assert error in message and "\n" not in message and len(message) <= 500


def test_backoff_is_exponential_jittered_and_capped(monkeypatch):
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)  # record the waits instead of waiting
    cap = 3.0
    with faulty(always("500")) as server, open_endpoint("openai:fake", BackendOptions(base_url=server.base_url)) as endpoint:
        result = Extractor(endpoint, load_prompt(), max_wait_s=cap).extract(papers(1)[0])
    assert not result.ok and server.calls == ATTEMPTS
    assert len(sleeps) == ATTEMPTS - 1
    for retry, seconds in enumerate(sleeps):  # 0.5 s doubling, up to 1 s of jitter, never above the cap
        assert min(0.5 * 2 ** retry, cap) <= seconds <= min(0.5 * 2 ** retry + 1, cap)


@pytest.mark.parametrize("retry_after, expected_wait", [("2", 2.0), ("3600", 4.0)])
def test_retry_after_is_honoured_up_to_four_times_the_cap(monkeypatch, retry_after, expected_wait):
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    with FaultServer(always("429 Retry-After"), retry_after=retry_after) as server, \
            open_endpoint("openai:fake", BackendOptions(base_url=server.base_url)) as endpoint:
        result = Extractor(endpoint, load_prompt(), max_wait_s=1.0).extract(papers(1)[0])
    assert not result.ok and server.calls == ATTEMPTS
    assert max(sleeps) <= 4.0  # a server asking for an hour does not stall the run for an hour
    assert sum(seconds >= expected_wait - 0.1 for seconds in sleeps) >= ATTEMPTS - 1


MIXED_SEED = 20240605


def test_mixed_faults_across_200_papers_then_retry_failed(db_path):
    rng = random.Random(MIXED_SEED)
    batch = papers(200, "Mixed paper")
    faults = list(EXPECTED)
    scripts = {paper.title: [rng.choice(faults) for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 6]))] for paper in batch}
    with faulty(by_title(scripts)) as server:
        report = run(db_path, batch, server)
    statuses = stored_statuses(db_path)
    for fault in faults:  # one row per fault: papers that met it in this run
        met = [paper for paper in batch if fault in server.faults_served(paper.title)]
        record(fault, behaviour(fault), cases=len(met), lost=sum(not statuses.get(paper.id) for paper in met))
    record("mixed faults, seeded, 200 papers", "each paper as its fault script predicts; then --retry-failed",
           cases=len(batch), lost=sum(not statuses.get(paper.id) for paper in batch))

    failed = check_run(db_path, server, batch, scripts, report)
    assert 20 < len(failed) < 180  # the seed gives a real mix
    with FaultServer() as healthy:
        retried = run(db_path, batch, healthy, retry_failed_only=True)
        assert sorted(healthy.attempts) == sorted(paper.title for paper in batch if paper.id in failed)
        assert set(healthy.attempts.values()) == {1}
    assert (retried.extracted, retried.failed) == (len(failed), 0)
    assert stored_statuses(db_path) == {paper.id: ["ok"] for paper in batch}


def invoke(*args):
    """The CLI, in-process. Whatever the outcome, it is an exit code and messages, never a traceback."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result


def ingest_cli(input_path, db_path, server, *extra):
    result = invoke("ingest", input_path, "--db", db_path, "--model", "openai:fake", "--base-url", server.base_url,
                    "--json", *extra)
    return result.exit_code, json.loads(result.stdout)


def test_cli_exit_codes_counts_and_reruns_pick_up_exactly_the_failed(tmp_path, db_path):
    batch = papers(12, "CLI paper")
    input_path = tmp_path / "papers.jsonl"
    input_path.write_text("".join(json.dumps({"id": p.id, "title": p.title, "abstract": p.abstract}) + "\n" for p in batch))
    title = {paper.id: paper.title for paper in batch}
    scripts = {batch[0].title: ["503"], batch[1].title: ["connection reset"], batch[2].title: ["read timeout"],
               batch[3].title: ["wrong types"], batch[4].title: ["slow trickle"],
               batch[5].title: ["400"], batch[6].title: ["unknown domain"] * 3, batch[7].title: ["empty choices"]}
    failing = {batch[5].id, batch[6].id, batch[7].id}

    with faulty(by_title(scripts)) as server:
        code, report = ingest_cli(input_path, db_path, server)
    assert code == 1
    assert (report["papers"], report["extracted"], report["failed"]) == (12, 9, 3)
    assert {failure["id"] for failure in report["failures"]} == failing

    with faulty(by_title({batch[6].title: ["400"]})) as server:  # one of them fails again
        code, report = ingest_cli(input_path, db_path, server, "--retry-failed")
        assert sorted(server.attempts) == sorted(title[paper_id] for paper_id in failing)
    assert code == 1 and (report["extracted"], report["failed"]) == (2, 1)

    with FaultServer() as server:  # a plain re-run also picks up exactly what failed
        code, report = ingest_cli(input_path, db_path, server)
        assert list(server.attempts) == [batch[6].title]
    assert code == 0 and (report["cached"], report["extracted"], report["failed"]) == (11, 1, 0)

    with FaultServer() as server:
        code, report = ingest_cli(input_path, db_path, server)
        assert server.calls == 0
    assert code == 0 and report["cached"] == 12
    statuses = stored_statuses(db_path)
    record("CLI: faults, --retry-failed, plain re-run", "exit 1 while any paper failed, 0 after; reruns ask only failed papers",
           cases=len(batch), lost=sum(not statuses.get(paper.id) for paper in batch))
    assert statuses == {paper.id: ["ok"] for paper in batch}
