"""The command line over the richer sources: ingest's selection options, query's metadata filters, show's metadata."""

import json
import subprocess
import sys

from test_cli import cli, ingest
from test_sources_formats import DATA


def test_ingest_selects_from_the_snapshot_while_reading(fake_server):
    result = ingest(fake_server, DATA / "arxiv-metadata-oai-snapshot.json", extra=["--category", "cs.CL", "--since", "2024-01-01", "--json"])
    assert "selected 1 papers; 4 left out by --category, --since or --until" in result.stderr
    # The record without an abstract is cs.CL and recent: it is named, and makes the exit code 1.
    assert "line 6: missing 'abstract'" in result.stderr and result.exit_code == 1
    assert json.loads(result.stdout)["papers"] == 1 and fake_server.calls == 1


def test_every_format_ingests_from_the_command_line(fake_server):
    files = ["arxiv_api.xml", "oai_arxiv.xml", "oai_arxivraw.xml", "arxiv-metadata-oai-snapshot.json", "zotero.bib",
             "semantic_scholar_paper.json", "semantic_scholar_search.json"]
    result = ingest(fake_server, *(DATA / name for name in files), extra=["--json"])
    report = json.loads(result.stdout)
    # 16 records with abstracts are 9 papers: the speech translation paper alone comes from five files.
    assert report["papers"] == 9 and report["failed"] == 0 and fake_server.calls == 9
    assert json.loads(cli("sql", "SELECT count(*) AS n FROM papers", "--json").stdout) == [{"n": 9}]


def test_query_filters_and_show_metadata(fake_server):
    ingest(fake_server, DATA / "arxiv_api.xml", DATA / "zotero.bib")
    found = json.loads(cli("query", "--author", "brandt", "--category", "cs.CL", "--json").stdout)
    assert [row["id"] for row in found] == ["2401.01234"]
    assert found[0]["category_domain"] == "nlp" and found[0]["arxiv_version"] == 2
    shown = cli("show", "2401.01234").stdout
    assert "Amina Okafor, Lukas Brandt" in shown and "cs.CL cs.SD eess.AS" in shown and "2401.01234 v2" in shown
    assert "arXiv categories say nlp" in shown
    assert [row["id"] for row in json.loads(cli("query", "--until", "2023-12-31", "--json").stdout)] == ["2310.11111"]


def test_bad_dates_are_one_line_errors(fake_server):
    ingest(fake_server, DATA / "semantic_scholar_paper.json")
    for args in (["ingest", DATA / "zotero.bib", "--since", "2024-13-01"], ["query", "--until", "soon"]):
        result = cli(*args)
        assert result.exit_code == 2 and "is not a date (use YYYY-MM-DD)" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_broken_bibtex_is_one_line(fake_server, tmp_path):
    """bibtexparser's own warning about the broken block is not printed next to papertag's line."""
    broken = tmp_path / "broken.bib"
    broken.write_text("@article{x, title={T}\n")
    # A real process: under pytest, log records go to pytest's handler, not to the stderr a user sees.
    result = subprocess.run([sys.executable, "-m", "papertag", "ingest", str(broken), "--db", str(tmp_path / "t.duckdb"),
                             "--model", "openai:fake", "--base-url", fake_server.base_url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {broken}: no abstracts found (line 1: broken BibTeX entry, skipped)"]
