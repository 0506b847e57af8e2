"""The web pages through starlette's TestClient: JSON twins, facets and paging, 404s, escaping, eval charts, no writes."""

import hashlib
import json
import re

import duckdb
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from fake_openai import FakeOpenAI
from old_schema import rewind_schema
from papertag.cli import app as cli_app
from papertag.store import Store
from papertag.web.app import PAGE_SIZE, create_app, list_url

CYCLEQD = "Agent Skill Acquisition for Large Language Models via CycleQD"
HOSTILE = '<script>alert(1)</script> & "quoted" <img src=x onerror=alert(2)>'


def ingest(path, db):
    with FakeOpenAI() as server:
        result = CliRunner().invoke(cli_app, ["ingest", str(path), "--model", "openai:fake", "--base-url",
                                              server.base_url, "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def tagged_db(tmp_path_factory, sample_path_module):
    """The 31 sample papers and one with a hostile title, tagged through the fake server once for this file."""
    folder = tmp_path_factory.mktemp("web")
    db = folder / "papers.duckdb"
    hostile = folder / "hostile.jsonl"
    hostile.write_text(json.dumps({"id": "hostile-1", "title": HOSTILE,
                                   "abstract": "We evaluate <b>bold</b> claims on MT-Bench."}) + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAPERTAG_CACHE_DIR", str(folder / "cache"))
        ingest(sample_path_module, db)
        ingest(hostile, db)
    return db


@pytest.fixture(scope="module")
def sample_path_module():
    from conftest import SAMPLE
    return SAMPLE


@pytest.fixture
def client(tagged_db, tmp_path):
    return TestClient(create_app(tagged_db, tmp_path / "no-evals.duckdb"))


def test_json_twins_of_every_page(client):
    papers = client.get("/api/papers").json()
    assert papers["total"] == 32 and len(papers["papers"]) == PAGE_SIZE and papers["pages"] == 2
    added = [paper["added_at"] for paper in papers["papers"]]
    assert added == sorted(added, reverse=True) and papers["papers"][0]["id"] == "hostile-1"  # newest first
    assert len(client.get("/api/papers?page=2").json()["papers"]) == 32 - PAGE_SIZE
    assert {"domain", "benchmark", "task", "method"} == set(papers["facets"])

    found = client.get("/api/papers", params={"q": "CycleQD skill"}).json()
    assert found["papers"][0]["title"] == CYCLEQD and found["papers"][0]["score"] > 0
    filtered = client.get("/api/papers", params={"benchmark": "agentbench", "domain": "nlp"}).json()
    assert [paper["title"] for paper in filtered["papers"]] == [CYCLEQD]
    assert filtered["facets"]["benchmark"] == [{"value": "AgentBench", "papers": 1}]

    paper_id = filtered["papers"][0]["id"]
    paper = client.get(f"/api/paper/{paper_id}").json()
    assert paper["paper"]["benchmarks"] == ["AgentBench"] and paper["current"]["model"] == "openai:fake"
    assert len(paper["similar"]) == 5 and paper_id not in {s["id"] for s in paper["similar"]}

    benchmarks = client.get("/api/benchmarks").json()["benchmarks"]
    counts = {b["value"]: b["papers"] for b in benchmarks}
    assert counts["AgentBench"] == 1 and counts["MT-Bench"] >= 2  # the hostile paper is on MT-Bench too
    assert client.get("/api/evals").json() == {"runs": [], "fields": [], "note": None}


def test_list_page_facets_filters_and_pages(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count('class="title"') == PAGE_SIZE
    assert 'href="/?page=2"' in page.text and 'href="/api/papers"' in page.text
    assert re.search(r'href="/\?benchmark=AgentBench">AgentBench</a> <span class="count">1</span>', page.text)
    both = client.get("/?benchmark=AgentBench&domain=nlp")
    assert both.text.count('class="title"') == 1 and CYCLEQD in both.text
    # Each active filter has a link that removes it and keeps the other.
    assert 'href="/?domain=nlp" title="remove this filter"' in both.text
    assert 'href="/?benchmark=AgentBench" title="remove this filter"' in both.text
    assert client.get("/?page=2").text.count('class="title"') == 32 - PAGE_SIZE


def test_list_url_keeps_the_other_parameters():
    params = {"q": "agents", "benchmark": "GLUE", "page": 3}
    assert list_url(params, domain="nlp") == "/?q=agents&benchmark=GLUE&domain=nlp"  # back to page 1
    assert list_url(params, benchmark=None, page=3) == "/?q=agents&page=3"
    assert list_url({}, benchmark="A&B=C") == "/?benchmark=A%26B%3DC"


def test_unknown_ids_and_pages_are_404_pages_not_tracebacks(client):
    for path in ("/paper/no-such-paper", "/no/such/page"):
        page = client.get(path)
        assert page.status_code == 404 and "Not found" in page.text and "Traceback" not in page.text
    assert "no paper with id" in client.get("/paper/no-such-paper").text
    api = client.get("/api/paper/no-such-paper")
    assert api.status_code == 404 and "no paper with id" in api.json()["error"]
    assert client.get("/?page=x").status_code == 400
    assert client.get("/?q=%20%20").status_code == 200  # a blank search is no search


def test_hostile_title_is_escaped_everywhere(client):
    pages = [client.get("/").text, client.get("/paper/hostile-1").text, client.get("/?q=alert").text,
             client.get("/?q=" + "<script>").text]
    for text in pages:
        assert "<script>alert(1)" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quoted&#34;" in pages[1]
    assert "&lt;b&gt;bold&lt;/b&gt;" in pages[1]
    assert client.get("/api/paper/hostile-1").json()["paper"]["title"] == HOSTILE  # JSON keeps the text as it is
    missing = client.get("/paper/%3Cscript%3Ealert(3)%3C%2Fscript%3E").text  # the id is echoed in the 404 message
    assert "<script>alert(3)" not in missing and "&lt;script&gt;alert(3)" in missing


def test_paper_page_shows_provenance_tags_and_similar(client):
    paper_id = client.get("/api/papers", params={"benchmark": "AgentBench"}).json()["papers"][0]["id"]
    page = client.get(f"/paper/{paper_id}").text
    assert CYCLEQD in page and "openai:fake" in page and "prompt version" in page
    assert 'href="/?benchmark=AgentBench"' in page  # a tag links to its facet
    assert "Similar papers" in page and page.count('<li><a href="/paper/') == 5


def test_evals_page_draws_a_line_per_metric(tagged_db, tmp_path):
    eval_db = tmp_path / "evals.duckdb"
    with Store(eval_db) as store:
        for f1 in (0.5, 0.7, 0.6):
            store.save_eval_run({"model": "openai:fake", "prompt_version": "p1", "gold_path": "gold.jsonl",
                                 "gold_sha256": "0" * 64, "split": "test",
                                 "metrics": {"papers": 10, "failed": 0, "benchmarks": {"f1": f1, "precision": 1.0, "recall": f1}}})
    client = TestClient(create_app(tagged_db, eval_db))
    page = client.get("/evals").text
    assert page.count("<polyline") == 4  # benchmark F1, P, R and failed papers
    assert "0.700" in page and "run 3" in page
    points = re.search(r'aria-label="benchmark F1 across runs">.*?points="([^"]+)"', page, re.S).group(1)
    assert len(points.split()) == 3
    runs = client.get("/api/evals").json()["runs"]
    assert [run["metrics"]["benchmarks"]["f1"] for run in runs] == [0.5, 0.7, 0.6]


def test_an_eval_database_without_runs(tagged_db, tmp_path):
    empty = tmp_path / "empty.duckdb"
    Store(empty).close()
    assert "no eval runs" in TestClient(create_app(tagged_db, empty)).get("/evals").text
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE sales (x INTEGER)")
    page = TestClient(create_app(tagged_db, foreign)).get("/evals")  # one line, and the other pages still work
    assert page.status_code == 200 and "no eval runs" in page.text and "is not a papertag database" in page.text


def test_a_database_without_search_index_still_lists(tmp_path, sample_path):
    db = tmp_path / "old.duckdb"
    ingest(sample_path, db)
    with Store(db) as store:  # as written before search existed
        rewind_schema(store.con, 10)
    page = TestClient(create_app(db)).get("/?q=agents")
    assert page.status_code == 200 and "run &#39;papertag ingest FILE&#39; to build the search index" in page.text
    assert page.text.count('class="title"') == PAGE_SIZE


def test_requests_never_write_the_database(client, tagged_db):
    before = hashlib.sha256(tagged_db.read_bytes()).hexdigest()
    for path in ("/", "/?q=agents", "/benchmarks", "/evals", "/api/papers", "/paper/hostile-1"):
        assert client.get(path).status_code == 200
    assert hashlib.sha256(tagged_db.read_bytes()).hexdigest() == before
    assert not tagged_db.with_name(tagged_db.name + ".wal").exists()


def test_pages_work_while_an_ingest_holds_the_writer_lock(client, tagged_db):
    with Store(tagged_db) as store:
        store.release()  # as an ingest does between its short commits
        assert client.get("/?q=agents").status_code == 200
        assert client.get("/paper/hostile-1").status_code == 200


def test_serve_refuses_a_missing_database(tmp_path):
    result = CliRunner().invoke(cli_app, ["serve", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "no database" in result.stderr


def test_paper_page_and_json_carry_metadata_and_both_domains(tmp_path, fake_server):
    from test_identity import ingest, papers_of

    db = tmp_path / "meta.duckdb"
    ingest(db, papers_of("arxiv_api.xml"), fake_server)
    client = TestClient(create_app(db, tmp_path / "evals.duckdb"))
    page = client.get("/paper/2401.01234").text
    assert "Amina Okafor, Lukas Brandt" in page and "arXiv 2401.01234 v2" in page and "(arXiv categories: nlp)" in page
    data = client.get("/api/paper/2401.01234").json()["paper"]
    assert data["categories"] == ["cs.CL", "cs.SD", "eess.AS"] and data["published"] == "2024-01-03"
    assert data["category_domain"] == "nlp" and data["domain"] == "nlp"
