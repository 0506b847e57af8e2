"""Turn a current test database back into one an older papertag wrote, to test the upgrade path."""

from __future__ import annotations

import duckdb

from papertag.store import PAPER_METADATA_COLUMNS, SCHEMA_VERSION

# What each migration added, undone. A new migration adds its line here, so older-database tests keep working.
UNDO: dict[int, list[str]] = {
    4: ["COMMENT ON TABLE schema_migrations IS NULL"],
    5: ["DROP TABLE paper_vectors"],
    6: ["DROP TABLE digests"],
    7: [f"ALTER TABLE papers DROP COLUMN {column}" for column in PAPER_METADATA_COLUMNS],
    8: ["DROP TABLE arxiv_fetches"],
    9: [f"DROP TABLE {table}" for table in ("current_records", "benchmark_records", "current_tags", "paper_hashes", "facet_counts", "read_state")],
    10: ["ALTER TABLE extractions DROP COLUMN domain_scores"],
    11: [f"DROP TABLE {table}" for table in ("search_docs", "search_terms", "search_postings", "search_state")],
    12: ["ALTER TABLE extractions DROP COLUMN answered_on"],
}


def rewind_schema(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Undo every migration after `version`, newest first, as if that papertag had written the file."""
    assert set(UNDO) >= set(range(version + 1, SCHEMA_VERSION + 1)), "a migration has no UNDO entry"
    for number in range(SCHEMA_VERSION, version, -1):
        for statement in UNDO[number]:
            con.execute(statement)
    con.execute("DELETE FROM schema_migrations WHERE version > ?", [version])
