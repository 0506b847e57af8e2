"""The OpenAI Batch API path against the fake Batch server on 127.0.0.1: submit → status → collect."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_batch import FakeBatchAPI, expired, http_error, not_json, schema_invalid
from papertag import batch
from papertag.backends import BackendOptions, open_endpoint
from papertag.cli import app
from papertag.extract import Extractor
from papertag.prompts import load_prompt
from papertag.sources import make_paper
from papertag.store import Store

runner = CliRunner()
PLANTED = "sk-planted-batch-secret-0123456789"


def cli(*args):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def submit(fake, *paths, extra=()):
    return cli("batch", "submit", *paths, "--model", "openai:gpt-test", "--base-url", fake.base_url, *extra)


def papers_file(tmp_path, count=4, name="papers.jsonl"):
    """Papers p0, p1, ... with known ids, so tests can script each one's answer."""
    path = tmp_path / name
    path.write_text("".join(
        json.dumps({"id": f"p{i}", "title": f"Method {i}: better agents",
                    "abstract": f"We propose method {i} and evaluate it on AgentBench and MT-Bench, improving both."}) + "\n"
        for i in range(count)
    ))
    return path


def extraction_rows(db=Path("papertag.duckdb")):
    store = Store(db)
    try:
        return store.con.execute(
            "SELECT paper_id, status, error, raw_response, prompt_tokens, completion_tokens, model FROM extractions ORDER BY paper_id"
        ).fetchall()
    finally:
        store.close()


def test_submit_status_collect_through_the_cli(sample_path):
    with FakeBatchAPI(statuses=["in_progress"] * 3 + ["completed"]) as fake:
        submitted = json.loads(submit(fake, sample_path, extra=["--json"]).stdout)
        assert (submitted["papers"], submitted["submitted"], submitted["cached"]) == (31, 31, 0)
        assert submitted["batches"] == ["batch_1"]
        assert fake.created == [{"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h"}]

        [job] = json.loads(cli("batch", "status", "--json").stdout)
        assert (job["batch_id"], job["status"], job["papers"], job["requests_total"]) == ("batch_1", "in_progress", 31, 31)
        assert "in_progress" in cli("batch", "status").stdout  # status is reported again, not consumed

        waiting = cli("batch", "collect")
        assert waiting.exit_code == 0 and "not finished" in waiting.stdout
        assert extraction_rows() == []

        [collected] = json.loads(cli("batch", "collect", "--json").stdout)
        assert (collected["outcome"], collected["extracted"], collected["failed"]) == ("collected", 31, 0)
        assert collected["prompt_tokens"] == 31 * 100  # usage from each response

        # Stored like any other extraction: the reading commands see them.
        summaries = cli("summaries").stdout.strip().splitlines()
        assert len(summaries) == 31 and all(" — " in line for line in summaries)
        found = json.loads(cli("query", "--benchmark", "agentbench", "--json").stdout)
        assert [row["title"] for row in found] == ["Agent Skill Acquisition for Large Language Models via CycleQD"]
        found = json.loads(cli("search", "CycleQD", "--json").stdout)  # collect rebuilt the search index
        assert found[0]["title"] == "Agent Skill Acquisition for Large Language Models via CycleQD"

        # Collecting again adds nothing and downloads nothing.
        rows, downloads = extraction_rows(), dict(fake.downloads)
        again = cli("batch", "collect", "--json")
        assert again.exit_code == 0 and json.loads(again.stdout) == []
        assert extraction_rows() == rows and fake.downloads == downloads
        assert json.loads(cli("batch", "status", "--json").stdout) == []

        # Submitting again costs nothing: every paper is done for this model and prompt.
        resubmitted = json.loads(submit(fake, sample_path, extra=["--json"]).stdout)
        assert (resubmitted["submitted"], resubmitted["cached"], resubmitted["batches"]) == (0, 31, [])
        assert len(fake.created) == 1


def test_batch_requests_are_exactly_what_the_live_path_sends(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("PAPERTAG_CONTEXT_TOKENS", "3000")  # small, so one abstract is truncated on both paths
    prompt = load_prompt()
    papers = [make_paper("Short: a paper", "We test on AgentBench. " * 3, "t", "short"),
              make_paper("Long: a paper", "A very long abstract about WebArena. " * 400, "t", "long")]
    with FakeBatchAPI() as fake:
        store = Store(tmp_path / "batch.duckdb")
        report = batch.submit(store, papers, spec="openai:gpt-test", prompt=prompt, base_url=fake.base_url)
        store.close()
        uploaded = fake.uploaded_lines()
    assert report.truncated == 1
    with open_endpoint("openai:gpt-test", BackendOptions(base_url=fake_server.base_url)) as endpoint:
        extractor = Extractor(endpoint, prompt)
        for paper in papers:
            assert extractor.extract(paper).ok
    assert [line["custom_id"] for line in uploaded] == ["short", "long"]
    for line, live in zip(uploaded, fake_server.requests):
        assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
        assert line["body"] == live  # messages, response_format, temperature, max_tokens and model
    assert uploaded[1]["body"]["messages"][-1]["content"] != uploaded[0]["body"]["messages"][-1]["content"]
    assert {"messages", "response_format", "temperature", "max_tokens", "model"} == set(uploaded[0]["body"])


def test_bad_answers_become_failed_extractions_with_one_line_errors(tmp_path):
    replies = {"p1": schema_invalid, "p2": not_json, "p3": http_error(400, "context length\nexceeded")}
    with FakeBatchAPI(replies=replies) as fake:
        submit(fake, papers_file(tmp_path, 5))
        result = cli("batch", "collect")
        assert result.exit_code == 1
        assert "3 failed" in result.stdout and "p3: HTTP 400: context length exceeded" in result.stderr
        rows = {row[0]: row for row in extraction_rows()}
        assert [rows[p][1] for p in ("p0", "p1", "p2", "p3", "p4")] == ["ok", "failed", "failed", "failed", "ok"]
        assert "domain" in rows["p1"][2] and "astrology" in rows["p1"][3]  # error names the field; raw answer kept
        assert (rows["p1"][4], rows["p1"][5]) == (90, 15)  # a failed answer's tokens are paid for, so recorded
        assert "Invalid JSON" in rows["p2"][2]
        assert rows["p3"][2] == "HTTP 400: context length exceeded"
        assert all("\n" not in row[2] for row in rows.values() if row[2])
        assert {row[6] for row in rows.values()} == {"openai:gpt-test"}
        shown = json.loads(cli("show", "p1", "--json").stdout)
        assert shown["extractions"][0]["status"] == "failed"

        # The failed papers go into the next batch; the good ones do not.
        fake.replies = {}
        resubmitted = json.loads(submit(fake, papers_file(tmp_path, 5), extra=["--json"]).stdout)
        assert [line["custom_id"] for line in fake.uploaded_lines()[5:]] == ["p1", "p2", "p3"]
        assert resubmitted["cached"] == 2
        assert cli("batch", "collect").exit_code == 0
    assert {row[1] for row in extraction_rows()} == {"ok"} and len(extraction_rows()) == 5


def test_expired_batch_keeps_finished_answers_and_records_the_rest(tmp_path):
    with FakeBatchAPI(statuses=["expired"], replies={"p1": expired}) as fake:
        submit(fake, papers_file(tmp_path, 3))
        [report] = json.loads(cli("batch", "collect", "--json").stdout)
    assert (report["status"], report["outcome"], report["extracted"], report["failed"]) == ("expired", "collected", 2, 1)
    assert report["error"] == "batch expired"
    rows = {row[0]: row for row in extraction_rows()}
    assert rows["p1"][1:3] == ("failed", "batch_expired: This request could not be executed before the completion window expired.")


def test_failed_batch_is_reported_and_its_papers_can_be_submitted_again(tmp_path):
    path = papers_file(tmp_path, 2)
    with FakeBatchAPI(statuses=["failed"]) as fake:
        submit(fake, path)
        [job] = json.loads(cli("batch", "status", "--json").stdout)
        assert job["status"] == "failed" and "invalid_json_line" in job["error"]
        result = cli("batch", "collect")
        assert result.exit_code == 1
        assert "batch_1: failed (invalid_json_line: This line is not parseable as valid JSON. (line 1))" in result.stdout
        assert extraction_rows() == []
        assert json.loads(submit(fake, path, extra=["--json"]).stdout)["batches"] == ["batch_2"]


def test_papers_waiting_in_a_batch_are_not_submitted_twice(tmp_path):
    with FakeBatchAPI(statuses=["in_progress"]) as fake:
        submit(fake, papers_file(tmp_path, 3))
        again = json.loads(submit(fake, papers_file(tmp_path, 4), extra=["--json"]).stdout)
        assert (again["cached"], again["submitted"]) == (3, 1)
        assert [line["custom_id"] for line in fake.uploaded_lines()] == ["p0", "p1", "p2", "p3"]


def test_many_papers_are_split_into_several_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "MAX_REQUESTS_PER_BATCH", 2)
    with FakeBatchAPI() as fake:
        report = json.loads(submit(fake, papers_file(tmp_path, 5), extra=["--json"]).stdout)
        assert report["batches"] == ["batch_1", "batch_2", "batch_3"]
        reports = json.loads(cli("batch", "collect", "--json").stdout)
    assert [r["extracted"] for r in reports] == [2, 2, 1]
    assert len(extraction_rows()) == 5


def test_a_paper_changed_since_submit_is_not_stored_with_its_old_answer(tmp_path):
    prompt = load_prompt()
    paper = make_paper("Old: title", "An abstract about AgentBench and more things.", "t", "p0")
    with FakeBatchAPI() as fake:
        store = Store(tmp_path / "batch.duckdb")
        batch.submit(store, [paper], spec="openai:gpt-test", prompt=prompt, base_url=fake.base_url)
        store.add_papers([make_paper("Old: title", "A rewritten abstract.", "t", "p0")])
        [report] = batch.collect(store, prompt)
        assert (report.outcome, report.changed_since_submit, report.extracted) == ("collected", 1, 0)
        assert store.con.execute("SELECT count(*) FROM extractions").fetchone()[0] == 0
        store.close()


def test_api_key_is_used_but_never_stored(tmp_path, sample_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    with FakeBatchAPI(statuses=["in_progress", "completed"]) as fake:
        outputs = [submit(fake, sample_path).output, cli("batch", "status", "--json").output,
                   cli("batch", "collect", "--json").output]
        assert set(fake.authorization) == {f"Bearer {PLANTED}"}
    assert not any(PLANTED in text for text in outputs)
    assert PLANTED.encode() not in (tmp_path / "papertag.duckdb").read_bytes()
    [job] = json.loads(cli("sql", "SELECT * FROM batch_jobs", "--json").stdout)
    assert PLANTED not in json.dumps(job) and job["base_url"] == fake.base_url


@pytest.mark.parametrize("spec, message", [
    ("local", "openai:<model>"),
    ("local:fast", "openai:<model>"),
    ("openai:", "needs a model name"),
    ("gpt-4o", "openai:<model>"),
])
def test_only_openai_specs_are_accepted(tmp_path, spec, message):
    result = cli("batch", "submit", papers_file(tmp_path), "--model", spec)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "papertag.duckdb").exists()


def test_missing_key_for_openai_itself_is_a_one_line_error(tmp_path):
    result = cli("batch", "submit", papers_file(tmp_path), "--model", "openai:gpt-4o-mini")
    assert result.exit_code == 2 and "OPENAI_API_KEY" in result.stderr
    assert not (tmp_path / "papertag.duckdb").exists()


def test_unreachable_api_is_a_one_line_error(tmp_path):
    with FakeBatchAPI() as fake:
        url = fake.base_url
    result = cli("batch", "submit", papers_file(tmp_path), "--model", "openai:gpt-test", "--base-url", url)
    assert result.exit_code == 2 and "uploading the batch input file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_status_and_collect_need_a_database():
    for command in ("status", "collect"):
        result = cli("batch", command)
        assert result.exit_code == 2 and "no database" in result.stderr


def test_every_batch_command_has_help():
    for command in ("submit", "status", "collect"):
        result = cli("batch", command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout
    assert "submit" in cli("batch", "--help").stdout


def test_batch_runs_no_sql_of_its_own():
    """All SQL lives in store.py and queries.py: batch.py asks the Store, never its connection."""
    import inspect

    source = inspect.getsource(batch)
    assert ".con." not in source and "execute(" not in source and "_now" not in source
