"""DuckDB storage: papers, extractions (raw response kept) and one row per tag, built by migrations."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import duckdb

from .errors import PapertagError
from .extract import Extraction
from .sources import Paper
from .text import tag_key

# Each migration runs once, in order, inside one transaction with its version row.
MIGRATIONS: list[str] = [
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
]
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> datetime:
    """Naive UTC: DuckDB's TIMESTAMP WITH TIME ZONE would need pytz just to read it back."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if read_only and not path.exists():
        raise PapertagError(f"no database at {path}; run 'papertag ingest FILE' first, or pass --db")
    try:
        if read_only:
            return duckdb.connect(str(path), read_only=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path))
    except duckdb.IOException as error:
        message = str(error)
        if "lock" in message.casefold():
            holder = re.search(r"PID \d+", message)
            by = f" ({holder.group(0)})" if holder else ""
            raise PapertagError(f"database {path} is in use by another process{by}; wait for it to finish") from None
        raise PapertagError(f"cannot open database {path}: {message.splitlines()[0]}") from None
    except duckdb.Error as error:
        raise PapertagError(f"{path} is not a papertag database: {str(error).splitlines()[0]}") from None


class Store:
    """Writes go through this class; reading commands live in queries.py."""

    def __init__(self, path: Path):
        self.path = path
        self.con = connect(path)
        self.migrate()

    def close(self) -> None:
        self.con.close()

    def migrate(self) -> None:
        self.con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
        applied = self.con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
        if applied > SCHEMA_VERSION:
            raise PapertagError(f"database {self.path} was written by a newer papertag (schema {applied})")
        for version in range(applied + 1, SCHEMA_VERSION + 1):
            self.con.execute("BEGIN")
            self.con.execute(MIGRATIONS[version - 1])
            self.con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [version, _now()])
            self.con.execute("COMMIT")

    def add_papers(self, papers: Iterable[Paper]) -> int:
        """Insert new papers and update changed ones; returns how many were new or changed."""
        rows = [(p.id, p.title, p.abstract, p.content_hash, p.source, _now()) for p in papers]
        if not rows:
            return 0
        self.con.execute("BEGIN")
        self.con.execute("CREATE OR REPLACE TEMP TABLE incoming AS SELECT * FROM papers LIMIT 0")
        self.con.executemany("INSERT INTO incoming VALUES (?, ?, ?, ?, ?, ?)", rows)
        changed = self.con.execute(
            """SELECT count(*) FROM incoming i LEFT JOIN papers p USING (id)
               WHERE p.id IS NULL OR p.content_hash <> i.content_hash"""
        ).fetchone()[0]
        self.con.execute(
            """INSERT INTO papers SELECT * FROM incoming
               ON CONFLICT (id) DO UPDATE SET title = excluded.title, abstract = excluded.abstract,
                   content_hash = excluded.content_hash, source = excluded.source
               WHERE papers.content_hash <> excluded.content_hash"""
        )
        self.con.execute("DROP TABLE incoming")
        self.con.execute("COMMIT")
        return changed

    def done_keys(self, model: str, prompt_version: str) -> set[tuple[str, str]]:
        """(paper id, content hash) pairs that already have a good extraction from this model and prompt."""
        rows = self.con.execute(
            "SELECT DISTINCT paper_id, content_hash FROM extractions WHERE status = 'ok' AND model = ? AND prompt_version = ?",
            [model, prompt_version],
        ).fetchall()
        return set(rows)

    def failed_paper_ids(self) -> set[str]:
        """Papers whose current text has no good extraction yet but has a recorded failure."""
        rows = self.con.execute(
            """SELECT DISTINCT e.paper_id FROM extractions e JOIN papers p ON p.id = e.paper_id
               WHERE e.status = 'failed' AND e.content_hash = p.content_hash
                 AND e.paper_id NOT IN (SELECT paper_id FROM current_extractions)"""
        ).fetchall()
        return {row[0] for row in rows}

    def save(self, results: list[Extraction], model: str, prompt_version: str) -> None:
        """Store a batch in one transaction: a crash loses at most this batch, never half of it."""
        if not results:
            return
        self.con.execute("BEGIN")
        try:
            for result in results:
                self._save_one(result, model, prompt_version)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _save_one(self, result: Extraction, model: str, prompt_version: str) -> None:
        paper = result.paper
        # One row per (paper text, model, prompt): a re-run replaces the old row instead of piling up.
        old = [row[0] for row in self.con.execute(
            "SELECT id FROM extractions WHERE paper_id = ? AND content_hash = ? AND model = ? AND prompt_version = ?",
            [paper.id, paper.content_hash, model, prompt_version],
        ).fetchall()]
        if old:
            self.con.execute("DELETE FROM tags WHERE extraction_id IN (SELECT unnest(?))", [old])
            self.con.execute("DELETE FROM extractions WHERE id IN (SELECT unnest(?))", [old])
        tags = result.tags
        extraction_id = self.con.execute(
            """INSERT INTO extractions (paper_id, content_hash, model, prompt_version, status, summary, domain,
                   raw_response, error, prompt_tokens, completion_tokens, latency_s, truncated, created_at, dropped_tags)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            [
                paper.id, paper.content_hash, model, prompt_version,
                "ok" if tags else "failed",
                tags.summary if tags else None,
                tags.domain if tags else None,
                result.raw_response, result.error,
                result.prompt_tokens, result.completion_tokens, result.latency_s, result.truncated, _now(),
                result.dropped,
            ],
        ).fetchone()[0]
        if tags:
            rows = [
                (extraction_id, paper.id, kind, value, tag_key(value), position)
                for kind, values in (("task", tags.tasks), ("method", tags.methods), ("benchmark", tags.benchmarks))
                for position, value in enumerate(values)
                if tag_key(value)
            ]
            if rows:
                self.con.executemany("INSERT INTO tags VALUES (?, ?, ?, ?, ?, ?)", rows)


    def predictions(self, model: str, prompt_version: str) -> dict[str, dict[str, Any]]:
        """Each paper's good extraction by this model and prompt, as the labels the scorer compares."""
        rows = rows_as_dicts(self.con.execute(
            """SELECT e.paper_id, e.summary, e.domain,
                   coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'task'), []) AS tasks,
                   coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'method'), []) AS methods,
                   coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'benchmark'), []) AS benchmarks
               FROM extractions e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
               LEFT JOIN tags t ON t.extraction_id = e.id
               WHERE e.status = 'ok' AND e.model = ? AND e.prompt_version = ?
               GROUP BY ALL""",
            [model, prompt_version],
        ))
        return {row.pop("paper_id"): row for row in rows}

    def save_eval_run(self, run: dict[str, Any]) -> int:
        return self.con.execute(
            """INSERT INTO eval_runs (created_at, model, prompt_version, gold_path, gold_sha256, split, papers, failed, metrics)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            [_now(), run["model"], run["prompt_version"], run["gold_path"], run["gold_sha256"], run["split"],
             run["metrics"]["papers"], run["metrics"]["failed"], json.dumps(run["metrics"])],
        ).fetchone()[0]

    def eval_runs(self) -> list[dict[str, Any]]:
        runs = rows_as_dicts(self.con.execute("SELECT * FROM eval_runs ORDER BY id"))
        for run in runs:
            run["metrics"] = json.loads(run["metrics"])
        return runs


def rows_as_dicts(relation: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    columns = [description[0] for description in relation.description]
    return [dict(zip(columns, row)) for row in relation.fetchall()]
