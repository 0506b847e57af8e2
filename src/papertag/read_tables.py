"""Tables derived for the reads that must stay fast at a million papers (issue 11): `query --benchmark`, the web
list with its facet counts, and the benchmarks page.

Measured on 1,000,000 synthetic papers (bench/read_scale.py): DuckDB answers a tag look-up over the base tables with
whole-column scans of papers, extractions and 5,000,000 tags joined by hash, whatever the SQL, because it has no
index join. These tables give the reads an access path instead:

- current_records: one row per paper with a current extraction, the whole record a reader shows (paper columns,
  summary, domain, tag values in the model's order and their keys), with a primary key on the paper id, so a
  handful of records is fetched through the index instead of joining three tables.
- benchmark_records: the same records once per benchmark they name, sorted by the benchmark's key: DuckDB fetches
  a few hundred scattered rows by index at tens of milliseconds each (list columns especially), but reads a run of
  sorted rows in a few, so `query --benchmark` reads one run (12-24 ms for a mid-frequency name at a million
  papers, against 230 ms by primary key).
- current_tags: each tag of each current record (kind, key, value, paper id). It is rewritten sorted by
  (kind, key) at the end of an ingest once enough rows were added since (CLUSTER_AFTER_ROWS), so DuckDB's
  min/max statistics per row group skip all but the one or two groups that hold a key.
- facet_counts: paper counts per tag (and per domain), for all papers and within each domain: the list page's
  sidebar without a filter, and the benchmarks page. Rebuilt at the end of an ingest; readers use it only while
  read_state says nothing changed since, and count live otherwise.

The Store keeps current_records and current_tags in the same transaction as every write that changes what a
reader sees (refresh_papers), so they are never stale; only their clustering and facet_counts wait for the end of
the run.
"""

from __future__ import annotations

# The paper columns a record copies; a paper whose copy differs is refreshed after merge_papers.
RECORD_PAPER_COLUMNS = ("title", "content_hash", "category_domain", "authors", "published", "updated", "categories",
                        "arxiv_id", "arxiv_version", "doi", "url", "venue", "source", "added_at")
TAG_KINDS = ("task", "method", "benchmark")

CREATE_TABLES = """
    CREATE TABLE current_records (
        paper_id VARCHAR PRIMARY KEY,
        extraction_id BIGINT NOT NULL,
        title VARCHAR NOT NULL,
        summary VARCHAR,
        tasks VARCHAR[] NOT NULL,
        methods VARCHAR[] NOT NULL,
        benchmarks VARCHAR[] NOT NULL,
        task_keys VARCHAR[] NOT NULL,
        method_keys VARCHAR[] NOT NULL,
        benchmark_keys VARCHAR[] NOT NULL,
        domain VARCHAR,
        category_domain VARCHAR,
        model VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        authors VARCHAR[],
        published DATE,
        updated DATE,
        categories VARCHAR[],
        arxiv_id VARCHAR,
        arxiv_version INTEGER,
        doi VARCHAR,
        url VARCHAR,
        venue VARCHAR,
        source VARCHAR,
        added_at TIMESTAMP NOT NULL,
        content_hash VARCHAR NOT NULL
    );
    -- The same records once per distinct benchmark key, sorted by it: a benchmark's records are read as one run.
    CREATE TABLE benchmark_records AS SELECT ''::VARCHAR AS key, * FROM current_records LIMIT 0;
    CREATE TABLE current_tags (kind VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR NOT NULL,
                               paper_id VARCHAR NOT NULL);
    -- Which papers have a text: 'similar' turns its nearest texts into papers through this index (a scan of the
    -- papers' hashes took 100 ms at a million papers; an index on papers itself would forbid updating the hash).
    CREATE TABLE paper_hashes (content_hash VARCHAR NOT NULL, paper_id VARCHAR NOT NULL);
    CREATE TABLE facet_counts (scope VARCHAR NOT NULL,      -- '' for all papers, or a domain
                               kind VARCHAR NOT NULL,       -- 'domain', 'task', 'method' or 'benchmark'
                               key VARCHAR NOT NULL, value VARCHAR, papers BIGINT NOT NULL);
    -- changes counts the writes to current_records; facets_at is its value when facet_counts was built, and
    -- unclustered the current_tags rows added since they were last sorted.
    CREATE TABLE read_state (changes BIGINT NOT NULL, facets_at BIGINT NOT NULL, unclustered BIGINT NOT NULL);
    INSERT INTO read_state VALUES (0, -1, 0);
"""

# The record of each paper in `ids` (SQL yielding paper ids) whose current extraction describes its current text.
RECORDS_OF = """
    SELECT p.id AS paper_id, e.id AS extraction_id, p.title, e.summary,
        coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'task'), []) AS tasks,
        coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'method'), []) AS methods,
        coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'benchmark'), []) AS benchmarks,
        coalesce(list(t.key ORDER BY t.position) FILTER (WHERE t.kind = 'task'), []) AS task_keys,
        coalesce(list(t.key ORDER BY t.position) FILTER (WHERE t.kind = 'method'), []) AS method_keys,
        coalesce(list(t.key ORDER BY t.position) FILTER (WHERE t.kind = 'benchmark'), []) AS benchmark_keys,
        e.domain, p.category_domain, e.model, e.prompt_version, p.authors, p.published, p.updated, p.categories,
        p.arxiv_id, p.arxiv_version, p.doi, p.url, p.venue, p.source, p.added_at, p.content_hash
    FROM current_extraction c
    JOIN extractions e ON e.id = c.extraction_id
    JOIN papers p ON p.id = c.paper_id AND p.content_hash = e.content_hash
    LEFT JOIN tags t ON t.extraction_id = e.id
    {where}
    GROUP BY ALL
"""
# Each record's tags as rows, from the records themselves (its tags, not a scan of all 5,000,000).
TAGS_OF_RECORDS = " UNION ALL ".join(
    f"""SELECT '{kind}' AS kind, unnest({kind}_keys) AS key, unnest({kind}s) AS value, paper_id
        FROM current_records {{where}}""" for kind in TAG_KINDS)

BENCHMARK_RECORDS_OF = "SELECT unnest(list_distinct(benchmark_keys)) AS key, * FROM current_records {where}"
SORT_TAGS = ("CREATE OR REPLACE TABLE current_tags AS SELECT * FROM current_tags ORDER BY kind, key, paper_id;\n"
             "CREATE OR REPLACE TABLE benchmark_records AS SELECT * FROM benchmark_records ORDER BY key, title;\n")
BUILD_FACETS = """
    CREATE OR REPLACE TABLE facet_counts AS
    SELECT '' AS scope, kind, key, mode(value) AS value, count(DISTINCT paper_id) AS papers
        FROM current_tags GROUP BY kind, key
    UNION ALL
    SELECT r.domain, t.kind, t.key, mode(t.value), count(DISTINCT t.paper_id)
        FROM current_tags t JOIN current_records r ON r.paper_id = t.paper_id
        WHERE r.domain IS NOT NULL GROUP BY r.domain, t.kind, t.key
    UNION ALL
    SELECT '', 'domain', coalesce(domain, ''), domain, count(*) FROM current_records GROUP BY domain
    UNION ALL
    SELECT domain, 'domain', domain, domain, count(*) FROM current_records WHERE domain IS NOT NULL GROUP BY domain
    ORDER BY scope, kind, papers DESC, value
"""
# A new database, or one made before these tables: built from the base tables, sorted, facets counted.
MIGRATION = (CREATE_TABLES
             + f"INSERT INTO current_records {RECORDS_OF.format(where='')};\n"
             + f"INSERT INTO current_tags SELECT * FROM ({TAGS_OF_RECORDS.format(where='')}) ORDER BY kind, key, paper_id;\n"
             + f"INSERT INTO benchmark_records SELECT * FROM ({BENCHMARK_RECORDS_OF.format(where='')}) ORDER BY key, title;\n"
             + "INSERT INTO paper_hashes SELECT content_hash, id FROM papers;\n"
             + "CREATE INDEX paper_hashes_content_hash ON paper_hashes (content_hash);\n"
             + BUILD_FACETS + ";\n"
             + "UPDATE read_state SET facets_at = changes;\n")

# Rows added to current_tags since the last sort before the end of an ingest sorts them again: unsorted rows sit in
# row groups that every look-up reads (about 1 ms per 100,000 keys here), sorting 5,000,000 takes seconds.
CLUSTER_AFTER_ROWS = 200_000


# Up to this many papers (an ingest's batch) are refreshed through literal id lists, which DuckDB pushes into each
# table's scan (and answers from primary keys): joining a subquery of ids made it join whole tables, 2-5 s per
# batch of 64 at a million papers, against ~25-100 ms for the writes themselves.
FEW_PAPERS = 2000


def literal_list(values: list[str]) -> str:
    """A SQL list of string literals (DuckDB uses an index, or prunes a scan, for literals, not for parameters)."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def records_of_few(literal: str) -> str:
    """RECORDS_OF for the papers in a literal id list, each table filtered before it is joined."""
    return (RECORDS_OF.format(where="")
            .replace("FROM current_extraction c", f"FROM (SELECT * FROM current_extraction WHERE paper_id IN ({literal})) c")
            .replace("JOIN extractions e", f"JOIN (SELECT * FROM extractions WHERE paper_id IN ({literal})) e")
            .replace("JOIN papers p", f"JOIN (SELECT * FROM papers WHERE id IN ({literal})) p")
            .replace("LEFT JOIN tags t", f"LEFT JOIN (SELECT * FROM tags WHERE paper_id IN ({literal})) t"))


def refresh_papers(con, ids_sql: str, params: list | None = None) -> None:
    """Recompute the records and tags of the papers `ids_sql` yields (inside the caller's transaction)."""
    ids = [row[0] for row in con.execute(f"SELECT DISTINCT id FROM ({ids_sql}) i(id)", params or []).fetchall()]
    if not ids:
        return
    few = len(ids) <= FEW_PAPERS
    if not few:
        con.execute("CREATE OR REPLACE TEMP TABLE refreshed_ids (id VARCHAR)")
        con.execute("INSERT INTO refreshed_ids SELECT unnest(?::VARCHAR[])", [ids])
    try:
        where = f"WHERE paper_id IN ({literal_list(ids)})" if few else "WHERE paper_id IN (SELECT id FROM refreshed_ids)"
        con.execute(f"DELETE FROM current_tags {where}")
        con.execute(f"DELETE FROM benchmark_records {where}")
        con.execute(f"DELETE FROM current_records {where}")
        records = (records_of_few(literal_list(ids)) if few
                   else RECORDS_OF.format(where="WHERE c.paper_id IN (SELECT id FROM refreshed_ids)"))
        con.execute(f"INSERT INTO current_records {records}")
        added = con.execute(f"INSERT INTO current_tags {TAGS_OF_RECORDS.format(where=where)}").fetchone()[0]
        con.execute(f"INSERT INTO benchmark_records {BENCHMARK_RECORDS_OF.format(where=where)}")
        con.execute("UPDATE read_state SET changes = changes + 1, unclustered = unclustered + ?", [added])
    finally:
        con.execute("DROP TABLE IF EXISTS refreshed_ids")


def rehash_papers(con, papers_sql: str) -> None:
    """paper_hashes for papers (SQL yielding id, content_hash) that are new or have a new text."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE rehashed AS {papers_sql}")
    try:
        con.execute("DELETE FROM paper_hashes WHERE paper_id IN (SELECT id FROM rehashed)")
        con.execute("INSERT INTO paper_hashes SELECT content_hash, id FROM rehashed")
    finally:
        con.execute("DROP TABLE IF EXISTS rehashed")


def refresh_at_end(con) -> dict[str, bool]:
    """The end-of-ingest step (inside the caller's transaction): sort current_tags again if enough rows came in
    since, and recount facet_counts if anything changed; says which it did."""
    changes, facets_at, unclustered = con.execute("SELECT changes, facets_at, unclustered FROM read_state").fetchone()
    sorted_now = unclustered >= CLUSTER_AFTER_ROWS
    if sorted_now:
        con.execute(SORT_TAGS)
        con.execute("UPDATE read_state SET unclustered = 0")
    counted = facets_at != changes
    if counted:
        con.execute(BUILD_FACETS)
        con.execute("UPDATE read_state SET facets_at = changes")
    return {"sorted": sorted_now, "counted": counted}
