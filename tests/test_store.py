import duckdb
import pytest

from papertag import store as store_module
from papertag.errors import DatabaseError
from papertag.store import MIGRATIONS, SCHEMA_VERSION, Store


def test_version_1_database_is_migrated_with_its_current_extractions(db_path):
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
    con.execute(MIGRATIONS[0])
    con.execute("INSERT INTO schema_migrations VALUES (1, now())")
    con.execute("INSERT INTO papers VALUES ('p1', 'T', 'A', 'h1', 'f', now()), ('p2', 'T2', 'B', 'h2-new', 'f', now())")
    for paper, content_hash, status, when in [("p1", "h1", "ok", "2026-01-01"), ("p1", "h1", "ok", "2026-02-01"),
                                              ("p1", "h1", "failed", "2026-03-01"), ("p2", "h2-old", "ok", "2026-01-01")]:
        con.execute(
            """INSERT INTO extractions (paper_id, content_hash, model, prompt_version, status, summary, prompt_tokens,
                   completion_tokens, latency_s, truncated, created_at, dropped_tags)
               VALUES (?, ?, 'm', 'v', ?, ?, 0, 0, 0, false, ?, [])""",
            [paper, content_hash, status, f"summary {when}", when],
        )
    con.close()

    store = Store(db_path)
    try:
        assert store.con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION
        current = store.con.execute("SELECT paper_id, summary FROM current_extractions").fetchall()
        # p1: the newest good extraction; p2: its text changed since, so nothing is current.
        assert current == [("p1", "summary 2026-02-01")]
        assert store.con.execute("SELECT DISTINCT schema_version FROM extractions").fetchall() == [("",)]
    finally:
        store.close()


def test_migrations_are_applied_once(db_path):
    Store(db_path).close()
    store = Store(db_path)
    try:
        assert store.con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(store_module.MIGRATIONS)
    finally:
        store.close()


def test_metadata_migration_keeps_old_rows_and_extractions_as_they_were(db_path):
    """A database made before paper metadata existed (schema 5) upgrades; its papers, extractions and tags are
    unchanged and its papers have no metadata."""
    metadata_version = next(number for number, sql in enumerate(MIGRATIONS, start=1) if "arxiv_id VARCHAR" in sql)
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
    for version, sql in enumerate(MIGRATIONS[:metadata_version - 1], start=1):
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
    con.execute("INSERT INTO papers VALUES ('p1', 'Title', 'Abstract', 'h1', 'old.txt', '2026-01-01 10:00:00')")
    con.execute(
        """INSERT INTO extractions (id, paper_id, content_hash, model, prompt_version, schema_version, status, summary,
               domain, prompt_tokens, completion_tokens, latency_s, truncated, created_at, dropped_tags)
           VALUES (7, 'p1', 'h1', 'm', 'v', 's', 'ok', 'A summary.', 'nlp', 10, 5, 1.5, false, '2026-01-01', [])""")
    con.execute("INSERT INTO tags VALUES (7, 'p1', 'benchmark', 'GLUE', 'glue', 0)")
    con.execute("INSERT INTO current_extraction VALUES ('p1', 7)")
    tables = ("papers", "extractions", "tags", "current_extraction")
    before = {table: con.execute(f"SELECT * FROM {table}").fetchall() for table in tables}
    columns = {table: ", ".join(column[0] for column in con.execute(f"DESCRIBE {table}").fetchall()) for table in tables}
    con.close()

    store = Store(db_path)
    try:
        assert store.con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION
        for table in tables:  # later migrations may add columns; the old ones keep their values
            assert store.con.execute(f"SELECT {columns[table]} FROM {table}").fetchall() == before[table]
        assert store.con.execute(
            "SELECT authors, categories, arxiv_id, doi, category_domain FROM papers").fetchall() == [(None,) * 5]
        assert store.con.execute("SELECT paper_id, summary FROM current_extractions").fetchall() == [("p1", "A summary.")]
    finally:
        store.close()


def test_a_migration_that_cannot_apply_is_one_clear_error_and_leaves_the_file_usable(db_path):
    """A file whose tables are ahead of its recorded version (here: the newest step recorded as not applied) is
    refused with the step and DuckDB's reason, not a traceback, and the earlier steps stay applied."""
    Store(db_path).close()
    con = duckdb.connect(str(db_path))
    con.execute("DELETE FROM schema_migrations WHERE version = ?", [SCHEMA_VERSION])
    con.close()
    with pytest.raises(DatabaseError) as refused:
        Store(db_path)
    message = str(refused.value)
    assert f"from schema {SCHEMA_VERSION - 1} to {SCHEMA_VERSION}" in message and "\n" not in message
    con = duckdb.connect(str(db_path), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION - 1
    con.close()
    with pytest.raises(DatabaseError, match="cannot upgrade"):  # the writer lock was released: not "busy"
        Store(db_path)
