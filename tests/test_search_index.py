"""The postings index behind keyword search (search_index.py): the same scores and ranking as DuckDB fts's own
match_bm25 over the same texts, kept equal to a fresh build by every kind of write, sorted once enough came in."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from papertag import read_tables, search_index
from papertag.queries import Reader
from papertag.records import make_paper
from papertag.search import load_fts
from papertag.store import Store
from test_read_tables import P1, P2, TAGS1, TAGS2, tag
from test_search import ingest

# The index migration 11 replaced: one row per paper with the fields, and fts's index over it.
LEGACY_BUILD = """
    CREATE TABLE paper_search AS
    SELECT p.id, p.title, e.summary, p.abstract,
           coalesce(string_agg(t.value, ' ' ORDER BY t.kind, t.position), '') AS tags
    FROM papers p JOIN current_extractions e ON e.paper_id = p.id LEFT JOIN tags t ON t.extraction_id = e.id
    GROUP BY ALL
"""
LEGACY_INDEX = "PRAGMA create_fts_index('paper_search', 'id', 'title', 'summary', 'abstract', 'tags')"
TEXTS = ["CycleQD skill acquisition", "agents", "large language models using values", "value", "the of and",
         "benchmark benchmark evaluation", "self-play 3D reasoning, RL!", "Zürich café naïve", "zzzz unknownword",
         "agent-based web navigation (AgentBench)"]


def reference(db_path, tmp_path, texts: list[str]) -> tuple[list[dict[str, float]], dict[str, str]]:
    """match_bm25's scores per text (paper id -> score) on a copy of the database, and the papers' titles."""
    copy = tmp_path / "reference.duckdb"
    shutil.copy(db_path, copy)
    with duckdb.connect(str(copy)) as con:
        load_fts(con)
        con.execute(LEGACY_BUILD)
        con.execute(LEGACY_INDEX)
        titles = dict(con.execute("SELECT id, title FROM paper_search").fetchall())
        return [dict(con.execute(
            """SELECT id, score FROM (SELECT id, fts_main_paper_search.match_bm25(id, ?) AS score FROM paper_search)
               WHERE score IS NOT NULL""", [text]).fetchall()) for text in texts], titles


def ours(con, text: str) -> dict[str, float]:
    docids, scores = search_index.scores(con, text)
    paper_ids = dict(con.execute("SELECT docid, paper_id FROM search_docs").fetchall())
    return {paper_ids[int(docid)]: float(score) for docid, score in zip(docids, scores)}


def test_scores_and_ranking_equal_match_bm25(fake_server, sample_path, db_path, tmp_path):
    ingest(fake_server, sample_path, db_path)
    expected, titles = reference(db_path, tmp_path, TEXTS)
    assert sum(len(scores) > 3 for scores in expected) >= 5  # the texts do rank several papers
    with Reader(db_path) as reader:
        for text, want in zip(TEXTS, expected):
            got = ours(reader.con, text)
            assert got.keys() == want.keys(), text
            for paper_id, score in want.items():
                assert got[paper_id] == pytest.approx(score, rel=1e-12, abs=0), (text, paper_id)
            # Best first, ties by title then id; near-equal sums (the order of additions) count as ties.
            ranking = sorted(want, key=lambda paper_id: (-round(want[paper_id], 9), titles[paper_id], paper_id))
            for limit in (1, 5, 100):
                assert [hit["id"] for hit in reader.search(text, limit=limit)] == ranking[:limit], (text, limit)
            if want:
                assert reader.browse(text, limit=5)["total"] == len(want)


def test_top_k_with_ties_and_filters(db_path):
    papers = [make_paper(f"Paper {name}", "Graph networks for molecules.", "a.txt", f"p{name}") for name in "dcbae"]
    with Store(db_path) as store:
        store.add_papers(papers)
        for paper, domain in zip(papers, ["nlp", "nlp", "computer-vision", "nlp", "nlp"]):
            tag(store, paper, TAGS1, domain=domain)
        store.refresh_search_index()
    with Reader(db_path) as reader:
        # Five equal scores: the best two by title, whichever two the top-k kept.
        assert [hit["id"] for hit in reader.search("molecules", limit=2)] == ["pa", "pb"]
        assert [hit["id"] for hit in reader.search("molecules", limit=2, domain="nlp")] == ["pa", "pc"]
        assert [hit["id"] for hit in reader.search("molecules", benchmark="glue", domain="computer-vision")] == ["pb"]
        assert reader.browse("graph", domain="nlp")["total"] == 4


def test_a_best_paper_without_its_record_yet_is_replaced_by_the_next(db_path):
    with Store(db_path) as store:
        store.add_papers([P1, P2])
        tag(store, P1, TAGS1)
        tag(store, P2, TAGS2)
        store.refresh_search_index()
        # P1's text changes (no record until it is tagged again); the index still has it until the ingest's end.
        store.add_papers([make_paper("Paper one", "A new abstract.", "b.txt", "p1")])
    with Reader(db_path) as reader:
        assert [hit["id"] for hit in reader.search("GLUE paper", limit=1)] == ["p2"]
        assert [hit["id"] for hit in reader.search("GLUE paper", limit=5)] == ["p2"]


def fresh_build(con) -> tuple[list, tuple]:
    """What the index would hold if built from nothing now: (paper, term, tf, len) rows and the totals."""
    return (sorted(con.execute(
        """SELECT d.paper_id, t.term, p.tf, p.len FROM search_postings p JOIN search_docs d USING (docid)
           JOIN search_terms t USING (termid)""").fetchall()),
        con.execute("SELECT docs, total_len FROM search_state").fetchone())


def rebuilt(con) -> tuple[list, tuple]:
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM search_postings; DELETE FROM search_docs; DELETE FROM search_terms; "
                    "UPDATE search_state SET docs = 0, total_len = 0, next_docid = 0, next_termid = 0, unsorted = 0")
        search_index.update(con)
        return fresh_build(con)
    finally:
        con.execute("ROLLBACK")


@pytest.mark.parametrize("few_papers", [read_tables.FEW_PAPERS, 0], ids=["by literal ids", "in bulk"])
def test_every_write_keeps_the_index_equal_to_a_fresh_build(db_path, monkeypatch, few_papers):
    monkeypatch.setattr(read_tables, "FEW_PAPERS", few_papers)
    monkeypatch.setattr(search_index, "FEW_PAPERS", few_papers)
    with Store(db_path) as store:
        def check() -> None:
            assert store.refresh_search_index() is True
            assert fresh_build(store.con) == rebuilt(store.con)
            assert store.refresh_search_index() is False  # nothing changed since

        def found(text: str) -> list[str]:
            store.release()  # as an ingest does between commits, so a reader can open the file
            with Reader(db_path) as reader:
                return [hit["id"] for hit in reader.search(text)]

        store.add_papers([P1, P2])
        tag(store, P1, TAGS1)
        tag(store, P2, TAGS2)
        check()
        assert found("LoRA") == ["p1"]
        # A re-tag replaces P1's words (its summary and tags).
        tag(store, P1, {"task": ["sentiment analysis"], "method": [], "benchmark": ["SST-2"]}, schema_version="s2")
        check()
        assert found("sentiment") == ["p1"] and found("classification") == []
        # A changed text leaves the index until it is tagged again; then it comes back with its new words.
        changed = make_paper("Paper two", "A new abstract about zebrafish.", "b.txt", "p2")
        store.add_papers([changed])
        check()
        assert found("SQuAD") == []
        tag(store, changed, TAGS2)
        check()
        assert found("zebrafish") == ["p2"]
        # Merged duplicates: one paper stays.
        store.add_papers([P1], absorbed={"p2": "p1"})
        check()
        assert store.con.execute("SELECT list(paper_id) FROM search_docs").fetchone()[0] == ["p1"]


def test_postings_are_sorted_again_once_enough_came_in(db_path, monkeypatch):
    with Store(db_path) as store:
        store.add_papers([P1, P2])
        tag(store, P1, TAGS1)
        store.refresh_search_index()  # the first papers go in sorted
        assert store.con.execute("SELECT unsorted FROM search_state").fetchone()[0] == 0
        tag(store, P2, TAGS2)
        store.refresh_search_index()
        unsorted = store.con.execute("SELECT unsorted FROM search_state").fetchone()[0]
        termids = lambda: [row[0] for row in store.con.execute("SELECT termid FROM search_postings").fetchall()]  # noqa: E731
        assert unsorted > 0 and termids() != sorted(termids())
        monkeypatch.setattr(search_index, "SORT_AFTER_ROWS", 1)
        tag(store, P1, {"task": ["parsing"], "method": [], "benchmark": []}, schema_version="s2")
        store.refresh_search_index()
        assert termids() == sorted(termids()) and store.con.execute("SELECT unsorted FROM search_state").fetchone()[0] == 0
    with Reader(db_path) as reader:
        assert {hit["id"] for hit in reader.search("parsing SQuAD")} == {"p1", "p2"}


def test_an_older_database_is_searched_through_its_fts_index_until_upgraded(fake_server, sample_path, db_path, tmp_path):
    from old_schema import rewind_schema

    ingest(fake_server, sample_path, db_path)
    with Reader(db_path) as reader:
        now = [hit["id"] for hit in reader.search("agents", limit=10)]
    with duckdb.connect(str(db_path)) as con:  # as papertag before migration 11 left it
        rewind_schema(con, 10)
        load_fts(con)
        con.execute(LEGACY_BUILD)
        con.execute(LEGACY_INDEX)
    with Reader(db_path) as reader:
        assert [hit["id"] for hit in reader.search("agents", limit=10)] == now
    with Store(db_path) as store:  # the upgrade drops the fts index and builds the postings
        assert store.con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'fts_main_paper_search'").fetchone()[0] == 0
        assert store.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'paper_search'").fetchone()[0] == 0
    with Reader(db_path) as reader:
        assert [hit["id"] for hit in reader.search("agents", limit=10)] == now
