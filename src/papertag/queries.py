"""Reading the database: every reading command's data comes from here, as plain dicts."""

from __future__ import annotations

import json
import re
import threading
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb

from .embed import DIMENSIONS as EMBEDDING_DIMENSIONS
from .embed import MODEL_NAME as EMBEDDING_MODEL
from .neighbours import nearest, stored_vectors
from .errors import DatabaseError, InputError, NotFound
from .schema import DOMAINS
from .read_tables import TAGS_OF_RECORDS, literal_list
from . import search_index
from .search import LEGACY_SCHEMA, LEGACY_TABLE, NO_INDEX, has_legacy_index, load_fts
from .selection import parse_day
from .store import PAPER_METADATA_COLUMNS, open_reader, rows_as_dicts
from .text import tag_key

if TYPE_CHECKING:
    from .prompts import Prompt

# One record per paper with its current extraction; tag lists keep the model's order.
RECORD_COLUMNS = """p.id, p.title, e.summary,
        coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'task'), []) AS tasks,
        coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'method'), []) AS methods,
        coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'benchmark'), []) AS benchmarks,
        e.domain, p.category_domain, e.model, e.prompt_version,
        p.authors, p.published, p.updated, p.categories, p.arxiv_id, p.arxiv_version, p.doi, p.url, p.venue, p.source"""
PAPER_RECORDS = f"""
    SELECT {RECORD_COLUMNS}
    FROM papers p
    JOIN current_extractions e ON e.paper_id = p.id
    LEFT JOIN tags t ON t.extraction_id = e.id
    {{where}}
    GROUP BY ALL
    ORDER BY p.title
"""
# The same records for a tag filter, written to start from the matching tags: the current-extraction view
# (pointer, extraction and paper) is the one in store.py, inlined so that DuckDB joins it on the few matching
# extractions instead of building it for every paper and filtering last (5x faster at a million papers).
MATCHED_RECORDS = f"""
    WITH matched AS ({{matched}})
    SELECT {RECORD_COLUMNS}
    FROM matched m
    JOIN current_extraction c ON c.extraction_id = m.extraction_id
    JOIN extractions e ON e.id = c.extraction_id AND e.paper_id = c.paper_id
    JOIN papers p ON p.id = c.paper_id AND p.content_hash = e.content_hash
    LEFT JOIN tags t ON t.extraction_id = e.id
    {{where}}
    GROUP BY ALL
    ORDER BY p.title
"""


TAG_KINDS = ("task", "method", "benchmark")
# The same record, from the derived table current_records (read_tables.py) aliased p.
FAST_RECORD_COLUMNS = """p.paper_id AS id, p.title, p.summary, p.tasks, p.methods, p.benchmarks, p.domain,
        p.category_domain, p.model, p.prompt_version, p.authors, p.published, p.updated, p.categories, p.arxiv_id,
        p.arxiv_version, p.doi, p.url, p.venue, p.source"""
# The tag lists a fast selection carries, for the facets counted over it (unread otherwise: DuckDB prunes them).
TAG_LISTS = "p.tasks, p.methods, p.benchmarks, p.task_keys, p.method_keys, p.benchmark_keys"
# Up to this many records are fetched by their primary key (DuckDB's index is used for a literal IN list of at
# most index_scan_max_count = 2048 values); more are found by one scan of current_records.
INDEX_FETCH_MAX = 2000


def _benchmark_key(value: str) -> str:
    key = tag_key(value)
    if not key:
        raise InputError(f"--benchmark {value!r} has no letters or digits to match")
    return key


_literal_list = literal_list  # a look-up DuckDB answers from its index (parameters are not used there)


def _metadata_conditions(since: str | date | None, until: str | date | None, author: str | None,
                         category: str | None) -> tuple[list[str], list[Any]]:
    """SQL conditions on the paper's metadata for query's filters, with their parameters; bad values are one line."""
    conditions: list[str] = []
    params: list[Any] = []
    for option, value, operator in (("--since", since, ">="), ("--until", until, "<=")):
        if value is not None:
            conditions.append(f"p.published {operator} ?")
            params.append(parse_day(value, option))
    for option, value in (("--author", author), ("--category", category)):
        if value is not None and not value.strip():
            raise InputError(f"{option} needs some text to match")
    if author is not None:
        conditions.append("len(list_filter(p.authors, name -> contains(strip_accents(lower(name)), "
                          "strip_accents(lower(?))))) > 0")
        params.append(author.strip())
    if category is not None:
        conditions.append("len(list_filter(p.categories, c -> lower(c) = lower(?) OR starts_with(lower(c), lower(?) || '.'))) > 0")
        params += [category.strip()] * 2
    return conditions, params


class Reader:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.con = open_reader(self.path)
        # DuckDB draws a progress bar on stdout for a query over 2 s: it would land inside `export` output or a
        # web server's log.
        self.con.execute("SET enable_progress_bar = false")
        self._pruned = False  # whether the last search selection kept only its best papers
        self._metadata_as_null()
        # A database not yet upgraded to the derived read tables (read_tables.py) is read from the base tables.
        self.fast = bool(self.con.execute(
            """SELECT count(*) FROM duckdb_tables()
               WHERE database_name = current_database() AND table_name = 'current_records'""").fetchone()[0])

    def _metadata_as_null(self) -> None:
        """A database last written before paper metadata existed has no metadata columns until the next write
        upgrades it: read it through a temporary view where they are NULL (a read-only database allows it)."""
        columns = {row[0] for row in self.con.execute(
            """SELECT column_name FROM duckdb_columns()
               WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'papers'""").fetchall()}
        missing = [f"NULL::{sql_type} AS {name}" for name, sql_type in PAPER_METADATA_COLUMNS.items() if name not in columns]
        if missing:
            database = self.con.execute("SELECT current_database()").fetchone()[0].replace('"', '""')
            self.con.execute(f'CREATE TEMP VIEW papers AS SELECT *, {", ".join(missing)} FROM "{database}".main.papers')

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _records(self, where: str = "", params: list[Any] | None = None) -> list[dict[str, Any]]:
        return rows_as_dicts(self.con.execute(PAPER_RECORDS.format(where=where), params or []))

    def summaries(self) -> list[dict[str, Any]]:
        return rows_as_dicts(self.con.execute(
            """SELECT p.id, p.title, e.summary, coalesce(e.status, 'pending') AS status
               FROM papers p LEFT JOIN current_extractions e ON e.paper_id = p.id
               ORDER BY p.title"""
        ))

    def query(self, *, benchmark: str | None = None, task: str | None = None, method: str | None = None,
              domain: str | None = None, since: str | date | None = None, until: str | date | None = None,
              author: str | None = None, category: str | None = None) -> list[dict[str, Any]]:
        """Benchmarks match the whole normalised key; tasks and methods match a part of it; since and until bound
        the publication date (the first arXiv version's), inclusive; author matches part of any author's name
        and category any of the paper's arXiv categories (an archive alone, like cs, all of its categories). At
        least one filter is needed: all papers are what summaries() and export() are for."""
        if all(value is None for value in (benchmark, task, method, domain, since, until, author, category)):
            raise InputError("give at least one of --benchmark, --task, --method, --domain, --since, --until, "
                             "--author, --category")
        metadata = _metadata_conditions(since, until, author, category)
        if self.fast:
            return self._fast_query(benchmark=benchmark, task=task, method=method, domain=domain, metadata=metadata)
        sql, params = self._filtered_records(benchmark=benchmark, task=task, method=method, domain=domain,
                                             metadata=metadata)
        return rows_as_dicts(self.con.execute(sql, params))

    def _fast_query(self, *, benchmark: str | None, task: str | None, method: str | None, domain: str | None,
                    metadata: tuple[list[str], list[Any]]) -> list[dict[str, Any]]:
        """query() over the derived tables: the matching paper ids from the sorted current_tags, then their records
        by primary key (one scan of current_records when there are too many for the index)."""
        matches, params = self._tag_matches(benchmark=None, task=task, method=method, domain=domain,
                                            table="current_tags", column="paper_id")
        conditions = list(metadata[0])
        if domain is not None:
            conditions.append("p.domain = ?")
        condition_params = metadata[1] + ([domain] if domain is not None else [])
        if benchmark is not None:  # one sorted run of benchmark_records; other tags narrow it by paper id
            if matches:
                conditions.insert(0, f"p.paper_id IN ({' INTERSECT '.join(matches)})")
            conditions.insert(0, "p.key = ?")
            return rows_as_dicts(self.con.execute(
                f"SELECT {FAST_RECORD_COLUMNS} FROM benchmark_records p WHERE {' AND '.join(conditions)} ORDER BY p.title",
                [_benchmark_key(benchmark), *params, *condition_params]))
        if matches:
            ids = [row[0] for row in self.con.execute(" INTERSECT ".join(matches), params).fetchall()]
            if not ids:
                return []
            if len(ids) <= INDEX_FETCH_MAX:
                conditions.insert(0, f"p.paper_id IN ({_literal_list(ids)})")
            else:
                conditions.insert(0, f"p.paper_id IN ({' INTERSECT '.join(matches)})")
                condition_params = params + condition_params
        where = "WHERE " + " AND ".join(conditions) if conditions else ""
        return rows_as_dicts(self.con.execute(
            f"SELECT {FAST_RECORD_COLUMNS} FROM current_records p {where} ORDER BY p.title", condition_params))

    def _filtered_records(self, *, benchmark: str | None, task: str | None, method: str | None,
                          domain: str | None, metadata: tuple[list[str], list[Any]] = ([], [])) -> tuple[str, list[Any]]:
        """The records query for query's filters, with its parameters."""
        matches, params = self._tag_matches(benchmark=benchmark, task=task, method=method, domain=domain)
        conditions = list(metadata[0])
        if domain is not None:
            conditions.append("e.domain = ?")
        params += metadata[1] + ([domain] if domain is not None else [])
        where = "WHERE " + " AND ".join(conditions) if conditions else ""
        if not matches:
            return PAPER_RECORDS.format(where=where), params
        return MATCHED_RECORDS.format(matched=" INTERSECT ".join(matches), where=where), params

    def _tag_matches(self, *, benchmark: str | None, task: str | None, method: str | None, domain: str | None,
                     table: str = "tags", column: str = "extraction_id") -> tuple[list[str], list[Any]]:
        """One query of extraction ids per tag filter, with their parameters; the filters are checked first."""
        if domain is not None and domain not in DOMAINS:
            raise InputError(f"unknown domain {domain!r} (use one of: {', '.join(DOMAINS)})")
        matches, params = [], []
        for kind, value, exact in (("benchmark", benchmark, True), ("task", task, False), ("method", method, False)):
            if value is None:
                continue
            key = tag_key(value)
            if not key:
                raise InputError(f"--{kind} {value!r} has no letters or digits to match")
            match = "key = ?" if exact else "contains(key, ?)"
            matches.append(f"SELECT DISTINCT {column} FROM {table} WHERE kind = ? AND {match}")
            params += [kind, key]
        return matches, params

    def search(self, text: str, *, limit: int = 20, domain: str | None = None, benchmark: str | None = None,
               task: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        """Papers ranked by BM25 over title, summary, abstract and tags, best first, each record with its score;
        the filters are query's. The index is the one the last ingest updated (search_index.py)."""
        selection, params = self._selection(text, domain=domain, benchmark=benchmark, task=task, method=method,
                                            best=max(0, limit))
        found = self._records_of(selection, params, "score DESC, title, id", limit, 0)
        if len(found) < limit and self._pruned:  # a best paper lost its record since the index was updated
            selection, params = self._selection(text, domain=domain, benchmark=benchmark, task=task, method=method)
            found = self._records_of(selection, params, "score DESC, title, id", limit, 0)
        return found

    def browse(self, text: str | None = None, *, domain: str | None = None, benchmark: str | None = None,
               task: str | None = None, method: str | None = None, offset: int = 0, limit: int = 20,
               facet_limit: int = 10) -> dict[str, Any]:
        """One page of the papers matching the filters (and the search text, if any): newest first, or best first
        for a search; with their total and, for each of domain, benchmark, task and method, the most common
        values among all of them with paper counts (the web page's sidebar)."""
        selection, params = self._selection(text, domain=domain, benchmark=benchmark, task=task, method=method)
        order = "score DESC, title, id" if text is not None else "added_at DESC, title, id"
        papers = self._records_of(selection, params, order, limit, offset)
        total = self.con.execute(f"SELECT count(*) FROM ({selection})", params).fetchone()[0]
        if self.fast:
            facets = None
            if text is None and benchmark is None and task is None and method is None:
                facets = self._counted_facets(domain or "", facet_limit)
            if facets is None:
                facets = self._live_facets(selection, params, facet_limit)
            return {"total": total, "papers": papers, "facets": facets}
        facets = {"domain": rows_as_dicts(self.con.execute(
            f"""SELECT domain AS value, count(*) AS papers FROM ({selection})
                GROUP BY domain ORDER BY papers DESC, value LIMIT ?""",
            [*params, facet_limit],
        ))}
        tag_counts = rows_as_dicts(self.con.execute(
            f"""SELECT * FROM (
                    SELECT t.kind, mode(t.value) AS value, count(DISTINCT t.paper_id) AS papers
                    FROM tags t JOIN current_extraction c ON c.extraction_id = t.extraction_id
                    WHERE t.paper_id IN (SELECT id FROM ({selection}))
                    GROUP BY t.kind, t.key)
                QUALIFY row_number() OVER (PARTITION BY kind ORDER BY papers DESC, value) <= ?
                ORDER BY kind, papers DESC, value""",
            [*params, facet_limit],
        ))
        for kind in TAG_KINDS:
            facets[kind] = [{"value": row["value"], "papers": row["papers"]} for row in tag_counts if row["kind"] == kind]
        return {"total": total, "papers": papers, "facets": facets}

    def _counted_facets(self, scope: str, facet_limit: int) -> dict[str, list[dict[str, Any]]] | None:
        """The sidebar for all papers ('') or one domain from facet_counts, or None if it is not up to date."""
        if not self.con.execute("SELECT changes = facets_at FROM read_state").fetchone()[0]:
            return None
        rows = self.con.execute(
            """SELECT kind, value, papers FROM facet_counts WHERE scope = ?
               QUALIFY row_number() OVER (PARTITION BY kind ORDER BY papers DESC, value) <= ?
               ORDER BY kind, papers DESC, value""",
            [scope, facet_limit],
        ).fetchall()
        return {kind: [{"value": value, "papers": papers} for row_kind, value, papers in rows if row_kind == kind]
                for kind in ("domain", *TAG_KINDS)}

    def _live_facets(self, selection: str, params: list[Any], facet_limit: int) -> dict[str, list[dict[str, Any]]]:
        """The sidebar counted over a selection, from the tag lists of its records."""
        tags = TAGS_OF_RECORDS.replace("paper_id", "id").replace("current_records", "selected").format(where="")
        rows = self.con.execute(
            f"""WITH selected AS MATERIALIZED ({selection})
                SELECT * FROM (
                    SELECT 'domain' AS kind, domain AS value, count(*) AS papers FROM selected GROUP BY domain
                    UNION ALL
                    SELECT kind, mode(value), count(DISTINCT id) FROM ({tags}) GROUP BY kind, key)
                QUALIFY row_number() OVER (PARTITION BY kind ORDER BY papers DESC, value) <= ?
                ORDER BY kind, papers DESC, value""",
            [*params, facet_limit],
        ).fetchall()
        return {kind: [{"value": value, "papers": papers} for row_kind, value, papers in rows if row_kind == kind]
                for kind in ("domain", *TAG_KINDS)}

    def _records_of(self, selection: str, params: list[Any], order: str, limit: int, offset: int) -> list[dict[str, Any]]:
        """Full records (tags, model, score, added_at) of one page of a selection: the page is cut before the tags
        are gathered, so a search that matches most papers costs a page of records, not all of them."""
        if self.fast:  # the page's ids first, then their records by primary key
            page = self.con.execute(f"SELECT id, score, added_at FROM ({selection}) ORDER BY {order} LIMIT ? OFFSET ?",
                                    [*params, max(0, limit), max(0, offset)]).fetchall()
            if not page:
                return []
            found = {row["id"]: row for row in rows_as_dicts(self.con.execute(
                f"SELECT {FAST_RECORD_COLUMNS} FROM current_records p "
                f"WHERE p.paper_id IN ({_literal_list([paper_id for paper_id, _, _ in page])})"))}
            return [{**found[paper_id], "score": score, "added_at": added_at}
                    for paper_id, score, added_at in page if paper_id in found]
        return rows_as_dicts(self.con.execute(
            f"""WITH page AS MATERIALIZED (SELECT id, score, added_at FROM ({selection}) ORDER BY {order} LIMIT ? OFFSET ?)
                SELECT r.*, page.score, page.added_at FROM ({PAPER_RECORDS.format(where="WHERE p.id IN (SELECT id FROM page)")}) r
                JOIN page USING (id) ORDER BY {order}""",
            [*params, max(0, limit), max(0, offset)],
        ))

    def _selection(self, text: str | None, *, domain: str | None, benchmark: str | None, task: str | None,
                   method: str | None, best: int | None = None) -> tuple[str, list[Any]]:
        """SQL for the tagged papers matching the filters, one row each (id, title, added_at, domain and the BM25
        score for the text, NULL without one), and its parameters; a text matches a paper when any of its words
        (stemmed, not a stopword) occurs. With `best` and no filter, only the papers that can be among the best
        `best` by score are selected (a search's page, not a list page's total and facets)."""
        if self.fast:  # from the derived records: one sorted run of benchmark_records for a benchmark
            matches, params = self._tag_matches(benchmark=None, task=task, method=method, domain=domain,
                                                table="current_tags", column="paper_id")
            conditions = [f"p.paper_id IN ({' INTERSECT '.join(matches)})"] if matches else []
            if domain is not None:
                conditions.append("p.domain = ?")
                params.append(domain)
            records = "current_records"
            if benchmark is not None:
                records = "benchmark_records"
                conditions.insert(0, "p.key = ?")
                params.insert(0, _benchmark_key(benchmark))
        else:
            matches, params = self._tag_matches(benchmark=benchmark, task=task, method=method, domain=domain)
            conditions = [f"e.id IN ({' INTERSECT '.join(matches)})"] if matches else []
            if domain is not None:
                conditions.append("e.domain = ?")
                params.append(domain)
        where = "WHERE " + " AND ".join(conditions) if conditions else ""
        if text is None:
            if self.fast:
                return (f"""SELECT p.paper_id AS id, p.title, p.added_at, p.domain, NULL::DOUBLE AS score, {TAG_LISTS}
                            FROM {records} p {where}""", params)
            return (f"""SELECT p.id, p.title, p.added_at, e.domain, NULL::DOUBLE AS score
                        FROM current_extractions e JOIN papers p ON p.id = e.paper_id {where}""", params)
        if not text.strip():
            raise InputError("give some words to search for")
        self._pruned = False
        if search_index.is_built(self.con):
            docids, scores = search_index.scores(self.con, text)
            matched = len(docids)
            if best is not None and domain is None and benchmark is None and task is None and method is None:
                docids, scores = search_index.best(docids, scores, best)
            self._pruned = len(docids) < matched
            few = search_index.hits_table(self.con, docids, scores)
            if few is not None:  # their records by primary key, not by joining all of them
                where = ("WHERE " if not where else where + " AND ") + f"p.paper_id IN ({_literal_list(few) or 'NULL'})"
        elif has_legacy_index(self.con):  # not written since migration 11: the fts index it had
            load_fts(self.con)
            # Scored once into a temporary table of this connection (a read-only database allows them): browse
            # runs the selection four times (page, total, facets).
            self.con.execute(
                f"""CREATE OR REPLACE TEMP TABLE search_hits AS
                    SELECT id, score FROM (SELECT id, {LEGACY_SCHEMA}.match_bm25(id, ?) AS score FROM {LEGACY_TABLE})
                    WHERE score IS NOT NULL""",
                [text],
            )
        else:
            raise DatabaseError(NO_INDEX)
        if self.fast:
            return (f"""SELECT p.paper_id AS id, p.title, p.added_at, p.domain, h.score, {TAG_LISTS}
                        FROM search_hits h JOIN {records} p ON p.paper_id = h.id {where}""", params)
        return (f"""SELECT p.id, p.title, p.added_at, e.domain, h.score
                    FROM search_hits h JOIN current_extractions e ON e.paper_id = h.id JOIN papers p ON p.id = h.id
                    {where}""", params)

    def export(self) -> list[dict[str, Any]]:
        return self._records()

    def first_tagged(self, since: datetime | None, *, after: bool = False) -> list[dict[str, Any]]:
        """Records of the papers first tagged at or after `since` (strictly after, with after=True; every tagged
        paper for None), each with `tagged_at`: when its first good extraction was stored. A re-tag by another model
        or prompt keeps a paper's time (ingest --force replaces the extraction, and so the time); a paper that failed
        counts from the day it was tagged."""
        comparison = ">" if after else ">="
        first = f"""SELECT paper_id, min(created_at) AS tagged_at FROM extractions WHERE status = 'ok'
                    GROUP BY paper_id HAVING ?::TIMESTAMP IS NULL OR min(created_at) {comparison} ?::TIMESTAMP"""
        records = PAPER_RECORDS.format(where="WHERE p.id IN (SELECT paper_id FROM first)")
        return rows_as_dicts(self.con.execute(
            f"""WITH first AS MATERIALIZED ({first})
                SELECT r.*, first.tagged_at FROM ({records}) r JOIN first ON first.paper_id = r.id
                ORDER BY r.title, r.id""",
            [since, since],
        ))

    def digest_position(self) -> datetime | None:
        """When the newest paper of the last remembered digest was first tagged; None before the first digest."""
        return self.con.execute("SELECT max(covered_until) FROM digests").fetchone()[0]

    def export_relation(self) -> duckdb.DuckDBPyRelation:
        return self.con.sql(PAPER_RECORDS.format(where=""))

    def _paper(self, paper_id: str, columns: str = "*") -> dict[str, Any]:
        """The papers row (these columns of it) for an id or a unique prefix of one."""
        exact = rows_as_dicts(self.con.execute(f"SELECT {columns} FROM papers WHERE id = ?", [paper_id]))  # by primary key
        if exact:
            return exact[0]
        matches = self.con.execute(
            f"SELECT {columns} FROM papers WHERE id = ? OR starts_with(id, ?) ORDER BY id = ? DESC LIMIT 2",
            [paper_id, paper_id, paper_id],
        )
        papers = rows_as_dicts(matches)
        if not papers:
            raise NotFound(f"no paper with id {paper_id!r}; 'papertag summaries --json' lists the ids")
        if len(papers) > 1 and papers[0]["id"] != paper_id:
            raise InputError(f"id prefix {paper_id!r} matches more than one paper; give more of it")
        return papers[0]

    def show(self, paper_id: str) -> dict[str, Any]:
        paper = self._paper(paper_id)
        if self.fast:  # the current extraction and its tags from the paper's record, by primary key
            record = self.con.execute(
                "SELECT extraction_id, tasks, methods, benchmarks FROM current_records WHERE paper_id = ?", [paper["id"]]
            ).fetchone() or (None, [], [], [])
            paper["extractions"] = rows_as_dicts(self.con.execute(
                "SELECT e.*, e.id IS NOT DISTINCT FROM ? AS current FROM extractions e WHERE paper_id = ? ORDER BY created_at DESC",
                [record[0], paper["id"]],
            ))
            paper["tasks"], paper["methods"], paper["benchmarks"] = record[1:]
            paper["domain"] = next((e["domain"] for e in paper["extractions"] if e["current"]), None)
            return paper
        paper["extractions"] = rows_as_dicts(self.con.execute(
            """SELECT e.*, e.id IN (SELECT id FROM current_extractions) AS current
               FROM extractions e WHERE paper_id = ? ORDER BY created_at DESC""",
            [paper["id"]],
        ))
        tags = rows_as_dicts(self.con.execute(
            """SELECT t.kind, t.value FROM tags t JOIN current_extractions e ON e.id = t.extraction_id
               WHERE t.paper_id = ? ORDER BY t.kind, t.position""",
            [paper["id"]],
        ))
        for kind in ("task", "method", "benchmark"):
            paper[kind + "s"] = [tag["value"] for tag in tags if tag["kind"] == kind]
        # The model's domain beside category_domain, the arXiv categories' opinion (a column of papers).
        paper["domain"] = next((e["domain"] for e in paper["extractions"] if e["current"]), None)
        return paper

    def similar(self, paper_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The papers whose title and abstract are nearest to this one's (an id or a unique prefix), nearest first:
        id, title, summary, domain (None until tagged) and score, the cosine similarity of their embeddings.
        The paper itself is left out; another id with the same text scores 1.0."""
        paper = self._paper(paper_id, columns="id, content_hash")
        matrix = stored_vectors(self.con, self.path, EMBEDDING_MODEL, EMBEDDING_DIMENSIONS) if self.fast else None
        if matrix is not None:  # the vectors in memory say it (a count over the table scanned a million hashes)
            has_vector = paper["content_hash"] in matrix.positions
        else:
            has_vector = self._has_vector_table() and self.con.execute(
                "SELECT count(*) FROM paper_vectors WHERE content_hash = ? AND model = ?",
                [paper["content_hash"], EMBEDDING_MODEL],
            ).fetchone()[0]
        if not has_vector:
            # Papers added before 'similar' existed, by 'batch submit', or by an ingest stopped before its last step.
            raise DatabaseError(f"paper {paper['id']!r} has no embedding yet; 'papertag embed' computes the missing ones")
        # The nearest texts first, from the vectors alone (one cosine per stored text), then their papers:
        # joining every paper before the top-k costs more than the scan itself. The paper's own text is among the
        # nearest, and a text that no paper has any more (its paper changed) finds no paper, so ask for more
        # texts until enough papers come back.
        limit = max(0, limit)
        texts = limit + 1
        if matrix is not None:
            while True:
                found = nearest(self.con, matrix, paper["content_hash"], texts)
                scores = dict(found)
                # Through paper_hashes' index, then the records' primary key (tagged papers, with their summary
                # and domain), then papers' for any not tagged: look-ups by literal lists (as one query with a
                # subquery, DuckDB scanned papers instead: 1.2 s on a cold file, against 2 ms).
                ids = [row[0] for row in self.con.execute(
                    f"SELECT paper_id FROM paper_hashes WHERE content_hash IN ({_literal_list(list(scores))})").fetchall()]
                rows = {row[0]: row[1:] for row in self.con.execute(
                    f"""SELECT paper_id, title, content_hash, summary, domain FROM current_records
                        WHERE paper_id IN ({_literal_list(ids)})""").fetchall()} if ids else {}
                untagged = [paper_id for paper_id in ids if paper_id not in rows]
                if untagged:
                    rows.update((row[0], (*row[1:], None, None)) for row in self.con.execute(
                        f"SELECT id, title, content_hash FROM papers WHERE id IN ({_literal_list(untagged)})").fetchall())
                papers = sorted(((scores[content_hash], paper_id, title, summary, domain)
                                 for paper_id, (title, content_hash, summary, domain) in rows.items()
                                 if paper_id != paper["id"] and content_hash in scores), key=lambda row: (-row[0], row[1]))
                if len(papers) >= limit or texts >= len(matrix.hashes):
                    break
                texts *= 4
            return [{"id": paper_id, "title": title, "summary": summary, "domain": domain, "score": score}
                    for score, paper_id, title, summary, domain in papers[:limit]]
        while True:
            rows = rows_as_dicts(self.con.execute(
                """WITH target AS (SELECT vector FROM paper_vectors WHERE content_hash = ? AND model = ?),
                   nearest AS (
                       SELECT v.content_hash, array_cosine_similarity(v.vector, target.vector) AS score
                       FROM paper_vectors v CROSS JOIN target WHERE v.model = ?
                       ORDER BY score DESC LIMIT ?)
                   SELECT p.id, p.title, e.summary, e.domain, n.score
                   FROM nearest n
                   JOIN papers p ON p.content_hash = n.content_hash
                   LEFT JOIN current_extractions e ON e.paper_id = p.id
                   WHERE p.id <> ?
                   ORDER BY n.score DESC, p.id""",
                [paper["content_hash"], EMBEDDING_MODEL, EMBEDDING_MODEL, texts, paper["id"]],
            ))
            if len(rows) >= limit or texts >= self._vector_count():
                return rows[:limit]
            texts *= 4

    def _vector_count(self) -> int:
        return self.con.execute("SELECT count(*) FROM paper_vectors WHERE model = ?", [EMBEDDING_MODEL]).fetchone()[0]

    def papers_without_vectors(self) -> int:
        """Papers that 'similar' cannot compare yet (ingested before it existed)."""
        if not self._has_vector_table():
            return self.con.execute("SELECT count(*) FROM papers").fetchone()[0]
        return self.con.execute(
            """SELECT count(*) FROM papers p
               ANTI JOIN paper_vectors v ON v.content_hash = p.content_hash AND v.model = ?""",
            [EMBEDDING_MODEL],
        ).fetchone()[0]

    def _has_vector_table(self) -> bool:
        """A database last written by a papertag older than 'similar' has no vector table until the next write."""
        return bool(self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = 'paper_vectors'"
        ).fetchone()[0])

    def tags(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Each tag once per normalised key, shown in its most common spelling."""
        if kind not in (None, *TAG_KINDS):
            raise InputError(f"unknown tag kind {kind!r} (use one of: {', '.join(TAG_KINDS)})")
        if self.fast:
            counted = self.con.execute("SELECT changes = facets_at FROM read_state").fetchone()[0]
            source = ("""SELECT kind, value, key, papers FROM facet_counts WHERE scope = '' AND kind <> 'domain'"""
                      if counted else
                      """SELECT kind, mode(value) AS value, key, count(DISTINCT paper_id) AS papers
                         FROM current_tags GROUP BY kind, key""")
            return rows_as_dicts(self.con.execute(
                f"""SELECT kind, value, key, papers FROM ({source}) WHERE ? IS NULL OR kind = ?
                    ORDER BY papers DESC, kind, value""", [kind, kind]))
        return rows_as_dicts(self.con.execute(
            """SELECT t.kind, mode(t.value) AS value, t.key, count(DISTINCT t.paper_id) AS papers
               FROM tags t JOIN current_extractions e ON e.id = t.extraction_id
               WHERE ? IS NULL OR t.kind = ?
               GROUP BY t.kind, t.key
               ORDER BY papers DESC, t.kind, value""",
            [kind, kind],
        ))

    def predictions(self, model: str, prompt: Prompt) -> dict[str, dict[str, Any]]:
        """Each paper's good extraction by this model and prompt, as the labels the eval scorer compares, with the
        machine its answer came from."""
        rows = rows_as_dicts(self.con.execute(
            """SELECT e.paper_id, e.summary, e.domain, e.answered_on,
                   coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'task'), []) AS tasks,
                   coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'method'), []) AS methods,
                   coalesce(list(t.value ORDER BY t.position) FILTER (WHERE t.kind = 'benchmark'), []) AS benchmarks
               FROM extractions e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
               LEFT JOIN tags t ON t.extraction_id = e.id
               WHERE e.status = 'ok' AND e.model = ? AND e.prompt_version = ? AND e.schema_version = ?
               GROUP BY ALL""",
            [model, prompt.version, prompt.schema_version],
        ))
        return {row.pop("paper_id"): row for row in rows}

    def eval_runs(self) -> list[dict[str, Any]]:
        """Every stored eval run, oldest first, with its metrics."""
        runs = rows_as_dicts(self.con.execute("SELECT * FROM eval_runs ORDER BY id"))
        for run in runs:
            run["metrics"] = json.loads(run["metrics"])
        return runs


# An absolute path in a message: /a/b, ~/a or C:\a (a URL such as s3://bucket/x names no local file).
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\])(?:~|[A-Za-z]:)?[/\\][\w.-]+(?:[/\\][\w.@+-]*)*")


# `sql` output is bounded, so `SELECT * FROM range(10000000000)` or a runaway join cannot take the machine's memory.
DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 60.0


class SqlResult(NamedTuple):
    columns: list[str]
    rows: list[tuple]
    cut: bool  # the query had more than max_rows rows; only the first max_rows are here


def run_read_only_sql(path: Path, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> SqlResult:
    """Power users' SQL: SELECT only, on a read-only connection that cannot reach files or extensions.

    At most max_rows rows are fetched (0: all); a query still running after timeout_s seconds is stopped (0: never)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise InputError(f"SQL does not parse: {_error_line(error, path)}") from None
    if not statements:
        raise InputError("no SQL statement given")
    for statement in statements:
        if statement.type != duckdb.StatementType.SELECT:
            raise InputError(f"only SELECT queries are allowed here, not {statement.type.name}")
    if not path.exists():
        raise DatabaseError(f"no database at {path}; run 'papertag ingest FILE' first, or pass --db")
    con = open_reader(path, config={"enable_external_access": False, "autoload_known_extensions": False,
                                    "autoinstall_known_extensions": False, "lock_configuration": True})
    timer = threading.Timer(timeout_s, _interrupt, [con]) if timeout_s else None
    try:
        if timer:
            timer.start()
        relations = [con.sql(statement.query) for statement in statements]  # each is checked; the last one is shown
        relation, json_columns = _with_duckdb_text(relations[-1])
        # One row past the limit tells whether it cut anything; DuckDB streams, so no more than that is computed.
        rows = relation.fetchmany(max_rows + 1) if max_rows else relation.fetchall()
        columns = relation.columns
    except duckdb.InterruptException:
        raise InputError(f"query stopped after {timeout_s:g} s; --timeout SECONDS allows longer (0: no limit)") from None
    except duckdb.Error as error:
        raise InputError(f"query failed: {_error_line(error, path)}") from None
    finally:
        if timer:
            timer.cancel()
        con.close()
    cut = bool(max_rows) and len(rows) > max_rows
    rows = rows[:max_rows] if cut else rows
    if json_columns:
        rows = [tuple(json.loads(value) if i in json_columns and value is not None else value for i, value in enumerate(row))
                for row in rows]
    return SqlResult(columns, rows, cut)


def _interrupt(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.interrupt()
    except duckdb.Error:
        pass  # the query ended and the connection closed just as the time ran out


def _error_line(error: duckdb.Error, database: Path) -> str:
    """The first line of a DuckDB error (the rest repeats the query), naming no local file except the database:
    DuckDB quotes every path it refuses, the user's home folders for secrets and extensions included."""
    if isinstance(error, duckdb.PermissionException):
        return "papertag sql reads only the tables and views in the database, not files, folders or URLs"
    database_path = str(database.resolve())
    return ABSOLUTE_PATH.sub(lambda path: path.group() if path.group().startswith(database_path) else "<path>",
                             str(error).splitlines()[0])


def _with_duckdb_text(relation: duckdb.DuckDBPyRelation) -> tuple[duckdb.DuckDBPyRelation, set[int]]:
    """Columns of a type that Python cannot take exactly come back as DuckDB's own JSON text, with their indexes:
    TIMESTAMP WITH TIME ZONE needs pytz, which is not installed, and an INTERVAL would become a timedelta that
    counts a month as 30 days ('1 year 2 months' is exact)."""
    json_columns = {i for i, column_type in enumerate(relation.types)
                    if any(name in str(column_type) for name in ("TIMESTAMP WITH TIME ZONE", "INTERVAL"))}
    if not json_columns:
        return relation, json_columns
    # Positional references (#1) and quoted aliases keep every column, even two with the same name.
    projection = ", ".join(
        (f"to_json(#{i + 1})" if i in json_columns else f"#{i + 1}") + ' AS "' + name.replace('"', '""') + '"'
        for i, name in enumerate(relation.columns)
    )
    return relation.project(projection), json_columns
