"""DuckDB storage: papers, extractions (raw response kept) and one row per tag, built by migrations."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import duckdb
import pyarrow as pa

from .category_domains import category_domain
from .errors import DatabaseBusy, DatabaseError  # DatabaseBusy is also importable from here, as before
from .identity import TITLE_KEY_SQL, Resolved, resolve
from . import read_tables
from .records import METADATA_FIELDS, Paper
from . import search_index
from .search import LEGACY_SCHEMA, LEGACY_TABLE
from .text import tag_key

if TYPE_CHECKING:  # reading commands need no LLM stack
    from .extract import Extraction
    from .prompts import Prompt

# The metadata columns of papers, added by migration 6 (never edit: a new column needs a new migration). A
# reader of a database not yet upgraded sees them as NULL (queries.py).
PAPER_METADATA_COLUMNS: dict[str, str] = {
    "authors": "VARCHAR[]",
    "categories": "VARCHAR[]",  # arXiv categories, the primary one first
    "published": "DATE",  # first version, or publication
    "updated": "DATE",  # newest version, or the record's last update
    "arxiv_id": "VARCHAR",  # without its version
    "arxiv_version": "INTEGER",
    "doi": "VARCHAR",  # lower case, no resolver prefix
    "url": "VARCHAR",
    "venue": "VARCHAR",
    "category_domain": "VARCHAR",  # what the categories say the domain is (category_domains.py)
}
PAPERTAG_MARK = "papertag"  # comment on schema_migrations: this file was made by papertag


def _search_postings(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 11: keyword search from postings that each ingest updates (search_index.py), built here from the
    current records; the fts index it replaces (rebuilt in full after every ingest: 131 s at a million papers) goes."""
    con.execute(search_index.CREATE_TABLES)
    con.execute(f"DROP SCHEMA IF EXISTS {LEGACY_SCHEMA} CASCADE")
    con.execute(f"DROP TABLE IF EXISTS {LEGACY_TABLE}")
    search_index.update(con)


# Each migration runs once, in order, inside one transaction with its version row (SQL, or a function of the
# connection for one that needs more than SQL).
MIGRATIONS: list = [
    """
    CREATE TABLE papers (
        id VARCHAR PRIMARY KEY,
        title VARCHAR NOT NULL,
        abstract VARCHAR NOT NULL,
        content_hash VARCHAR NOT NULL,
        source VARCHAR,
        added_at TIMESTAMP NOT NULL
    );
    CREATE SEQUENCE extraction_ids;
    CREATE TABLE extractions (
        id BIGINT NOT NULL DEFAULT nextval('extraction_ids'),
        paper_id VARCHAR NOT NULL,
        content_hash VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        status VARCHAR NOT NULL,            -- 'ok' or 'failed'
        summary VARCHAR,
        domain VARCHAR,
        raw_response VARCHAR,
        error VARCHAR,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        latency_s DOUBLE NOT NULL,
        truncated BOOLEAN NOT NULL,
        created_at TIMESTAMP NOT NULL,
        dropped_tags VARCHAR[] NOT NULL     -- 'kind: value' removed by grounding
    );
    CREATE INDEX extractions_key ON extractions (paper_id, model, prompt_version);
    CREATE TABLE tags (
        extraction_id BIGINT NOT NULL,
        paper_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,              -- 'task', 'method' or 'benchmark'
        value VARCHAR NOT NULL,             -- as the model wrote it
        key VARCHAR NOT NULL,               -- case, punctuation and spacing folded
        position INTEGER NOT NULL
    );
    CREATE INDEX tags_kind_key ON tags (kind, key);
    -- The newest successful extraction of each paper's current text is what readers see.
    CREATE VIEW current_extractions AS
        SELECT e.* FROM extractions e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
        WHERE e.status = 'ok'
        QUALIFY row_number() OVER (PARTITION BY e.paper_id ORDER BY e.created_at DESC, e.id DESC) = 1;
    -- Eval runs are kept so a prompt or model change comes with before-and-after numbers.
    CREATE SEQUENCE eval_run_ids;
    CREATE TABLE eval_runs (
        id BIGINT NOT NULL DEFAULT nextval('eval_run_ids'),
        created_at TIMESTAMP NOT NULL,
        model VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        gold_path VARCHAR NOT NULL,
        gold_sha256 VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        papers INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        metrics JSON NOT NULL
    );
    """,
    # 2: the cache key gains the schema version; indexes go (they slow bulk loads, and scans are fast);
    # the current extraction of each paper becomes a pointer kept at write time, so reads need no window.
    """
    DROP VIEW current_extractions;
    DROP INDEX extractions_key;
    DROP INDEX tags_kind_key;
    ALTER TABLE extractions ADD COLUMN schema_version VARCHAR DEFAULT '';
    CREATE TABLE current_extraction (paper_id VARCHAR PRIMARY KEY, extraction_id BIGINT NOT NULL);
    INSERT INTO current_extraction
        SELECT e.paper_id, e.id FROM extractions e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
        WHERE e.status = 'ok'
        QUALIFY row_number() OVER (PARTITION BY e.paper_id ORDER BY e.created_at DESC, e.id DESC) = 1;
    -- The newest successful extraction of each paper, while the paper's text is the one it was made from.
    CREATE VIEW current_extractions AS
        SELECT e.* FROM current_extraction c
        JOIN extractions e ON e.id = c.extraction_id
        JOIN papers p ON p.id = c.paper_id AND p.content_hash = e.content_hash;
    """,
    # 3: OpenAI Batch API jobs (batch.py): what was sent, so collect can match results to papers exactly once.
    """
    CREATE TABLE batch_jobs (
        batch_id VARCHAR PRIMARY KEY,
        input_file_id VARCHAR NOT NULL,
        model VARCHAR NOT NULL,                 -- model spec, openai:<model>
        prompt_version VARCHAR NOT NULL,        -- of the messages sent
        base_url VARCHAR NOT NULL,              -- never the API key
        max_abstract_chars INTEGER NOT NULL,    -- collect grounds against the abstract exactly as sent
        papers STRUCT(id VARCHAR, content_hash VARCHAR)[] NOT NULL,
        status VARCHAR NOT NULL,                -- as last seen from the API
        error VARCHAR,
        submitted_at TIMESTAMP NOT NULL,
        checked_at TIMESTAMP,
        collected_at TIMESTAMP                  -- set once its results are stored; never collected twice
    );
    """,
    # 4: the mark that tells papertag's databases from other DuckDB files (older ones are known by their tables).
    f"COMMENT ON TABLE schema_migrations IS '{PAPERTAG_MARK}';",
    # 5: one embedding per paper text and embedding model (embed.py), for 'papertag similar'. Keyed by content
    # hash like extractions, so an unchanged text is never embedded again, whatever its id.
    """
    CREATE TABLE paper_vectors (
        content_hash VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        vector FLOAT[384] NOT NULL,             -- unit length: cosine similarity is the dot product
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (content_hash, model)
    );
    """,
    # 6: 'papertag digest' without --since covers the papers tagged after the last digest's newest paper: one row
    # per digest that listed papers, the position being the latest covered_until.
    """
    CREATE TABLE digests (
        created_at TIMESTAMP NOT NULL,
        covered_until TIMESTAMP NOT NULL,       -- when the newest paper of this digest was first tagged
        papers INTEGER NOT NULL
    );
    """,
    # 7: paper metadata from the richer sources (arXiv, BibTeX, Semantic Scholar), all NULL for older rows, and
    # the domain the arXiv categories point to (category_domains.py), a second opinion next to the model's.
    "".join(f"ALTER TABLE papers ADD COLUMN {name} {sql_type};\n" for name, sql_type in PAPER_METADATA_COLUMNS.items()),
    # 8: 'papertag arxiv' runs not yet finished (arxiv_fetch.py): how far the pages got, and the papers they gave,
    # so a run stopped by Ctrl-C or a failing API resumes where it stopped. The row goes when the run finishes.
    """
    CREATE TABLE arxiv_fetches (
        run_key VARCHAR PRIMARY KEY,            -- the search query and its dates (arxiv_fetch.run_key)
        next_start INTEGER NOT NULL,            -- results received so far: where the next page starts
        total_results INTEGER,                  -- opensearch:totalResults of the last page
        exhausted BOOLEAN NOT NULL,             -- an empty page or totalResults reached: nothing more to ask
        paper_ids VARCHAR[] NOT NULL,           -- the stored papers the pages gave, in order
        started_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    );
    """,
    # 9: tables derived for fast reads at a million papers (read_tables.py): the current record of each paper
    # with a primary key, its tags sorted by (kind, key), and the facet counts; built here from the base tables.
    read_tables.MIGRATION,
    # 10: the model's probability per domain label, read from the answer's token log-probabilities
    # (domain_logprobs.py), as a JSON object; NULL where the server gave none. Re-checks of a stored answer use it.
    "ALTER TABLE extractions ADD COLUMN domain_scores VARCHAR;",
    # 11: see _search_postings.
    _search_postings,
    # 12: the machine each answer came from (machine.py): a CPU for the embedded model, a host for a server; NULL
    # for answers stored before it was recorded.
    "ALTER TABLE extractions ADD COLUMN answered_on VARCHAR;",
]
SCHEMA_VERSION = len(MIGRATIONS)
# An extraction is reused only if all of these match; the paper id and its text hash say which text it describes.
CACHE_KEY = ("paper_id", "content_hash", "model", "prompt_version", "schema_version")


def _now() -> datetime:
    """Naive UTC: DuckDB's TIMESTAMP WITH TIME ZONE would need pytz just to read it back."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


READ_WAIT_S = 10.0  # a reader waits out the writer's short batch commits (tens of ms each)
WRITE_WAIT_S = 10.0  # a writer waits out readers; an ingest keeps results in memory and tries again later
LEGACY_TABLES = {"schema_migrations", "papers", "extractions", "tags"}  # databases made before the mark


def connect(path: Path, *, read_only: bool = False, wait_s: float | None = None,
            config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """Open the database, waiting with a short backoff while another process holds its lock."""
    if read_only and not path.exists():
        raise DatabaseError(f"no database at {path}; run 'papertag ingest FILE' first, or pass --db")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    if wait_s is None:
        wait_s = READ_WAIT_S if read_only else WRITE_WAIT_S
    deadline = time.monotonic() + wait_s
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as error:
            message = str(error)
            if "lock" not in message.casefold():
                raise DatabaseError(f"cannot open database {path}: {message.splitlines()[0]}") from None
            if time.monotonic() + delay > deadline:
                holder = re.search(r"PID \d+", message)
                by = f" ({holder.group(0)})" if holder else ""
                raise DatabaseBusy(f"database {path} is in use by another process{by}; wait for it to finish") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        except duckdb.Error as error:
            raise DatabaseError(f"{path} is not a papertag database: {str(error).splitlines()[0]}") from None


def check_papertag(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """The schema version of a papertag database, 0 for an empty one. Anything else is refused before papertag
    writes a byte: someone else's database stays as it was."""
    tables = dict(con.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database()").fetchall())
    objects = con.execute(
        """SELECT (SELECT count(*) FROM duckdb_views() WHERE NOT internal AND database_name = current_database())
                + (SELECT count(*) FROM duckdb_sequences() WHERE database_name = current_database())""").fetchone()[0]
    if not tables and not objects:
        return 0
    if tables.get("schema_migrations") != PAPERTAG_MARK and not LEGACY_TABLES <= set(tables):
        names = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise DatabaseError(f"{path} is not a papertag database (it has other tables: {names or 'views'}); "
                            "pass a new file with --db")
    version = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DatabaseError(f"database {path} was written by a newer papertag (schema {version}, this one knows "
                            f"{SCHEMA_VERSION}); upgrade papertag")
    return version


def open_reader(path: Path, *, config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a papertag database with data in it; it waits out an ingest's short commits."""
    con = connect(path, read_only=True, config=config)
    try:
        if check_papertag(con, path) == 0:
            raise DatabaseError(f"no papers in {path} yet; run 'papertag ingest FILE' first")
    except BaseException:
        con.close()
        raise
    return con


class WriterLock:
    """One papertag writer per database (a lock file next to it): a second ingest into the same file gets a
    clear error before doing any work, instead of failing on DuckDB's lock halfway through."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".lock")
        self.fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 20).decode("ascii", "replace").strip()
                os.close(fd)
                by = f" (PID {holder})" if holder.isdigit() else ""
                raise DatabaseBusy(f"another papertag process{by} is writing to {self.db_path}; "
                                   "wait for it to finish") from None
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break  # the file we locked is still the lock file, not one a finishing writer just removed
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # before unlocking, so a waiting process's inode check sees it is gone
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


PAPER_SCHEMA = pa.schema([
    ("id", pa.string()), ("title", pa.string()), ("abstract", pa.string()), ("content_hash", pa.string()),
    ("source", pa.string()), ("added_at", pa.timestamp("us")),
])
# Optional in merge_papers' input: a table without them (bench/_synth.py) keeps the stored values.
PAPER_METADATA_SCHEMA = pa.schema([
    ("authors", pa.list_(pa.string())), ("categories", pa.list_(pa.string())), ("published", pa.date32()),
    ("updated", pa.date32()), ("arxiv_id", pa.string()), ("arxiv_version", pa.int32()), ("doi", pa.string()),
    ("url", pa.string()), ("venue", pa.string()), ("category_domain", pa.string()),
])
PAPER_COLUMNS = ", ".join(PAPER_SCHEMA.names[:5] + PAPER_METADATA_SCHEMA.names[:-1])  # a stored Paper's columns
EXTRACTION_SCHEMA = pa.schema([
    ("id", pa.int64()), ("paper_id", pa.string()), ("content_hash", pa.string()), ("model", pa.string()),
    ("prompt_version", pa.string()), ("schema_version", pa.string()), ("status", pa.string()),
    ("summary", pa.string()), ("domain", pa.string()), ("raw_response", pa.string()), ("error", pa.string()),
    ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()), ("latency_s", pa.float64()),
    ("truncated", pa.bool_()), ("created_at", pa.timestamp("us")), ("dropped_tags", pa.list_(pa.string())),
    ("domain_scores", pa.string()), ("answered_on", pa.string()),
])
TAG_SCHEMA = pa.schema([
    ("extraction_id", pa.int64()), ("paper_id", pa.string()), ("kind", pa.string()), ("value", pa.string()),
    ("key", pa.string()), ("position", pa.int32()),
])
EXTRACTION_COLUMNS = tuple(EXTRACTION_SCHEMA.names)
TAG_COLUMNS = tuple(TAG_SCHEMA.names)


class Store:
    """Writes go through this class, and the reads a writer needs to decide what to write; reading commands
    live in queries.py.

    The DuckDB file is opened on first use and released by release(): a long ingest holds it only for its short
    batch commits, so readers can open it in between. A lock file keeps out a second writer for the Store's life."""

    def __init__(self, path: Path):
        self.path = path
        self._con: duckdb.DuckDBPyConnection | None = None
        if path.exists() and path.stat().st_size:
            with connect(path, read_only=True) as con:
                check_papertag(con, path)  # someone else's file is refused before anything is written
        self.lock = WriterLock(path)
        self.lock.acquire()
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.open()

    def open(self, wait_s: float | None = None) -> duckdb.DuckDBPyConnection:
        """The open connection, or a new one once readers let go; DatabaseBusy after wait_s (default WRITE_WAIT_S)."""
        if self._con is None:
            self._con = connect(self.path, wait_s=wait_s)
        return self._con

    def release(self) -> None:
        """Close the file until the next write, so readers can open it; waiting for readers is connect's job."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def close(self) -> None:
        self.release()
        self.lock.release()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def migrate(self) -> None:
        applied = check_papertag(self.con, self.path)
        self.con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
        for version in range(applied + 1, SCHEMA_VERSION + 1):
            self.con.execute("BEGIN")
            step = MIGRATIONS[version - 1]
            try:
                if callable(step):
                    step(self.con)
                else:
                    self.con.execute(step)
                self.con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [version, _now()])
            except duckdb.Error as error:
                # A file whose tables do not match its recorded version (edited by hand, or by a development build)
                # gets one clear line; this step is rolled back and the file stays at the last good version.
                self.con.execute("ROLLBACK")
                reason = str(error).splitlines()[0]
                raise DatabaseError(f"cannot upgrade {self.path} from schema {version - 1} to {version}: {reason}; "
                                    f"the file was left at schema {version - 1}") from None
            self.con.execute("COMMIT")
        if applied < SCHEMA_VERSION:
            # Move the schema out of the write-ahead log: DuckDB 1.5 cannot replay an ALTER TABLE on a table with
            # a nextval() default, so a crash before the next checkpoint would leave a database nothing can open.
            self.con.execute("CHECKPOINT")

    def resolve_papers(self, papers: Iterable[Paper]) -> Resolved:
        """The papers as they should be stored: records of one paper merged, and each paper already stored (by
        id, arXiv id, DOI, or normalised title with a near-identical abstract) merged into its row (identity.py),
        with the stored rows that turn out to be one paper."""
        papers = list(papers)
        if not papers:
            return Resolved([])
        keys = pa.table({
            "id": [p.id for p in papers], "arxiv_id": [p.arxiv_id for p in papers], "doi": [p.doi for p in papers],
            "title": [p.title for p in papers],
        }, schema=pa.schema([(name, pa.string()) for name in ("id", "arxiv_id", "doi", "title")]))
        with self._registered(incoming_keys=keys):
            rows = rows_as_dicts(self.con.execute(
                f"""SELECT {PAPER_COLUMNS} FROM papers
                    WHERE id IN (SELECT id FROM incoming_keys)
                       OR arxiv_id IN (SELECT arxiv_id FROM incoming_keys)
                       OR doi IN (SELECT doi FROM incoming_keys)
                       OR {TITLE_KEY_SQL.format(column='title')} IN
                          (SELECT {TITLE_KEY_SQL.format(column='title')} FROM incoming_keys)
                    ORDER BY added_at, id"""
            ))
        return resolve(papers, [stored_paper(row) for row in rows])

    def add_papers(self, papers: Iterable[Paper], absorbed: dict[str, str] | None = None) -> int:
        """Insert new papers and update changed ones (resolve_papers says what they are), and fold each absorbed
        row into the one that stays; returns how many were new or had a changed text."""
        papers = list(papers)
        now = _now()
        metadata = {name: [getattr(p, name) or None for p in papers] for name in METADATA_FIELDS}
        metadata["category_domain"] = [category_domain(p.categories) for p in papers]
        return self.merge_papers(pa.table({
            "id": [p.id for p in papers], "title": [p.title for p in papers], "abstract": [p.abstract for p in papers],
            "content_hash": [p.content_hash for p in papers], "source": [p.source for p in papers],
            "added_at": [now] * len(papers), **metadata,
        }, schema=pa.unify_schemas([PAPER_SCHEMA, PAPER_METADATA_SCHEMA])), absorbed or {})

    def merge_papers(self, incoming: pa.Table, absorbed: dict[str, str] | None = None) -> int:
        """Bulk form of add_papers, for an Arrow table with PAPER_SCHEMA's columns and any of
        PAPER_METADATA_SCHEMA's: one statement, never row by row. Metadata the table does not carry is kept."""
        if not incoming.num_rows:
            return 0
        given = [name for name in PAPER_METADATA_SCHEMA.names if name in incoming.column_names]
        updates = "".join(f", {name} = coalesce(excluded.{name}, papers.{name})" for name in given)
        with self._transaction(), self._registered(incoming_papers=incoming):
            new_texts = """SELECT i.id, i.content_hash FROM incoming_papers i
                           ANTI JOIN papers p ON p.id = i.id AND p.content_hash = i.content_hash"""
            changed = self.con.execute(f"SELECT count(*) FROM ({new_texts})").fetchone()[0]
            if changed:
                read_tables.rehash_papers(self.con, new_texts)
            # The source changes with the text: it says where the stored abstract came from.
            self.con.execute(
                f"""INSERT INTO papers BY NAME SELECT * FROM incoming_papers
                    ON CONFLICT (id) DO UPDATE SET title = excluded.title, abstract = excluded.abstract,
                        content_hash = excluded.content_hash,
                        source = CASE WHEN papers.content_hash <> excluded.content_hash THEN excluded.source
                                      ELSE papers.source END{updates}"""
            )
            for gone, stays in (absorbed or {}).items():
                self._absorb(gone, stays)
            # Records whose paper changed (its text, title or metadata), or that a changed-back text brings back.
            copied = ", ".join(f"r.{column}" for column in read_tables.RECORD_PAPER_COLUMNS)
            stored = ", ".join(f"p.{column}" for column in read_tables.RECORD_PAPER_COLUMNS)
            if incoming.num_rows <= read_tables.FEW_PAPERS:  # each table filtered by the ids before the join
                ids = read_tables.literal_list(incoming.column("id").to_pylist())
                pointers, papers, records = (f"(SELECT * FROM {table} WHERE {column} IN ({ids}))" for table, column in (
                    ("current_extraction", "paper_id"), ("papers", "id"), ("current_records", "paper_id")))
            else:
                pointers, papers, records = ("(SELECT * FROM current_extraction WHERE paper_id IN "
                                             "(SELECT id FROM incoming_papers))", "papers", "current_records")
            read_tables.refresh_papers(self.con, f"""
                SELECT c.paper_id FROM {pointers} c JOIN {papers} p ON p.id = c.paper_id
                LEFT JOIN {records} r ON r.paper_id = c.paper_id
                WHERE r.paper_id IS NULL OR row({copied}) IS DISTINCT FROM row({stored})""")
        return changed

    def _absorb(self, gone: str, stays: str) -> None:
        """Two stored rows were one paper: the extractions and tags of `gone` move to `stays`, so none is lost (an
        old text's extraction is kept, not current), and `stays` points at its newest good extraction of its text."""
        for table in ("extractions", "tags"):
            self.con.execute(f"UPDATE {table} SET paper_id = ? WHERE paper_id = ?", [stays, gone])
        self.con.execute("DELETE FROM current_extraction WHERE paper_id = ?", [gone])
        self.con.execute("DELETE FROM paper_hashes WHERE paper_id = ?", [gone])
        self.con.execute("DELETE FROM papers WHERE id = ?", [gone])
        self.con.execute(
            """INSERT OR REPLACE INTO current_extraction
               SELECT e.paper_id, arg_max(e.id, (e.created_at, e.id)) FROM extractions e
               JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
               WHERE e.paper_id = ? AND e.status = 'ok' GROUP BY e.paper_id""",
            [stays],
        )
        read_tables.refresh_papers(self.con, "SELECT unnest(?::VARCHAR[])", [[gone, stays]])

    def texts_without_vectors(self, model: str) -> list[tuple[str, str, str]]:
        """(content hash, title, abstract) of each paper text that has no vector from this embedding model yet;
        one row per text, however many ids share it."""
        return self.con.execute(
            """SELECT p.content_hash, any_value(p.title), any_value(p.abstract) FROM papers p
               ANTI JOIN paper_vectors v ON v.content_hash = p.content_hash AND v.model = ?
               GROUP BY p.content_hash ORDER BY p.content_hash""",
            [model],
        ).fetchall()

    def add_vectors(self, model: str, content_hashes: list[str], vectors: Any) -> None:
        """Store embeddings (a float32 array, one row per hash) in one bulk statement; a hash already stored
        for this model keeps its vector."""
        if not content_hashes:
            return
        dimensions = vectors.shape[1]
        flat = pa.array(vectors.reshape(-1), pa.float32())
        incoming = pa.table({
            "content_hash": pa.array(content_hashes, pa.string()),
            "model": pa.array([model] * len(content_hashes), pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dimensions),
            "created_at": pa.array([_now()] * len(content_hashes), pa.timestamp("us")),
        })
        with self._transaction(), self._registered(incoming_vectors=incoming):
            self.con.execute("INSERT OR IGNORE INTO paper_vectors BY NAME SELECT * FROM incoming_vectors")

    def done_keys(self, model: str, prompt: Prompt) -> set[tuple[str, str]]:
        """(paper id, content hash) pairs that already have a good extraction under this model, prompt and schema."""
        rows = self.con.execute(
            """SELECT DISTINCT paper_id, content_hash FROM extractions
               WHERE status = 'ok' AND model = ? AND prompt_version = ? AND schema_version = ?""",
            [model, prompt.version, prompt.schema_version],
        ).fetchall()
        return set(rows)

    def reusable_answers(self, model: str, prompt: Prompt,
                         content_hashes: list[str]) -> dict[str, tuple[str, dict[str, float] | None, str | None]]:
        """For each of these texts, the newest raw answer this model gave to this prompt, with its domain
        probabilities and the machine it came from, under any paper id and schema version: the answer is re-checked by today's rules instead of
        asking the model again (the same text under a second id, or only validation or grounding changed)."""
        if not content_hashes:
            return {}
        wanted = pa.table({"content_hash": pa.array(sorted(set(content_hashes)), pa.string())})
        with self._registered(wanted_hashes=wanted):
            rows = self.con.execute(
                """SELECT e.content_hash, arg_max(e.raw_response, e.id), arg_max(e.domain_scores, e.id),
                          arg_max(e.answered_on, e.id)
                   FROM extractions e SEMI JOIN wanted_hashes w ON w.content_hash = e.content_hash
                   WHERE e.status = 'ok' AND e.raw_response IS NOT NULL AND e.model = ? AND e.prompt_version = ?
                   GROUP BY e.content_hash""",
                [model, prompt.version],
            ).fetchall()
        return {content_hash: (raw, json.loads(scores) if scores else None, answered_on)
                for content_hash, raw, scores, answered_on in rows}

    def failed_paper_ids(self, model: str, prompt: Prompt) -> set[str]:
        """Papers whose current text failed under this model, prompt and schema, and has no good extraction from them."""
        rows = self.con.execute(
            """SELECT e.paper_id FROM extractions e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
               WHERE e.model = ? AND e.prompt_version = ? AND e.schema_version = ?
               GROUP BY e.paper_id HAVING bool_and(e.status = 'failed')""",
            [model, prompt.version, prompt.schema_version],
        ).fetchall()
        return {row[0] for row in rows}

    def save(self, results: list[Extraction], model: str, prompt: Prompt) -> None:
        """Store a batch with a constant number of bulk statements, in one transaction: a crash loses at most
        this batch, never half of it."""
        latest = {result.paper.id: result for result in results}  # one row per paper and batch
        if not latest:
            return
        results = list(latest.values())
        extractions, tags = self._batch_tables(results, model, prompt)
        self.append(extractions, tags)

    def append(self, extractions: pa.Table, tags: pa.Table) -> None:
        """Bulk-write extraction and tag rows (Arrow tables with EXTRACTION_COLUMNS / TAG_COLUMNS).

        A good extraction replaces earlier rows with the same cache key; a failure replaces only earlier failures,
        so a failing re-run never destroys a good result."""
        key = " AND ".join(f"old.{column} = new.{column}" for column in CACHE_KEY)
        with self._transaction(), self._registered(new_extractions=extractions, new_tags=tags):
            replaced = f"new.status = 'ok' OR old.status = 'failed'"
            self.con.execute(f"""DELETE FROM tags WHERE extraction_id IN
                (SELECT old.id FROM extractions old JOIN new_extractions new ON {key} WHERE {replaced})""")
            self.con.execute(f"DELETE FROM extractions old USING new_extractions new WHERE {key} AND ({replaced})")
            self.con.execute("INSERT INTO extractions BY NAME SELECT * FROM new_extractions")
            self.con.execute("INSERT INTO tags BY NAME SELECT * FROM new_tags")
            self.con.execute(
                """INSERT OR REPLACE INTO current_extraction
                   SELECT paper_id, id FROM new_extractions WHERE status = 'ok'"""
            )
            read_tables.refresh_papers(self.con, "SELECT paper_id FROM new_extractions")

    def refresh_read_tables(self) -> dict[str, bool]:
        """The end-of-run step for the derived read tables (read_tables.py), in one short transaction: sort the
        tags again if enough came in, recount the facets if anything changed. Called once per run, never per query."""
        with self._transaction():
            return read_tables.refresh_at_end(self.con)

    def refresh_search_index(self) -> bool:
        """Update the keyword-search index (search_index.py) with the papers whose current record changed since,
        in one transaction; True if any did. Called once at the end of a run, never per query."""
        with self._transaction():
            return search_index.update(self.con)

    def next_extraction_ids(self, count: int) -> list[int]:
        return [row[0] for row in self.con.execute("SELECT nextval('extraction_ids') FROM range(?)", [count]).fetchall()]

    def _batch_tables(self, results: list[Extraction], model: str, prompt: Prompt) -> tuple[pa.Table, pa.Table]:
        now = _now()
        ids = self.next_extraction_ids(len(results))
        extractions = {column: [] for column in EXTRACTION_COLUMNS}
        tags = {column: [] for column in TAG_COLUMNS}
        for extraction_id, result in zip(ids, results):
            paper, found = result.paper, result.tags
            for column, value in zip(EXTRACTION_COLUMNS, (
                extraction_id, paper.id, paper.content_hash, model, prompt.version, prompt.schema_version,
                "ok" if found else "failed", found.summary if found else None, found.domain if found else None,
                result.raw_response, result.error, result.prompt_tokens, result.completion_tokens, result.latency_s,
                result.truncated, now, result.dropped,
                json.dumps(result.domain_scores) if result.domain_scores else None, result.answered_on,
            )):
                extractions[column].append(value)
            if not found:
                continue
            for kind, values in (("task", found.tasks), ("method", found.methods), ("benchmark", found.benchmarks)):
                for position, value in enumerate(values):
                    key = tag_key(value)
                    if key:
                        for column, cell in zip(TAG_COLUMNS, (extraction_id, paper.id, kind, value, key, position)):
                            tags[column].append(cell)
        return pa.table(extractions, schema=EXTRACTION_SCHEMA), pa.table(tags, schema=TAG_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN")
        try:
            yield
        except BaseException as error:
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # an interrupted statement may already have ended the transaction
            if isinstance(error, RuntimeError) and "interrupted" in str(error).casefold():
                # Ctrl-C inside a DuckDB call surfaces as RuntimeError("Query interrupted"); callers expect Ctrl-C.
                raise KeyboardInterrupt from None
            raise
        self.con.execute("COMMIT")

    @contextmanager
    def _registered(self, **tables: pa.Table) -> Iterator[None]:
        """Arrow tables visible to SQL under these names, for bulk statements."""
        for name, table in tables.items():
            self.con.register(name, table)
        try:
            yield
        finally:
            for name in tables:
                self.con.unregister(name)

    def save_eval_run(self, run: dict[str, Any]) -> int:
        return self.con.execute(
            """INSERT INTO eval_runs (created_at, model, prompt_version, gold_path, gold_sha256, split, papers, failed, metrics)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            [_now(), run["model"], run["prompt_version"], run["gold_path"], run["gold_sha256"], run["split"],
             run["metrics"]["papers"], run["metrics"]["failed"], json.dumps(run["metrics"])],
        ).fetchone()[0]

    def save_digest_position(self, covered_until: datetime, papers: int) -> None:
        """Remember what a digest covered, so the next one starts after it (digest.py)."""
        self.con.execute("INSERT INTO digests VALUES (?, ?, ?)", [_now(), covered_until, papers])

    # Batch jobs (batch.py): what was sent, so collect can match results to papers exactly once.

    def add_batch_job(self, batch_id: str, input_file_id: str, *, model: str, prompt_version: str, base_url: str,
                      max_abstract_chars: int, papers: list[Paper], status: str) -> None:
        self.con.execute(
            """INSERT INTO batch_jobs (batch_id, input_file_id, model, prompt_version, base_url, max_abstract_chars,
                   papers, status, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [batch_id, input_file_id, model, prompt_version, base_url, max_abstract_chars,
             [{"id": paper.id, "content_hash": paper.content_hash} for paper in papers], status, _now()],
        )

    def update_batch_job(self, batch_id: str, status: str, error: str | None, *, collected: bool = False) -> None:
        now = _now()
        self.con.execute(
            "UPDATE batch_jobs SET status = ?, error = ?, checked_at = ?, collected_at = ? WHERE batch_id = ?",
            [status, error, now, now if collected else None, batch_id],
        )

    def uncollected_batch_jobs(self) -> list[dict[str, Any]]:
        return rows_as_dicts(self.con.execute("SELECT * FROM batch_jobs WHERE collected_at IS NULL ORDER BY submitted_at"))

    def waiting_batch_keys(self, model: str, prompt_version: str) -> set[tuple[str, str]]:
        """(paper id, content hash) of papers in batches not yet collected: submitting them again would pay twice.
        A failed batch has no results, so its papers are not waiting."""
        rows = self.con.execute(
            """SELECT DISTINCT paper.id, paper.content_hash
               FROM (SELECT unnest(papers) AS paper FROM batch_jobs
                     WHERE collected_at IS NULL AND status <> 'failed' AND model = ? AND prompt_version = ?)""",
            [model, prompt_version],
        ).fetchall()
        return set(rows)

    def papers_by_id(self, ids: list[str]) -> dict[str, Paper]:
        """The stored papers with these ids, as they are now, metadata included."""
        rows = rows_as_dicts(self.con.execute(
            f"SELECT {PAPER_COLUMNS} FROM papers WHERE id IN (SELECT unnest(?))", [ids]
        ))
        return {row["id"]: stored_paper(row) for row in rows}

    # 'papertag arxiv' runs (arxiv_fetch.py): how far an unfinished one got.

    def arxiv_fetch(self, run_key: str) -> dict[str, Any] | None:
        rows = rows_as_dicts(self.con.execute("SELECT * FROM arxiv_fetches WHERE run_key = ?", [run_key]))
        return rows[0] if rows else None

    def save_arxiv_fetch(self, run_key: str, *, next_start: int, total_results: int | None, exhausted: bool,
                         paper_ids: list[str]) -> None:
        """Remember one more page: its papers are stored already (add_papers), so a resumed run starts after it."""
        now = _now()
        self.con.execute(
            """INSERT INTO arxiv_fetches VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (run_key) DO UPDATE SET next_start = excluded.next_start,
                   total_results = excluded.total_results, exhausted = excluded.exhausted,
                   paper_ids = list_concat(arxiv_fetches.paper_ids, excluded.paper_ids), updated_at = excluded.updated_at""",
            [run_key, next_start, total_results, exhausted, paper_ids, now, now],
        )

    def forget_arxiv_fetch(self, run_key: str) -> None:
        """The run finished: the next one with this query asks the API from the first page (for newer papers)."""
        self.con.execute("DELETE FROM arxiv_fetches WHERE run_key = ?", [run_key])


def stored_paper(row: dict[str, Any]) -> Paper:
    """A Paper from a papers row with PAPER_COLUMNS; NULL lists are empty."""
    return Paper(**{name: tuple(value or ()) if name in ("authors", "categories") else value
                    for name, value in row.items()})


def rows_as_dicts(relation: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    columns = [description[0] for description in relation.description]
    return [dict(zip(columns, row)) for row in relation.fetchall()]
