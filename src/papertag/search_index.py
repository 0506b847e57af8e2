"""Keyword search at a million papers: BM25 answered from a postings table that each ingest updates.

DuckDB's fts extension scores a query with its match_bm25 macro, which joins the whole `terms` table (one row per
word occurrence) for every query: 1.4 s at a million synthetic papers, where every query word is in a large share
of them. Here each (term, paper) pair is one row of search_postings, with the term's count in the paper's text and
the text's length, sorted by term: a query reads only its terms' row groups (DuckDB's min/max per row group skips
the others) and numpy adds up the scores. The words are fts's own (search.Tokenizer) and the formula is
match_bm25's (k1 = 1.2, b = 0.75, DuckDB's base-10 log), so the ranking is the same; tests/test_search_index.py
checks it against match_bm25.

Updated, never rebuilt: at the end of an ingest the papers whose current record changed (new, re-tagged, a changed
text, merged away) lose their rows and get new ones. Nothing stored depends on the other papers: a term's document
frequency is the number of its postings, counted when they are read, and the document count and total length are
kept in search_state. Appended rows are unsorted until enough of them (SORT_AFTER_ROWS) make it worth sorting the
table again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from .read_tables import FEW_PAPERS, literal_list
from .search import tokenizer

if TYPE_CHECKING:
    import duckdb
    import numpy as np

K1, B = 1.2, 0.75  # match_bm25's defaults

CREATE_TABLES = """
    -- One row per indexed paper; version says which record (extraction and text) it was indexed from.
    CREATE TABLE search_docs (docid INTEGER PRIMARY KEY, paper_id VARCHAR NOT NULL, version UBIGINT NOT NULL,
                              len INTEGER NOT NULL);
    CREATE TABLE search_terms (term VARCHAR PRIMARY KEY, termid INTEGER NOT NULL);
    CREATE TABLE search_postings (termid INTEGER NOT NULL, docid INTEGER NOT NULL, tf INTEGER NOT NULL,
                                  len INTEGER NOT NULL);  -- len: the paper's, copied so a query needs no join
    CREATE TABLE search_state (docs BIGINT NOT NULL, total_len BIGINT NOT NULL, next_docid INTEGER NOT NULL,
                               next_termid INTEGER NOT NULL, unsorted BIGINT NOT NULL);
    INSERT INTO search_state VALUES (0, 0, 0, 0, 0);
"""
# Which record a paper's row was indexed from: a new extraction or a new text changes it.
VERSION = "hash(extraction_id, content_hash)"
# Unsorted postings (appended since the last sort) are read by every query: about 1 ms per 500,000 here. Sorting
# 60,000,000 rows (a million papers) takes about a minute, so it waits for this many.
SORT_AFTER_ROWS = 3_000_000


def is_built(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute(
        """SELECT count(*) FROM duckdb_tables()
           WHERE database_name = current_database() AND table_name = 'search_postings'""").fetchone()[0])


def update(con: duckdb.DuckDBPyConnection) -> bool:
    """Bring the index up to date with current_records, inside the caller's transaction; False if nothing changed."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE search_changed AS
        SELECT coalesce(r.paper_id, d.paper_id) AS paper_id, d.docid, d.len, r.paper_id IS NOT NULL AS current
        FROM (SELECT paper_id, {VERSION} AS version FROM current_records) r
        FULL JOIN search_docs d ON d.paper_id = r.paper_id
        WHERE r.version IS DISTINCT FROM d.version""")
    try:
        changed = con.execute("SELECT count(*) FROM search_changed").fetchone()[0]
        if not changed:
            return False
        gone, gone_len = con.execute("SELECT count(docid), coalesce(sum(len), 0) FROM search_changed").fetchone()
        if gone:
            con.execute("DELETE FROM search_postings WHERE docid IN (SELECT docid FROM search_changed WHERE docid IS NOT NULL)")
            con.execute("DELETE FROM search_docs WHERE docid IN (SELECT docid FROM search_changed WHERE docid IS NOT NULL)")
            con.execute("UPDATE search_state SET docs = docs - ?, total_len = total_len - ?", [gone, gone_len])
        ids = [row[0] for row in con.execute("SELECT paper_id FROM search_changed WHERE current ORDER BY paper_id").fetchall()]
        if ids:
            _add(con, ids)
        unsorted = con.execute("SELECT unsorted FROM search_state").fetchone()[0]
        if unsorted >= SORT_AFTER_ROWS:
            sort_postings(con)
        return True
    finally:
        con.execute("DROP TABLE IF EXISTS search_changed")


def sort_postings(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TABLE search_postings AS SELECT * FROM search_postings ORDER BY termid, docid")
    con.execute("UPDATE search_state SET unsorted = 0")


def _add(con: duckdb.DuckDBPyConnection, ids: list[str]) -> None:
    """Index these papers' current records (none of them indexed now)."""
    tokenizer().install(con)
    if len(ids) <= FEW_PAPERS:  # pushed into each table's scan as a literal list (read_tables.FEW_PAPERS says why)
        literal = literal_list(ids)
        records = f"(SELECT * FROM current_records WHERE paper_id IN ({literal}))"
        papers = f"(SELECT id, abstract FROM papers WHERE id IN ({literal}))"
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE search_ids AS SELECT unnest(?::VARCHAR[]) AS id", [ids])
        records = "(SELECT * FROM current_records WHERE paper_id IN (SELECT id FROM search_ids))"
        papers = "(SELECT id, abstract FROM papers WHERE id IN (SELECT id FROM search_ids))"
    next_docid, next_termid = con.execute("SELECT next_docid, next_termid FROM search_state").fetchone()
    try:
        # The fields match_bm25 indexed (title, summary, abstract, tags), one text with spaces between: the same
        # words, since the tokenizer splits at spaces.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE search_new AS
            SELECT (? + row_number() OVER (ORDER BY r.paper_id) - 1)::INTEGER AS docid, r.paper_id,
                   {VERSION.replace('extraction_id', 'r.extraction_id').replace('content_hash', 'r.content_hash')} AS version,
                   concat_ws(' ', r.title, r.summary, p.abstract, array_to_string(r.tasks, ' '),
                             array_to_string(r.methods, ' '), array_to_string(r.benchmarks, ' ')) AS text
            FROM {records} r JOIN {papers} p ON p.id = r.paper_id""", [next_docid])
        con.execute("""
            CREATE OR REPLACE TEMP TABLE search_counts AS
            SELECT docid, stem(word, 'porter') AS term, count(*)::INTEGER AS tf
            FROM (SELECT docid, unnest(search_tokenize(text)) AS word FROM search_new)
            WHERE word <> '' AND word NOT IN (SELECT sw FROM search_stopwords)
            GROUP BY ALL""")
        con.execute("""
            INSERT INTO search_terms
            SELECT term, (? + row_number() OVER (ORDER BY term) - 1)::INTEGER
            FROM (SELECT DISTINCT term FROM search_counts) ANTI JOIN search_terms USING (term)""", [next_termid])
        con.execute("""
            CREATE OR REPLACE TEMP TABLE search_lengths AS
            SELECT n.docid, coalesce(sum(c.tf), 0)::INTEGER AS len
            FROM search_new n LEFT JOIN search_counts c USING (docid) GROUP BY n.docid""")
        added = con.execute("""
            INSERT INTO search_postings
            SELECT t.termid, c.docid, c.tf, l.len
            FROM search_counts c JOIN search_terms t USING (term) JOIN search_lengths l USING (docid)
            ORDER BY t.termid, c.docid""").fetchone()[0]
        con.execute("""INSERT INTO search_docs SELECT n.docid, n.paper_id, n.version, l.len
                       FROM search_new n JOIN search_lengths l USING (docid) ORDER BY n.docid""")
        docs, total_len = con.execute("SELECT count(*), coalesce(sum(len), 0) FROM search_lengths").fetchone()
        was_empty = con.execute("SELECT count(*) = ? FROM search_postings", [added]).fetchone()[0]
        con.execute("""UPDATE search_state SET docs = docs + ?, total_len = total_len + ?, next_docid = next_docid + ?,
                          next_termid = (SELECT coalesce(max(termid), -1) + 1 FROM search_terms),
                          unsorted = unsorted + ?""", [docs, total_len, docs, 0 if was_empty else added])
    finally:
        for table in ("search_new", "search_counts", "search_lengths", "search_ids"):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def scores(con: duckdb.DuckDBPyConnection, text: str) -> tuple["np.ndarray", "np.ndarray"]:
    """The docids of the papers matching any of the text's terms, and their BM25 scores."""
    import numpy as np

    terms = tokenizer().query_terms(text)
    termids = [row[0] for row in con.execute(
        f"SELECT termid FROM search_terms WHERE term IN ({literal_list(terms)}) ORDER BY termid").fetchall()] if terms else []
    if not termids:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    docs, total_len, next_docid = con.execute("SELECT docs, total_len, next_docid FROM search_state").fetchone()
    avgdl = total_len / docs
    totals = np.zeros(next_docid, np.float64)
    matched = np.zeros(next_docid, np.bool_)
    for termid in termids:
        # One term at a time, its id a literal: DuckDB prunes row groups by it (a parameter, or an IN list of
        # spread-out ids, reads more of the table).
        postings = con.execute(f"SELECT docid, tf, len FROM search_postings WHERE termid = {int(termid)}").fetchnumpy()
        docids = np.asarray(postings["docid"])
        tf = np.asarray(postings["tf"], np.float64)
        length = np.asarray(postings["len"], np.float64)
        df = len(docids)
        # match_bm25's expression, in its order of operations (DuckDB's log is base 10).
        idf = np.log10((((docs - df) + 0.5) / (df + 0.5)) + 1)
        totals[docids] += idf * ((tf * (K1 + 1)) / (tf + (K1 * ((1 - B) + (B * (length / avgdl))))))
        matched[docids] = True
    hits = np.flatnonzero(matched)
    return hits, totals[hits]


def best(docids: "np.ndarray", values: "np.ndarray", count: int) -> tuple["np.ndarray", "np.ndarray"]:
    """The `count` best-scored documents and any tied with the last of them (ties are ordered by title later)."""
    import numpy as np

    if count <= 0 or len(values) <= count:
        return docids, values
    kth = np.partition(values, len(values) - count)[len(values) - count]
    keep = values >= kth
    return docids[keep], values[keep]


def hits_table(con: duckdb.DuckDBPyConnection, docids: "np.ndarray", values: "np.ndarray") -> list[str] | None:
    """The scored papers as the temporary table search_hits (id, score) of this connection (a read-only database
    allows them). A few are looked up by docid through search_docs' primary key, and their paper ids returned, so
    the caller can fetch their records by primary key too; many are joined, and None returned."""
    scored = pa.table({"docid": pa.array(docids, pa.int32()), "score": pa.array(values, pa.float64())})
    few = len(docids) <= FEW_PAPERS
    con.register("search_scored", scored)
    try:
        where = f"WHERE d.docid IN ({', '.join(str(int(d)) for d in docids)})" if few and len(docids) else ""
        con.execute(f"""CREATE OR REPLACE TEMP TABLE search_hits AS
                        SELECT d.paper_id AS id, s.score FROM search_docs d JOIN search_scored s USING (docid) {where}""")
    finally:
        con.unregister("search_scored")
    return [row[0] for row in con.execute("SELECT id FROM search_hits").fetchall()] if few else None
