"""Nearest texts for 'similar': one embedding model's stored vectors as a float16 matrix kept in this process,
scored with simsimd's SIMD kernels, and the few that can be nearest re-scored exactly from the stored float32.

Scoring a million 384-dimensional vectors inside DuckDB (array_cosine_similarity over FLOAT[384]) took 7 s here, most
of it reading the column. In memory, numpy's float32 product takes 60-70 ms over the 1.5 GB on
this 2-core machine; simsimd's float16 kernel 45 ms over half the bytes. A float16 score (unit vectors: the dot
product) is off by at most 0.01 (RELATIVE_ERROR), so every text whose float16 score is within twice that of the
k-th best is scored again against the exact query (off by at most 0.0005, ROUNDING_ERROR), the few within twice
that of the new k-th are read as float32 from DuckDB (by row id), and the top k is taken from those exact scores:
the result is the exact float32 one.

The matrix is loaded on the first call for a database (seconds at a million texts, 768 MB) and kept for the
process's life, so a web server or a library user pays it once; a later call reads only the rows added since.
paper_vectors only grows (INSERT OR IGNORE, never updated or deleted), so its row ids say which rows are new; a
file that shrank, or whose last known row changed, is loaded again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
import os
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
    buffer: "np.ndarray | None" = None  # float16; rows [0, len(hashes)) are the vectors, the rest room to grow
    rowids: "np.ndarray | None" = None  # each vector's row in paper_vectors, to read it exactly

    @property
    def matrix(self) -> "np.ndarray":
        return self.buffer[:len(self.hashes)]

    def append(self, hashes: list[str], vectors: "np.ndarray", rowids: "np.ndarray") -> None:
        import numpy as np

        needed = len(self.hashes) + len(hashes)
        if self.buffer is None or needed > len(self.buffer):
            size = max(needed, int(len(self.hashes) * 1.25) + 1024)
            grown = np.empty((size, self.dimensions), np.float16)
            grown_rowids = np.empty(size, np.int64)
            if self.buffer is not None:
                grown[:len(self.hashes)] = self.matrix
                grown_rowids[:len(self.hashes)] = self.rowids[:len(self.hashes)]
            self.buffer, self.rowids = grown, grown_rowids
        self.buffer[len(self.hashes):needed] = vectors
        self.rowids[len(self.hashes):needed] = rowids
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
    cached.append(hashes, matrix, np.asarray(table.column("row").to_numpy())[mine])
    cached.rows_seen = cached.rows_seen + table.num_rows
    last = table.column("content_hash")[table.num_rows - 1].as_py() if table.num_rows else cached.last_hash
    cached.last_hash = last


# How far a float16 score can be from the float32 one. float16 keeps 11 significant bits (unit roundoff u = 2^-11):
# rounding the text's and the query's components costs 2u of each product, and simsimd's fastest kernel (AVX-512
# FP16, Sapphire Rapids and later; 47 ms at a million here, where its float32-adding kernels take 71 ms, no faster
# than numpy's float32 product) also adds in float16, 12 products per lane and 5 steps across 32 lanes, u each.
# Every product is at most |q_j x_j| and those sum to at most 1 (unit vectors), so 20u bounds the error (measured:
# 0.0003 at most over three million pairs).
RELATIVE_ERROR = 20 * 2.0 ** -11
# The same float16 vectors against the exact query, added in float32 (numpy): only the texts' rounding, u, and the
# float32 sums. This narrows the few dozen texts within 2 * RELATIVE_ERROR of the k-th to the dozen that need their
# float32 read from DuckDB (half a millisecond each: a row of a FLOAT[384] column decompresses its whole vector).
ROUNDING_ERROR = 2.0 ** -11 + 384 * 2.0 ** -24


def approximate_scores(matrix: VectorMatrix, query: "np.ndarray") -> "np.ndarray":
    import numpy as np

    if not len(matrix.hashes):
        return np.empty(0)
    threads = max(1, min(os.cpu_count() or 1, len(matrix.hashes) // 100_000 + 1))
    import simsimd

    return np.asarray(simsimd.cdist(query.astype(np.float16)[None, :], matrix.matrix, metric="dot",
                                       threads=threads))[0]


def exact_vectors(con: duckdb.DuckDBPyConnection, rowids: "np.ndarray", dimensions: int) -> "np.ndarray":
    """These rows of paper_vectors as float32, in this order: one `rowid = N` per row (DuckDB reads one row for
    that, but scans the table for an IN list)."""
    import numpy as np

    rows = con.execute(" UNION ALL ".join(
        f"SELECT {int(rowid)} AS row, vector FROM paper_vectors WHERE rowid = {int(rowid)}" for rowid in rowids
    )).to_arrow_table()
    found = dict(zip(rows.column("row").to_pylist(), range(rows.num_rows)))
    flat = rows.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    vectors = flat.reshape(rows.num_rows, dimensions)
    return vectors[[found[int(rowid)] for rowid in rowids]]


def nearest(con: duckdb.DuckDBPyConnection, matrix: VectorMatrix, content_hash: str,
            count: int) -> list[tuple[str, float]]:
    """The `count` stored texts nearest to this one (itself included), nearest first, with their cosine similarity
    (the vectors are unit length: the dot product) from the stored float32 vectors."""
    import numpy as np

    position = matrix.positions[content_hash]
    query = exact_vectors(con, matrix.rowids[[position]], matrix.dimensions)[0]
    scores = approximate_scores(matrix, query)
    count = min(count, len(scores))
    if count <= 0:
        return []
    kth = np.partition(scores, len(scores) - count)[len(scores) - count]
    candidates = np.flatnonzero(scores >= kth - 2 * RELATIVE_ERROR)  # every text whose exact score can reach the top k
    closer = matrix.matrix[candidates].astype(np.float32) @ query  # the top k is among them, so its k-th is theirs
    kth = np.partition(closer, len(closer) - count)[len(closer) - count]
    candidates = candidates[closer >= kth - 2 * ROUNDING_ERROR]
    exact = exact_vectors(con, matrix.rowids[candidates], matrix.dimensions) @ query
    top = np.lexsort((candidates, -exact))[:count]
    return [(matrix.hashes[candidates[i]], float(exact[i])) for i in top]
