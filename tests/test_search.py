"""Keyword search: a real DuckDB file tagged through the fake OpenAI server, the FTS extension from its package."""

import json

import duckdb
from typer.testing import CliRunner

from papertag.cli import app
from papertag.queries import Reader
from old_schema import rewind_schema
from papertag.search import fts_extension_path, load_fts
from papertag.store import Store

runner = CliRunner()
CYCLEQD = "Agent Skill Acquisition for Large Language Models via CycleQD"


def cli(*args):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def ingest(server, path, db):
    result = cli("ingest", path, "--model", "openai:fake", "--base-url", server.base_url, "--db", db)
    assert result.exit_code == 0, result.output
    return result


def test_a_title_match_ranks_first(fake_server, sample_path, db_path):
    ingest(fake_server, sample_path, db_path)
    with Reader(db_path) as reader:
        hits = reader.search("CycleQD skill acquisition")
        assert hits[0]["title"] == CYCLEQD
        assert {"id", "title", "summary", "domain", "benchmarks", "score"} <= set(hits[0])
        assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
        assert len(reader.search("agents", limit=2)) == 2
        assert reader.search("the of and") == []  # stopwords only: nothing to rank
        reader.search("'); DROP TABLE papers; --")  # the text is a parameter, never SQL
        assert len(reader.summaries()) == 31


def test_filters_use_the_rules_of_query(fake_server, sample_path, db_path):
    ingest(fake_server, sample_path, db_path)
    with Reader(db_path) as reader:
        agents = reader.search("agent", limit=100)
        assert len(agents) > 1
        assert [hit["title"] for hit in reader.search("agent", benchmark="agent bench")] == [CYCLEQD]  # folded key
        assert reader.search("agent", benchmark="Agent") == []  # benchmarks match the whole key
        assert len(reader.search("agent", task="test", limit=100)) == len(agents)  # tasks match part of the key
        assert [hit["title"] for hit in reader.search("agent", method="skill acquisition")] == [CYCLEQD]
        for domain in {hit["domain"] for hit in agents} | {"computer-vision"}:
            expected = [hit["id"] for hit in agents if hit["domain"] == domain]
            assert [hit["id"] for hit in reader.search("agent", domain=domain, limit=100)] == expected


def test_the_index_follows_ingests(fake_server, sample_path, db_path, tmp_path):
    ingest(fake_server, sample_path, db_path)
    with Reader(db_path) as reader:
        assert reader.search("zebrafish") == []
    extra = tmp_path / "more.jsonl"
    extra.write_text(json.dumps({"title": "Zebrafish larvae as a benchmark", "abstract": "We track zebrafish on MT-Bench."}) + "\n")
    ingest(fake_server, extra, db_path)
    with Reader(db_path) as reader:
        assert [hit["title"] for hit in reader.search("zebrafish")] == ["Zebrafish larvae as a benchmark"]
        assert reader.search("zebrafish", benchmark="MT-Bench")[0]["benchmarks"] == ["MT-Bench"]
    with Store(db_path) as store:
        assert store.refresh_search_index() is False  # nothing changed since the last ingest: no rebuild


def test_older_database_without_an_index(fake_server, sample_path, db_path):
    ingest(fake_server, sample_path, db_path)
    with Store(db_path) as store:  # as written before search existed
        rewind_schema(store.con, 10)
    result = cli("search", "agent", "--db", db_path)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: no search index yet; run 'papertag ingest FILE' to build the search index"]
    assert cli("query", "--benchmark", "AgentBench", "--db", db_path).exit_code == 0  # other reads still work
    ingest(fake_server, sample_path, db_path)  # nothing to tag, but the upgrade builds the index
    assert json.loads(cli("search", "CycleQD", "--json", "--db", db_path).stdout)[0]["title"] == CYCLEQD


def test_empty_query_is_a_one_line_error(fake_server, sample_path, db_path):
    ingest(fake_server, sample_path, db_path)
    for text in ("", "   "):
        result = cli("search", text, "--db", db_path)
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines() == ["error: give some words to search for"]


def test_cli_search_table_and_filters(fake_server, sample_path, db_path):
    ingest(fake_server, sample_path, db_path)
    result = cli("search", "agent", "--benchmark", "AgentBench", "--db", db_path)
    assert result.exit_code == 0 and "CycleQD" in result.stdout
    rows = json.loads(cli("search", "agent", "--limit", "3", "--json", "--db", db_path).stdout)
    assert len(rows) == 3


def test_extension_is_loaded_from_the_package_without_network(tmp_path):
    # An unreachable repository and an empty extension folder: INSTALL fts by name, or an autoload, would fail.
    con = duckdb.connect(config={
        "custom_extension_repository": "http://127.0.0.1:9", "autoinstall_known_extensions": False,
        "autoload_known_extensions": False, "extension_directory": str(tmp_path / "extensions"),
    })
    load_fts(con)
    load_fts(con)  # a second call on the same connection is a no-op
    assert con.execute("SELECT stem('running', 'porter')").fetchone()[0] == "run"
    assert fts_extension_path().name == "fts.duckdb_extension" and "duckdb_extension_fts" in str(fts_extension_path())
    assert not (tmp_path / "extensions").exists()  # nothing installed or downloaded
