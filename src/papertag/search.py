"""Keyword search: DuckDB's full-text-search extension, loaded from its PyPI package, over each paper's current text.

The index is a table `paper_search` (id, title, summary, abstract, tags of the current extraction) with a BM25
index on it. The Store rebuilds it at the end of an ingest when the current extractions changed; queries only read.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from .errors import ConfigurationError

SEARCH_TABLE = "paper_search"
SEARCH_SCHEMA = f"fts_main_{SEARCH_TABLE}"  # where create_fts_index puts its tables and the match_bm25 macro
SEARCH_FIELDS = ("title", "summary", "abstract", "tags")
NO_INDEX = "no search index yet; run 'papertag ingest FILE' to build the search index"

# What the index is built from: every tagged paper with its current summary and tags, as one row.
BUILD_SEARCH_TABLE = f"""
    CREATE OR REPLACE TABLE {SEARCH_TABLE} AS
    SELECT p.id, p.title, e.summary, p.abstract,
           coalesce(string_agg(t.value, ' ' ORDER BY t.kind, t.position), '') AS tags
    FROM papers p
    JOIN current_extractions e ON e.paper_id = p.id
    LEFT JOIN tags t ON t.extraction_id = e.id
    GROUP BY ALL
"""
CREATE_INDEX = (f"PRAGMA create_fts_index('{SEARCH_TABLE}', 'id', "
                + ", ".join(f"'{field}'" for field in SEARCH_FIELDS) + ", overwrite=1)")
# Changes whenever a paper gains, loses or replaces its current extraction (a changed text has none until it is
# tagged again), so an ingest that changed nothing leaves the index alone. Kept as the search table's comment.
CONTENT_FINGERPRINT = "SELECT count(*) || ':' || coalesce(bit_xor(hash(paper_id, id)), 0) FROM current_extractions"


def fts_extension_path() -> Path:
    """The extension file inside the duckdb-extension-fts wheel that matches the installed DuckDB."""
    try:
        import duckdb_extension_fts
    except ImportError:
        raise ConfigurationError("keyword search needs the package duckdb-extension-fts "
                            f"(pip install duckdb-extension-fts=={duckdb.__version__})") from None
    path = Path(duckdb_extension_fts.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "fts.duckdb_extension"
    if not path.is_file():
        raise ConfigurationError(f"duckdb-extension-fts has no extension for DuckDB {duckdb.__version__}; "
                            f"install duckdb-extension-fts=={duckdb.__version__}")
    return path


def load_fts(con: duckdb.DuckDBPyConnection) -> None:
    """LOAD straight from the package's file: no network (INSTALL fts by name would download it) and nothing
    copied into ~/.duckdb, which a read-only web server's user may not be able to write."""
    if con.execute("SELECT count(*) FROM duckdb_extensions() WHERE extension_name = 'fts' AND loaded").fetchone()[0]:
        return
    con.execute(f"LOAD '{fts_extension_path()}'")


def has_search_index(con: duckdb.DuckDBPyConnection) -> bool:
    """False for a database written before search existed, until its next ingest."""
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() AND schema_name = ?",
        [SEARCH_SCHEMA],
    ).fetchone()[0])


def indexed_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The content fingerprint the index was built from, or None without an index."""
    if not has_search_index(con):
        return None
    row = con.execute(
        """SELECT comment FROM duckdb_tables()
           WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?""",
        [SEARCH_TABLE],
    ).fetchone()
    return row[0] if row else None
