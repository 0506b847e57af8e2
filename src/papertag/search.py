"""Keyword search's use of DuckDB's full-text-search extension, loaded from its PyPI package: its stemmer and its
tokenizer (the index itself is search_index.py's). Databases from before migration 11 kept an fts index over a
table `paper_search`; a reader still searches one of those through the extension's match_bm25 until its next write.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

import duckdb

from .errors import ConfigurationError

LEGACY_TABLE = "paper_search"
LEGACY_SCHEMA = f"fts_main_{LEGACY_TABLE}"  # where create_fts_index put its tables and the match_bm25 macro
NO_INDEX = "no search index yet; run 'papertag ingest FILE' to build the search index"


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


class Tokenizer:
    """fts's own tokenizer, taken from an index it builds on an empty table in a private in-memory database: the
    `tokenize` macro (split on the ignore pattern, lower case, accents stripped) and the English stopwords. Index
    and queries use exactly the words match_bm25 would, without copying the extension's constants."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        load_fts(self.con)
        self.con.execute("CREATE TABLE probe (id VARCHAR, text VARCHAR)")
        self.con.execute("PRAGMA create_fts_index('probe', 'id', 'text')")
        self.macro = self.con.execute(
            """SELECT macro_definition FROM duckdb_functions()
               WHERE schema_name = 'fts_main_probe' AND function_name = 'tokenize'""").fetchone()[0]
        self.stopwords = [row[0] for row in self.con.execute("SELECT sw FROM fts_main_probe.stopwords").fetchall()]
        self.lock = threading.Lock()  # one DuckDB connection, shared by a web server's threads

    def query_terms(self, text: str) -> list[str]:
        """A query's distinct terms as match_bm25 takes them: stemmed, stopwords not removed (the index has none,
        but a stopword's stem can be an indexed word's)."""
        with self.lock:
            return [row[0] for row in self.con.execute(
                "SELECT DISTINCT stem(unnest(fts_main_probe.tokenize(?)), 'porter') AS term ORDER BY term", [text]
            ).fetchall() if row[0]]

    def install(self, con: duckdb.DuckDBPyConnection) -> None:
        """The tokenizer on a writer's connection, as the temporary macro search_tokenize and table
        search_stopwords, for indexing papers where they are stored."""
        load_fts(con)
        con.execute(f"CREATE OR REPLACE TEMP MACRO search_tokenize(s) AS {self.macro}")
        con.execute("CREATE OR REPLACE TEMP TABLE search_stopwords (sw VARCHAR)")
        con.execute("INSERT INTO search_stopwords SELECT unnest(?::VARCHAR[])", [self.stopwords])


@cache
def tokenizer() -> Tokenizer:
    return Tokenizer()


def has_legacy_index(con: duckdb.DuckDBPyConnection) -> bool:
    """An fts index from before migration 11, in a database not written since."""
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() AND schema_name = ?",
        [LEGACY_SCHEMA],
    ).fetchone()[0])
