import json

import pytest

from fake_openai import FakeOpenAI, Reply, completion, user_paper
from papertag.errors import PapertagError
from papertag.queries import Reader, run_read_only_sql
from papertag.sources import make_paper
from reliability import record
from test_ingest import run

TAGS = {
    "P1": {"benchmarks": ["MMLU-Pro", "GSM8K"], "methods": ["LoRA adapters"], "tasks": ["math reasoning"], "domain": "nlp"},
    "P2": {"benchmarks": ["MMLU pro"], "methods": ["Q-LoRA"], "tasks": ["question answering"], "domain": "nlp"},
    "P3": {"benchmarks": ["MMLU Pro", "ImageNet"], "methods": ["ViT"], "tasks": ["image classification"], "domain": "computer-vision"},
    "P4": {"benchmarks": [], "methods": ["PPO"], "tasks": ["robot control"], "domain": "robotics"},
}


def scripted(request):
    title, _ = user_paper(request)
    tags = {"summary": f"{title} does something useful and measurable.", **TAGS[title]}
    return Reply(body=completion(json.dumps(tags)))


@pytest.fixture
def populated_db(db_path):
    with FakeOpenAI(scripted) as server:
        # The abstract names every tag, so grounding keeps them all.
        papers = [make_paper(title, f"{title}: " + "; ".join(tags["benchmarks"] + tags["methods"]), "x", title.lower())
                  for title, tags in TAGS.items()]
        run(db_path, papers, server)
    return db_path


@pytest.fixture
def reader(populated_db):
    opened = Reader(populated_db)
    yield opened
    opened.close()


def titles(rows):
    return sorted(row["title"] for row in rows)


def test_benchmark_query_matches_on_normalised_key(reader):
    for spelling in ("MMLU-Pro", "mmlu pro", "MMLUPRO", "mmlu_pro"):
        assert titles(reader.query(benchmark=spelling)) == ["P1", "P2", "P3"]
    assert titles(reader.query(benchmark="MMLU")) == []  # benchmarks match whole names
    assert titles(reader.query(benchmark="imagenet")) == ["P3"]


def test_task_and_method_match_substrings_and_filters_combine(reader):
    assert titles(reader.query(method="lora")) == ["P1", "P2"]
    assert titles(reader.query(method="lora", benchmark="gsm8k")) == ["P1"]
    assert titles(reader.query(task="classification")) == ["P3"]
    assert titles(reader.query(domain="nlp", benchmark="mmlu-pro")) == ["P1", "P2"]
    assert titles(reader.query(domain="robotics", method="lora")) == []


def test_query_records_carry_every_export_field(reader):
    record = reader.query(benchmark="gsm8k")[0]
    assert record["benchmarks"] == ["MMLU-Pro", "GSM8K"]  # the model's order
    assert record["tasks"] == ["math reasoning"] and record["methods"] == ["LoRA adapters"]
    assert record["model"] == "openai:fake" and len(record["prompt_version"]) == 12


def test_tags_counts_papers_per_normalised_value(reader):
    rows = reader.tags("benchmark")
    assert rows[0]["key"] == "mmlupro" and rows[0]["papers"] == 3
    assert {row["kind"] for row in reader.tags()} == {"task", "method", "benchmark"}


def test_show_accepts_unique_prefix_and_reports_unknown(reader):
    paper = reader.show("p4")
    assert paper["title"] == "P4" and paper["methods"] == ["PPO"] and paper["benchmarks"] == []
    assert paper["extractions"][0]["current"] is True
    with pytest.raises(PapertagError, match="more than one paper"):
        reader.show("p")
    with pytest.raises(PapertagError, match="no paper with id"):
        reader.show("zzz")


def test_summaries_list_pending_papers_too(db_path):
    def fail(request):
        return Reply(400, {"error": {"message": "no"}})

    with FakeOpenAI(fail) as server:
        run(db_path, [make_paper("T", "abstract", "x")], server)
    reader = Reader(db_path)
    assert reader.summaries()[0]["status"] == "pending"
    reader.close()


def test_sql_allows_select(populated_db, db_path):
    result = run_read_only_sql(db_path, "SELECT count(*) AS n FROM papers")
    assert result.columns == ["n"] and result.rows == [(4,)]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM papers",
        "INSERT INTO papers VALUES ('x','t','a','h','s', now())",
        "UPDATE papers SET title = 'x'",
        "DROP TABLE tags",
        "CREATE TABLE t AS SELECT 1",
        "ATTACH 'other.duckdb' AS other",
        "COPY papers TO 'out.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SELECT 1; DELETE FROM papers",
    ],
)
def test_sql_rejects_writes_and_side_effects(populated_db, db_path, statement):
    with pytest.raises(PapertagError):
        run_read_only_sql(db_path, statement)
    remaining = run_read_only_sql(db_path, "SELECT count(*) FROM papers")[1][0][0]
    record("papertag sql: writes, ATTACH, COPY, INSTALL/LOAD, SET", "rejected with a one-line error; database unchanged",
           cases=1, lost=4 - remaining)
    assert remaining == 4


@pytest.mark.parametrize("function", ["read_csv('/etc/passwd')", "read_text('/etc/passwd')", "read_parquet('x.parquet')"])
def test_sql_cannot_read_files(populated_db, db_path, function):
    with pytest.raises(PapertagError, match="query failed"):
        run_read_only_sql(db_path, f"SELECT * FROM {function}")
    record("papertag sql: file-reading table functions", "rejected with a one-line error", cases=1,
           lost=4 - run_read_only_sql(db_path, "SELECT count(*) FROM papers")[1][0][0])


@pytest.fixture
def metadata_db(db_path, fake_server):
    """Papers from the arXiv API, the snapshot and a BibTeX export (tests/data/sources)."""
    from test_identity import ingest, papers_of

    ingest(db_path, papers_of("arxiv_api.xml", "arxiv-metadata-oai-snapshot.json", "zotero.bib"), fake_server)
    return db_path


def ids(rows):
    return sorted(row["id"] for row in rows)


def test_query_by_publication_dates_author_and_category(metadata_db):
    with Reader(metadata_db) as reader:
        assert ids(reader.query(since="2024-02-01")) == ["2402.05678", "2402.07777", "2403.01010"]
        assert ids(reader.query(since="2023-12-01", until="2024-01-31")) == ["2312.04567", "2401.01234"]
        assert ids(reader.query(author="okafor")) == ["2401.01234", "2402.07777"]
        assert ids(reader.query(author="BALAZS")) == ["0704.0001"]  # accents and case folded
        assert ids(reader.query(category="cs.CL")) == ["2401.01234", "2402.05678"]  # primary or cross-list
        assert ids(reader.query(category="q-bio")) == ["2402.07777"]  # an archive: all of its categories
        assert ids(reader.query(category="cs.CL", since="2024-02-01")) == ["2402.05678"]
        with pytest.raises(PapertagError, match="--since 'last week' is not a date"):
            reader.query(since="last week")


def test_export_and_show_carry_metadata_and_both_domains(metadata_db):
    with Reader(metadata_db) as reader:
        record = next(r for r in reader.export() if r["id"] == "2402.07777")
        assert record["categories"] == ["q-bio.BM", "cs.LG"] and record["category_domain"] == "bio-medical"
        assert record["domain"] == "nlp"  # the fake model's answer, beside the categories' opinion
        assert record["authors"] == ["Chidi Okafor"] and str(record["published"]) == "2024-02-11"
        paper = reader.show("2401.01234")
        assert paper["arxiv_version"] == 2 and paper["doi"] == "10.18653/v1/2024.acl-long.101"
        assert paper["category_domain"] == "nlp" and paper["domain"] == "nlp"
        assert paper["venue"].startswith("Proceedings of the 62nd Annual Meeting")


def test_a_database_from_before_metadata_reads_with_empty_metadata(db_path):
    import duckdb

    from papertag.store import MIGRATIONS

    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
    for version, sql in enumerate(MIGRATIONS[:5], start=1):
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
    con.execute("INSERT INTO papers VALUES ('p1', 'Title', 'Abstract', 'h1', 'old.txt', now())")
    con.execute("""INSERT INTO extractions (id, paper_id, content_hash, model, prompt_version, status, summary, domain,
                       prompt_tokens, completion_tokens, latency_s, truncated, created_at, dropped_tags)
                   VALUES (1, 'p1', 'h1', 'm', 'v', 'ok', 'S.', 'nlp', 0, 0, 0, false, now(), [])""")
    con.execute("INSERT INTO current_extraction VALUES ('p1', 1)")
    con.close()
    with Reader(db_path) as reader:
        (record,) = reader.export()
        assert record["summary"] == "S." and record["authors"] is None and record["category_domain"] is None
        assert reader.show("p1")["doi"] is None and reader.query(author="x") == []
