"""Nearest texts for 'similar': one embedding model's stored vectors as a float32 matrix kept in this process.

Scoring a million 384-dimensional vectors inside DuckDB (array_cosine_similarity over FLOAT[384]) took 7 s here, most
of it reading the column; one matrix-vector product over the same vectors in memory takes 70-240 ms on this 2-core
machine, and it is exact. The matrix is loaded on the first call for a database (seconds at a million texts,
1.5 GB) and kept for the process's life, so a web server or a library user pays it once; a later call reads only
the rows added since. paper_vectors only grows (INSERT OR IGNORE, never updated or deleted), so its row ids
say which rows are new; a file that shrank, or whose last known row changed, is loaded again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import numpy as np


@dataclass
class VectorMatrix:
    dimensions: int
    rows_seen: int = 0  # paper_vectors rows (of every model) already read
    last_hash: str | None = None  # the content hash of row rows_seen - 1, to notice a replaced file
    hashes: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    buffer: "np.ndarray | None" = None  # rows [0, len(hashes)) are the vectors; the rest is room to grow

    @property
    def matrix(self) -> "np.ndarray":
        return self.buffer[:len(self.hashes)]

    def append(self, hashes: list[str], vectors: "np.ndarray") -> None:
        import numpy as np

        needed = len(self.hashes) + len(hashes)
        if self.buffer is None or needed > len(self.buffer):
            grown = np.empty((max(needed, int(len(self.hashes) * 1.25) + 1024), self.dimensions), np.float32)
            if self.buffer is not None:
                grown[:len(self.hashes)] = self.matrix
            self.buffer = grown
        self.buffer[len(self.hashes):needed] = vectors
        for content_hash in hashes:
            self.positions[content_hash] = len(self.hashes)
            self.hashes.append(content_hash)


_matrices: dict[tuple[str, str], VectorMatrix] = {}
_lock = threading.Lock()


def stored_vectors(con: duckdb.DuckDBPyConnection, database: Path, model: str, dimensions: int) -> VectorMatrix:
    """This model's vectors in `database` (open as `con`), up to date with what `con` sees."""
    key = (str(database.resolve()), model)
    with _lock:
        total = con.execute("SELECT count(*) FROM paper_vectors").fetchone()[0]
        cached = _matrices.get(key)
        if cached is not None and (cached.rows_seen > total or (cached.rows_seen and con.execute(
                "SELECT content_hash FROM paper_vectors WHERE rowid = ?", [cached.rows_seen - 1]
        ).fetchone() != (cached.last_hash,))):
            cached = None  # not the file it was read from
        if cached is None:
            cached = _matrices[key] = VectorMatrix(dimensions)
        if cached.rows_seen < total:
            _read_new_rows(con, cached, model, total)
        return cached


def _read_new_rows(con: duckdb.DuckDBPyConnection, cached: VectorMatrix, model: str, total: int) -> None:
    import numpy as np

    table = con.execute(
        """SELECT rowid AS row, content_hash, model, vector FROM paper_vectors
           WHERE rowid >= ? AND rowid < ? ORDER BY rowid""",
        [cached.rows_seen, total],
    ).to_arrow_table()
    if table.num_rows != total - cached.rows_seen:  # row ids are not 0..n-1: not an append-only table after all
        cached.__init__(cached.dimensions)
        table = con.execute("SELECT rowid AS row, content_hash, model, vector FROM paper_vectors ORDER BY rowid"
                            ).to_arrow_table()
    mine = np.asarray(table.column("model").to_numpy(zero_copy_only=False) == model)
    vectors = table.column("vector").combine_chunks()
    flat = vectors.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    matrix = flat.reshape(len(vectors), cached.dimensions)[mine]
    hashes = [h for h, keep in zip(table.column("content_hash").to_pylist(), mine) if keep]
    cached.append(hashes, matrix)
    cached.rows_seen = cached.rows_seen + table.num_rows
    last = table.column("content_hash")[table.num_rows - 1].as_py() if table.num_rows else cached.last_hash
    cached.last_hash = last


def nearest(matrix: VectorMatrix, content_hash: str, count: int) -> list[tuple[str, float]]:
    """The `count` stored texts nearest to this one (itself included), nearest first, with their cosine similarity
    (the vectors are unit length: the dot product)."""
    import numpy as np

    scores = matrix.matrix @ matrix.matrix[matrix.positions[content_hash]]
    count = min(count, len(scores))
    top = np.argpartition(scores, len(scores) - count)[len(scores) - count:] if count < len(scores) else np.arange(len(scores))
    top = top[np.lexsort((top, -scores[top]))]
    return [(matrix.hashes[i], float(scores[i])) for i in top]
