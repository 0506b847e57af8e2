"""What papertag prints and stores stays clean: hostile ids and file names cannot drive the terminal, a rejected
API key is neither echoed nor retried 200 times, stdin is an input, a failed eval leaves no file behind, and the
ingest summary's time per paper is wall time."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI, Reply, completion, default_responder, rule_based_tags
from papertag.cli import app
from papertag.queries import Reader
from papertag.text import clean_text
from reliability import lost_papers, record, stored_statuses

ABSTRACT = ("We study how research-paper tagging copes with hostile input files and report results on MT-Bench, "
            "showing that every paper is either stored or rejected with a clear message, and nothing else happens.")
# What must never reach a terminal: ESC, BEL and the other C0/C1 controls (tab and newline aside) and bidi marks.
# Written out here rather than imported, so the test does not check the code with itself.
UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def papertag(*args, cwd, input=None, env=None):
    """The CLI as a user runs it: a real process, its exit code and both output streams."""
    result = subprocess.run([sys.executable, "-m", "papertag", *map(str, args)], cwd=cwd, input=input,
                            capture_output=True, text=True, encoding="utf-8", env={**os.environ, **(env or {})})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_printable(result, what):
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        found = UNPRINTABLE.findall(text)
        assert not found, f"{what}: {name} has {found!r}: {text[:500]!r}"


# ---- 2. a rejected API key -----------------------------------------------------------------------------------------

KEY = "planted-key-0123456789abcdef"  # no sk- prefix: only the configured value can find it


def rejecting(request):
    """A gateway that quotes the key it rejected, and other key-shaped strings, in its error body."""
    return Reply(401, {"error": {"message": f"Incorrect API key provided: {KEY}. Sent headers: Bearer {KEY[::-1]} "
                                            "and sk-proj-abc123DEF456ghi789 for key sk-plan****cdef",
                                 "type": "invalid_request_error"}})


def test_rejected_key_is_redacted_and_stops_the_run(tmp_path, sample_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    db = tmp_path / "key.duckdb"
    with FakeOpenAI(rejecting) as server:
        result = papertag("ingest", sample_path, "--db", db, "--model", "openai:fake", "--base-url", server.base_url,
                          "--concurrency", "4", cwd=tmp_path)
        sent = server.calls
    statuses = stored_statuses(db)
    with Reader(db) as reader:
        errors = [error for (error,) in reader.con.execute("SELECT error FROM extractions").fetchall()]
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("key.duckdb*"))
    with FakeOpenAI() as server:  # the key fixed: a re-run does every paper, including the ones never sent
        rerun = papertag("ingest", sample_path, "--db", db, "--model", "openai:fake", "--base-url", server.base_url,
                         "--json", cwd=tmp_path)
    rerun_report = json.loads(rerun.stdout)

    record("API key rejected (HTTP 401 quoting the key)", f"key redacted from stored and printed errors; run stopped "
           f"after {sent} of {len(statuses)} requests with one line, exit 2; the rest stay pending for a re-run",
           cases=len(statuses), lost=len(statuses) - rerun_report["extracted"] - rerun_report["cached"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: the server rejected the API key (401): check OPENAI_API_KEY"
    assert sent <= 4 + 3 and len(errors) <= sent
    assert all(rows in ([], ["failed"]) for rows in statuses.values()) and len(statuses) == 31
    for text in [result.stdout, result.stderr, *errors]:
        assert KEY not in text and KEY[::-1] not in text and "sk-proj-abc123" not in text and "sk-plan****" not in text
    assert KEY.encode() not in db_bytes and KEY[::-1].encode() not in db_bytes
    assert errors and all("Incorrect API key provided: [redacted]" in error for error in errors)
    assert rerun.returncode == 0 and rerun_report["extracted"] == 31


def test_auth_failures_after_a_success_do_not_stop_the_run(tmp_path, sample_path, monkeypatch):
    """A key that worked once is not the problem: a gateway refusing single requests fails only those papers."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    answered = []

    def first_ok_then_403(request):
        answered.append(1)
        if len(answered) == 1:
            return default_responder(request)
        return Reply(403, {"error": {"message": f"forbidden for {KEY}"}})

    with FakeOpenAI(first_ok_then_403) as server:
        result = papertag("ingest", sample_path, "--db", tmp_path / "a.duckdb", "--model", "openai:fake",
                          "--base-url", server.base_url, "--concurrency", "1", "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    record("HTTP 403 after a success", "each paper fails on its own; the run goes on", cases=31,
           lost=31 - report["extracted"] - report["failed"])
    assert result.returncode == 1 and (report["extracted"], report["failed"]) == (1, 30)
    assert KEY not in result.stdout + result.stderr


