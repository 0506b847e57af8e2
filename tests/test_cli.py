import csv
import io
import json
import subprocess
import sys

import duckdb
import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI, Reply, default_responder
from papertag.cli import app
from reliability import record

runner = CliRunner()


def cli(*args, env=None):
    return runner.invoke(app, [str(arg) for arg in args], env=env, catch_exceptions=False)


def ingest(server, *paths, extra=()):
    return cli("ingest", *paths, "--model", "openai:fake", "--base-url", server.base_url, *extra)


def test_main_job_on_sample_then_query_agentbench(fake_server, sample_path):
    result = ingest(fake_server, sample_path)
    assert result.exit_code == 0, result.output
    summaries = cli("summaries").stdout.strip().splitlines()
    assert len(summaries) == 31 and all(" — " in line for line in summaries)
    found = json.loads(cli("query", "--benchmark", "agentbench", "--json").stdout)
    assert [row["title"] for row in found] == ["Agent Skill Acquisition for Large Language Models via CycleQD"]


def test_rerun_reports_everything_cached(fake_server, sample_path):
    ingest(fake_server, sample_path)
    report = json.loads(ingest(fake_server, sample_path, extra=["--json"]).stdout)
    assert (report["cached"], report["extracted"], report["failed"]) == (31, 0, 0)
    assert fake_server.calls == 31


def test_every_command_has_help():
    for command in ("ingest", "arxiv", "summaries", "query", "search", "show", "tags", "export", "sql", "serve"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.txt", b"", "file is empty"),
        ("boiler.txt", b"Subscribe\n\nNew\n", "no abstracts found"),
        ("binary.jsonl", b"\x00\x01\x02garbage", "binary"),
        ("utf16.csv", b"\xff\xfe\x00\xd8", "broken UTF-16"),  # a byte-order mark, then half a surrogate pair
        ("cols.csv", b"name,text\na,b\n", "missing column"),
    ],
)
def test_bad_input_is_one_line_error_and_writes_nothing(fake_server, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    result = ingest(fake_server, path)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "papertag.duckdb").exists()
    assert fake_server.calls == 0


def test_bad_file_among_good_ones_aborts_before_writing(fake_server, tmp_path, sample_path):
    (tmp_path / "empty.jsonl").write_text("")
    result = ingest(fake_server, sample_path, tmp_path / "empty.jsonl")
    assert result.exit_code == 2 and not (tmp_path / "papertag.duckdb").exists()


def test_bad_jsonl_line_is_reported_and_the_rest_ingested(fake_server, tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text('{"title": "A", "abstract": "aa"}\n{oops\n{"title": "B", "abstract": "bb"}\n')
    result = ingest(fake_server, path)
    assert result.exit_code == 1
    assert "line 2: not valid JSON" in result.stderr
    assert len(json.loads(cli("summaries", "--json").stdout)) == 2


def test_failed_paper_gives_exit_code_1(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text('{"title": "A", "abstract": "aa"}\n{"title": "B", "abstract": "bb"}\n')

    def responder(request):
        if "Title: B" in request["messages"][-1]["content"]:
            return Reply(400, {"error": {"message": "bad paper"}})
        return default_responder(request)

    with FakeOpenAI(responder) as server:
        result = ingest(server, path, extra=["--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["failed"] == 1 and "bad paper" in report["failures"][0]["error"]


def test_reading_commands_without_database(tmp_path):
    for args in (["summaries"], ["query", "--benchmark", "x"], ["show", "x"], ["tags"], ["export"], ["sql", "SELECT 1"]):
        result = cli(*args)
        assert result.exit_code == 2 and "no database" in result.stderr, args


def test_show_tags_export_and_sql(fake_server, sample_path, tmp_path):
    ingest(fake_server, sample_path)
    paper_id = json.loads(cli("query", "--benchmark", "AgentBench", "--json").stdout)[0]["id"]
    shown = json.loads(cli("show", paper_id[:8], "--json").stdout)
    assert shown["id"] == paper_id and shown["benchmarks"] == ["AgentBench"]
    assert "AgentBench" in cli("show", paper_id).stdout
    tags = json.loads(cli("tags", "--kind", "benchmark", "--json").stdout)
    assert {tag["value"] for tag in tags} >= {"AgentBench", "MT-Bench"}

    records = [json.loads(line) for line in cli("export").stdout.splitlines()]
    assert len(records) == 31
    assert set(records[0]) == {"id", "title", "summary", "tasks", "methods", "benchmarks", "domain", "model", "prompt_version",
                               # metadata, and the domain the arXiv categories point to (None for a listing page)
                               "category_domain", "authors", "published", "updated", "categories", "arxiv_id",
                               "arxiv_version", "doi", "url", "venue", "source"}
    rows = list(csv.DictReader(io.StringIO(cli("export", "--format", "csv").stdout)))
    assert len(rows) == 31
    assert cli("export", "--format", "parquet", "-o", tmp_path / "out.parquet").exit_code == 0
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'out.parquet'}'").fetchone()[0] == 31

    unwritable = cli("export", "--format", "parquet", "-o", tmp_path / "no" / "such" / "dir" / "x.parquet")
    assert unwritable.exit_code == 2 and "cannot write" in unwritable.stderr
    assert cli("export", "-o", tmp_path / "no" / "x.jsonl").exit_code == 2

    assert json.loads(cli("sql", "SELECT count(*) AS n FROM papers", "--json").stdout) == [{"n": 31}]
    rejected = cli("sql", "DELETE FROM papers")
    assert rejected.exit_code == 2 and "only SELECT" in rejected.stderr


def test_query_needs_a_filter_and_checks_domain(fake_server, sample_path):
    ingest(fake_server, sample_path)
    assert cli("query").exit_code == 2
    assert cli("query", "--domain", "astrology").exit_code == 2


def test_model_spec_errors_are_clear(tmp_path, sample_path):
    result = cli("ingest", sample_path, "--model", "gpt4")
    assert result.exit_code == 2 and "unknown model spec" in result.stderr
    result = cli("ingest", sample_path, "--model", "openai:gpt-4o-mini")
    assert result.exit_code == 2 and "OPENAI_API_KEY" in result.stderr
    result = cli("ingest", sample_path, "--model", "local:/no/such/model.gguf")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_database_in_use_by_another_process(fake_server, sample_path, tmp_path):
    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; con = duckdb.connect({str(db)!r}); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = ingest(fake_server, sample_path, extra=["--db", db])
        record("second process on a database in use", "one-line 'in use by another process' error, exit 2, "
               "no model call", cases=1, lost=None)
        assert result.exit_code == 2 and "in use by another process" in result.stderr
        assert fake_server.calls == 0
    finally:
        holder.kill()
        holder.wait()
