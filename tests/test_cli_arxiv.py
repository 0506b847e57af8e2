"""`papertag arxiv QUERY`: the command line over Library.fetch_arxiv, against tests/fake_arxiv.py. The courtesy
interval and retry backoff are shrunk here (the fake-clock tests in test_arxiv_fetch.py check the real ones)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from fake_arxiv import ALL_IDS, FakeArxiv
from papertag import arxiv_api
from fake_openai import FakeOpenAI
from test_cli import cli

QUERY = "cat:cs.CL AND abs:benchmark"


@pytest.fixture(autouse=True)
def quick_and_small_pages(monkeypatch):
    monkeypatch.setattr(arxiv_api, "COURTESY_INTERVAL_S", 0.01)
    monkeypatch.setattr(arxiv_api, "RETRY_BASE_S", 0.01)
    monkeypatch.setattr(arxiv_api, "PAGE_SIZE", 3)  # the recorded pages' size


def arxiv(fake_server, server, *extra, env=None):
    return cli("arxiv", QUERY, "--arxiv-url", server.url, "--model", "openai:fake", "--base-url",
               fake_server.base_url, *extra, env=env)


def test_fetches_pages_and_tags_them_like_ingest(fake_server):
    with FakeArxiv() as server:
        result = arxiv(fake_server, server, "--json")
        assert server.starts == [0, 3, 6]
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["papers"], report["extracted"], report["failed"]) == (7, 7, 0) and fake_server.calls == 7
    assert "papertag arxiv" in result.stdout or result.stdout.startswith("{")
    assert "fetched results 1-3 of 7 from arXiv" in result.stderr and "results 7-7 of 7" in result.stderr
    rows = json.loads(cli("sql", "SELECT id, source FROM papers ORDER BY id DESC", "--json").stdout)
    assert [row["id"] for row in rows] == ALL_IDS
    assert {row["source"] for row in rows} == {f"{server.url} (search_query={QUERY})"}


def test_max_and_dates(fake_server):
    with FakeArxiv() as server:
        result = arxiv(fake_server, server, "--max", "4", "--since", "2024-11-27", "--json")
        assert [(params["start"], params["max_results"]) for params in server.requests] == [("0", "3"), ("3", "1")]
        # No --until: the range is open up to today.
        assert re.fullmatch(re.escape(f"({QUERY}) AND submittedDate:[202411270000 TO ") + r"\d{8}2359\]",
                            server.requests[0]["search_query"])
    assert result.exit_code == 0, result.output
    # Four results asked; three were first submitted on or after the 27th.
    assert json.loads(result.stdout)["papers"] == 3
    assert "selected 3 papers; 1 left out by --category, --since or --until" in result.stderr


def test_the_url_comes_from_the_environment(fake_server):
    with FakeArxiv() as server:
        result = cli("arxiv", QUERY, "--max", "2", "--model", "openai:fake", "--base-url", fake_server.base_url,
                     env={"PAPERTAG_ARXIV_URL": server.url})
        assert server.starts == [0]
    assert result.exit_code == 0, result.output


def test_a_503_is_retried_and_a_failing_api_resumes_where_it_stopped(fake_server):
    with FakeArxiv(script={0: [(503, {"retry-after": "0"})], 3: [(503, {})] * 5}) as server:
        result = arxiv(fake_server, server)
        assert server.starts == [0, 0, 3, 3, 3, 3, 3]
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "waiting the arXiv API: HTTP 503; asking again in 0 s (attempt 2 of 5)" in result.stderr
    assert result.stderr.splitlines()[-2:] == [  # the error is one line, with no blank line before it
        "waiting the arXiv API: HTTP 503; asking again in 0 s (attempt 5 of 5)",
        f"error: the arXiv API answered HTTP 503 5 times ({server.url}); try again later"]
    assert fake_server.calls == 0  # nothing tagged, the first page kept

    with FakeArxiv() as server:
        rerun = arxiv(fake_server, server, "--json")
        assert server.starts == [3, 6]  # only what is missing
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["papers"] == 7 and fake_server.calls == 7


@pytest.mark.parametrize("args, message", [
    (["--arxiv-url", "ftp://example.org/api"], "--arxiv-url must be an http:// or https:// URL"),
    (["--since", "2024-13-01"], "--since '2024-13-01' is not a date"),
    (["--until", "2024-01-01", "--since", "2024-02-01"], "--since 2024-02-01 is after --until 2024-01-01"),
    (["--max", "0"], "Invalid value for '--max'"),
])
def test_bad_options_are_one_line_and_write_nothing(fake_server, tmp_path, args, message):
    result = cli("arxiv", QUERY, "--model", "openai:fake", "--base-url", fake_server.base_url, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert fake_server.calls == 0 and not (tmp_path / "papertag.duckdb").exists()


def test_an_empty_query_is_one_line(tmp_path):
    result = cli("arxiv", "  ", "--model", "openai:fake", "--arxiv-url", "http://127.0.0.1:9/api/query")
    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: the arXiv query is empty (for example: 'cat:cs.CL AND abs:benchmark')")
    assert not (tmp_path / "papertag.duckdb").exists()


def test_a_bad_url_in_the_environment_is_one_line(fake_server):
    result = cli("arxiv", QUERY, "--model", "openai:fake", env={"PAPERTAG_ARXIV_URL": "export.arxiv.org"})
    assert result.exit_code == 2 and "PAPERTAG_ARXIV_URL must be an http:// or https:// URL" in result.stderr


def test_help_explains_the_query_and_resuming():
    result = cli("arxiv", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())  # the words, without rich's boxes and wrapping
    for words in ("cat:cs.CL AND abs:benchmark", "one request every 3 seconds", "Retry-After", "--max",
                  "fetches only the pages still missing", "PAPERTAG_ARXIV_URL"):
        assert words in text, words


def test_ctrl_c_while_fetching_then_the_rerun_fetches_only_the_missing_pages(tmp_path):
    # A real process (the real 3 s interval): Ctrl-C while it waits for the second page.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENAI")}
    with FakeOpenAI() as model, FakeArxiv(hold={3}) as server:
        command = [sys.executable, "-m", "papertag", "arxiv", QUERY, "--db", str(tmp_path / "run.duckdb"),
                   "--arxiv-url", server.url, "--model", "openai:fake", "--base-url", model.base_url, "--json"]
        # Started with SIGINT's default action, as in test_interrupt.py, so Ctrl-C reaches it from any shell.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 30
        while len(server.requests) < 2 and time.monotonic() < deadline:  # the first page is stored by then
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stderr
        assert "interrupted" in stderr and "run the same command again to continue" in stderr
        assert "Traceback" not in stderr and json.loads(stdout)["interrupted"] is True

        with FakeArxiv() as again:
            rerun = subprocess.run([again.url if part == server.url else part for part in command],
                                   capture_output=True, text=True, env=env, timeout=60)
            assert again.starts == [3, 6]  # the first page was kept
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["papers"] == 7 and model.calls == 7
