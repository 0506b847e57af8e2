"""The derived read tables (read_tables.py) stay equal to what the base tables say after every kind of write:
ingest, re-tag, a failed re-run, a changed text, changed metadata, merged duplicates, an upgrade; and the facet
counts and the vector matrix are never served stale."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from old_schema import rewind_schema
from papertag import read_tables
from papertag.embed import DIMENSIONS, MODEL_NAME
from papertag.queries import PAPER_RECORDS, Reader
from papertag.records import make_paper
from papertag.store import EXTRACTION_SCHEMA, TAG_SCHEMA, Store
from papertag.text import tag_key


def tag(store: Store, paper, tags: dict[str, list[str]] | None, *, domain: str = "nlp", schema_version: str = "s",
        model: str = "m") -> None:
    """One extraction of the paper's current text (failed if tags is None), written as ingest writes a batch."""
    [extraction_id] = store.next_extraction_ids(1)
    ok = tags is not None
    extraction = {
        "id": [extraction_id], "paper_id": [paper.id], "content_hash": [paper.content_hash], "model": [model],
        "prompt_version": ["v"], "schema_version": [schema_version], "status": ["ok" if ok else "failed"],
        "summary": [f"About {paper.title}." if ok else None], "domain": [domain if ok else None],
        "raw_response": ["{}"], "error": [None if ok else "bad"], "prompt_tokens": [1], "completion_tokens": [1],
        "latency_s": [0.1], "truncated": [False], "created_at": [None], "dropped_tags": [[]], "domain_scores": [None],
        "answered_on": [None],
    }
    from papertag.store import _now
    extraction["created_at"] = [_now()]
    rows = {name: [] for name in TAG_SCHEMA.names}
    for kind, values in (tags or {}).items():
        for position, value in enumerate(values):
            for name, cell in zip(TAG_SCHEMA.names, (extraction_id, paper.id, kind, value, tag_key(value), position)):
                rows[name].append(cell)
    store.append(pa.table(extraction, schema=EXTRACTION_SCHEMA), pa.table(rows, schema=TAG_SCHEMA))


def canonical(rows) -> list[str]:
    return sorted(repr(row) for row in rows)


def assert_derived_match(con: duckdb.DuckDBPyConnection) -> None:
    """The derived tables hold exactly what the original queries over the base tables give."""
    records = con.execute(f"SELECT * FROM ({PAPER_RECORDS.format(where='')})").fetchall()
    derived = con.execute("""SELECT paper_id, title, summary, tasks, methods, benchmarks, domain, category_domain,
                                    model, prompt_version, authors, published, updated, categories, arxiv_id,
                                    arxiv_version, doi, url, venue, source FROM current_records""").fetchall()
    assert canonical(derived) == canonical(records)
    tags = con.execute("""SELECT t.kind, t.key, t.value, t.paper_id FROM tags t
                          JOIN current_extractions e ON e.id = t.extraction_id""").fetchall()
    assert canonical(con.execute("SELECT kind, key, value, paper_id FROM current_tags").fetchall()) == canonical(tags)
    assert canonical(con.execute("SELECT content_hash, paper_id FROM paper_hashes").fetchall()) == canonical(
        con.execute("SELECT content_hash, id FROM papers").fetchall())
    # One copy of the record per distinct benchmark key.
    assert canonical(con.execute("SELECT key, paper_id FROM benchmark_records").fetchall()) == canonical(
        {(kind_key[1], kind_key[3]) for kind_key in tags if kind_key[0] == "benchmark"})
    assert canonical(con.execute("SELECT DISTINCT * EXCLUDE (key) FROM benchmark_records").fetchall()) == canonical(
        con.execute("SELECT * FROM current_records WHERE len(benchmark_keys) > 0").fetchall())


P1 = make_paper("Paper one", "We test on GLUE with LoRA.", "a.txt", "p1")
P2 = make_paper("Paper two", "We test on GLUE and SQuAD.", "a.txt", "p2")
TAGS1 = {"task": ["text classification"], "method": ["LoRA"], "benchmark": ["GLUE"]}
TAGS2 = {"task": ["question answering"], "method": ["BERT"], "benchmark": ["GLUE", "SQuAD"]}


@pytest.mark.parametrize("few_papers", [read_tables.FEW_PAPERS, 0], ids=["by literal ids", "in bulk"])
def test_every_write_keeps_the_derived_tables_equal_to_the_base_tables(db_path, monkeypatch, few_papers):
    monkeypatch.setattr(read_tables, "FEW_PAPERS", few_papers)  # an ingest's batches, or a bulk load's chunks
    with Store(db_path) as store:
        store.add_papers([P1, P2])
        assert_derived_match(store.con)  # papers without extractions have no record
        tag(store, P1, TAGS1)
        tag(store, P2, TAGS2)
        assert_derived_match(store.con)
        assert store.con.execute("SELECT count(*) FROM current_records").fetchone()[0] == 2
        # A re-tag under new rules replaces P1's record and tags; a failed re-run leaves P2's good one.
        tag(store, P1, {"task": ["sentiment analysis"], "method": [], "benchmark": ["SST-2"]}, schema_version="s2")
        tag(store, P2, None)
        assert_derived_match(store.con)
        assert store.con.execute("SELECT benchmarks FROM current_records WHERE paper_id = 'p1'").fetchone() == (["SST-2"],)
        # A changed text has no current extraction until it is tagged again; changed metadata shows at once.
        changed = make_paper("Paper two", "A new abstract about SQuAD.", "b.txt", "p2")
        store.add_papers([changed])
        assert_derived_match(store.con)
        assert store.con.execute("SELECT count(*) FROM current_records WHERE paper_id = 'p2'").fetchone()[0] == 0
        store.add_papers([make_paper("Paper one, renamed", P1.abstract, "a.txt", "p1")])
        assert_derived_match(store.con)
        # The title is part of the text hash, so a renamed paper waits for its re-tag like a changed abstract.
        renamed = make_paper("Paper one", P1.abstract, "a.txt", "p1", doi="10.1/x", venue="ACL")
        store.add_papers([renamed])
        assert_derived_match(store.con)
        assert store.con.execute("SELECT doi, venue FROM current_records WHERE paper_id = 'p1'").fetchone() == ("10.1/x", "ACL")
        # Back to a text that has a current extraction: the record comes back.
        store.add_papers([P2])
        assert_derived_match(store.con)
        assert store.con.execute("SELECT count(*) FROM current_records WHERE paper_id = 'p2'").fetchone()[0] == 1


@pytest.mark.parametrize("few_papers", [read_tables.FEW_PAPERS, 0], ids=["by literal ids", "in bulk"])
def test_merged_duplicates_leave_one_record(db_path, monkeypatch, few_papers):
    monkeypatch.setattr(read_tables, "FEW_PAPERS", few_papers)
    with Store(db_path) as store:
        store.add_papers([P1, P2])
        tag(store, P1, TAGS1)
        tag(store, P2, TAGS2)
        store.add_papers([P1], absorbed={"p2": "p1"})
        assert_derived_match(store.con)
        assert store.con.execute("SELECT paper_id FROM current_tags WHERE key = 'squad'").fetchall() == []
        assert [row[0] for row in store.con.execute("SELECT paper_id FROM current_records").fetchall()] == ["p1"]
    with Reader(db_path) as reader:
        assert [row["id"] for row in reader.query(benchmark="glue")] == ["p1"]


def test_an_older_database_gets_its_derived_tables_on_upgrade(db_path):
    with Store(db_path) as store:
        store.add_papers([P1, P2])
        tag(store, P1, TAGS1)
        tag(store, P2, TAGS2)
    con = duckdb.connect(str(db_path))
    rewind_schema(con, 8)
    con.close()
    with Reader(db_path) as reader:  # not upgraded yet: read from the base tables
        assert not reader.fast
        old = reader.query(benchmark="GLUE")
        old_tags = reader.tags()
    with Store(db_path) as store:
        assert_derived_match(store.con)
        assert store.con.execute("SELECT changes = facets_at FROM read_state").fetchone()[0]
    with Reader(db_path) as reader:
        assert reader.fast
        assert reader.query(benchmark="GLUE") == old and len(old) == 2
        assert reader.tags() == old_tags


def test_facet_counts_are_used_only_while_nothing_changed_since(db_path, monkeypatch):
    with Store(db_path) as store:
        store.add_papers([P1, P2])
        tag(store, P1, TAGS1)
        tag(store, P2, TAGS2, domain="computer-vision")
        assert store.refresh_read_tables() == {"sorted": False, "counted": True}
        assert store.refresh_read_tables() == {"sorted": False, "counted": False}  # nothing changed
    with Reader(db_path) as reader:
        counted = reader.browse()
        assert counted["facets"]["benchmark"] == [{"value": "GLUE", "papers": 2}, {"value": "SQuAD", "papers": 1}]
        assert reader.browse(domain="nlp")["facets"]["benchmark"] == [{"value": "GLUE", "papers": 1}]
        # The live count over the same papers (a filter that selects all of them) agrees.
        assert reader.browse(benchmark="glue")["facets"] == counted["facets"]
    with Store(db_path) as store:
        tag(store, P2, {"task": [], "method": [], "benchmark": ["MNIST"]}, domain="computer-vision", schema_version="s2")
    with Reader(db_path) as reader:  # written after the last count: counted live, so still right
        assert reader.browse()["facets"]["benchmark"] == [{"value": "GLUE", "papers": 1}, {"value": "MNIST", "papers": 1}]
        assert [row["value"] for row in reader.tags("benchmark")] == ["GLUE", "MNIST"]
        monkeypatch.setattr(read_tables, "BUILD_FACETS", "SELECT 1")  # the counted table is not even looked at
        assert reader.browse(domain="computer-vision")["facets"]["benchmark"] == [{"value": "MNIST", "papers": 1}]


def test_tags_are_sorted_again_once_enough_came_in(db_path, monkeypatch):
    monkeypatch.setattr(read_tables, "CLUSTER_AFTER_ROWS", 3)
    with Store(db_path) as store:
        store.add_papers([P2, P1])
        tag(store, P2, TAGS2)
        tag(store, P1, TAGS1)
        keys = lambda: [row[:2] for row in store.con.execute("SELECT kind, key FROM current_tags").fetchall()]  # noqa: E731
        assert keys() != sorted(keys())  # appended in write order
        assert store.refresh_read_tables()["sorted"]
        assert keys() == sorted(keys()) and len(keys()) == 7
        runs = [row[0] for row in store.con.execute("SELECT key FROM benchmark_records").fetchall()]
        assert runs == ["glue", "glue", "squad"]
        assert_derived_match(store.con)
        assert store.con.execute("SELECT unclustered FROM read_state").fetchone()[0] == 0


def test_similar_sees_vectors_added_after_the_first_call_and_a_replaced_file(db_path, tmp_path):
    rng = np.random.default_rng(3)
    papers = [make_paper(f"Paper {i}", f"Abstract {i}.", "a.txt", f"p{i}") for i in range(6)]
    vectors = rng.standard_normal((6, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[1] = vectors[0]  # p1 has p0's direction: its nearest
    with Store(db_path) as store:
        store.add_papers(papers)
        store.add_vectors(MODEL_NAME, [p.content_hash for p in papers[:3]], vectors[:3])
    with Reader(db_path) as reader:
        assert [row["id"] for row in reader.similar("p0", limit=5)] == ["p1", "p2"]  # p3-p5 have no vector yet
    vectors[5] = vectors[0]
    with Store(db_path) as store:
        store.add_vectors(MODEL_NAME, [p.content_hash for p in papers[3:]], vectors[3:])
    with Reader(db_path) as reader:
        found = reader.similar("p0", limit=5)
        assert len(found) == 5 and {row["id"] for row in found[:2]} == {"p1", "p5"}
        assert found[0]["score"] == pytest.approx(1.0, abs=1e-5)
    # Another database at the same path with as many vectors: read again, not served from memory.
    db_path.unlink()
    others = [make_paper(f"Other {i}", f"Other abstract {i}.", "b.txt", f"p{i}") for i in range(6)]
    vectors[4] = vectors[0]
    with Store(db_path) as store:
        store.add_papers(others)
        store.add_vectors(MODEL_NAME, [p.content_hash for p in others], vectors)
    with Reader(db_path) as reader:
        assert {row["id"] for row in reader.similar("p0", limit=3)} == {"p1", "p4", "p5"}
