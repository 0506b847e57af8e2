"""'similar' over the float16 matrix (neighbours.py): the same nearest papers and scores as exact float32 cosine,
even where float16 cannot tell the candidates apart, and a float16 score never further off than the bound."""

from __future__ import annotations

import numpy as np
import pytest

from papertag import neighbours
from papertag.embed import DIMENSIONS, MODEL_NAME
from papertag.queries import Reader
from papertag.records import make_paper
from papertag.store import Store


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_nearest_equals_exact_float32_even_for_near_ties(db_path):
    rng = np.random.default_rng(11)
    count = 3000
    vectors = unit(rng.standard_normal((count, DIMENSIONS)))
    # Twenty texts a hair apart around p0 (2e-4 of a component: their scores differ by about 1e-5, below float16's
    # resolution, far above float32's), so their float16 scores tie or swap; the exact float32 order must still
    # come out (with both error bounds at 0 it does not).
    for i in range(1, 21):
        vectors[i] = unit((vectors[0] + 0.3 * vectors[100] + 2e-4 * i * vectors[200])[None, :])[0]
    papers = [make_paper(f"Paper {i}", f"Abstract number {i}.", "a.txt", f"p{i:04d}") for i in range(count)]
    with Store(db_path) as store:
        store.add_papers(papers)
        store.add_vectors(MODEL_NAME, [p.content_hash for p in papers], vectors)
    exact = vectors @ vectors[0]
    order = [i for i in np.lexsort((np.arange(count), -exact)) if i != 0]
    with Reader(db_path) as reader:
        for limit in (1, 10, 25):
            found = reader.similar("p0000", limit=limit)
            assert [row["id"] for row in found] == [f"p{i:04d}" for i in order[:limit]]
            assert [row["score"] for row in found] == pytest.approx([float(exact[i]) for i in order[:limit]], abs=1e-6)
        matrix = neighbours.stored_vectors(reader.con, db_path, MODEL_NAME, DIMENSIONS)
        assert matrix.matrix.dtype == np.float16 and len(matrix.hashes) == count


def test_float16_scores_stay_within_the_bound():
    rng = np.random.default_rng(5)
    vectors = unit(rng.standard_normal((20000, DIMENSIONS)) * rng.uniform(0.01, 3, DIMENSIONS))  # uneven components
    matrix = neighbours.VectorMatrix(DIMENSIONS)
    matrix.append([f"h{i}" for i in range(len(vectors))], vectors, np.arange(len(vectors)))
    for query in vectors[:5]:
        error = np.abs(neighbours.approximate_scores(matrix, query) - vectors @ query)
        assert error.max() <= neighbours.RELATIVE_ERROR
        assert error.max() > 0  # float16 does round: the re-scoring is needed
        closer = np.abs(matrix.matrix.astype(np.float32) @ query - vectors @ query)
        assert closer.max() <= neighbours.ROUNDING_ERROR
