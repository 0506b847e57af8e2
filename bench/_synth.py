"""Shared by the storage benchmarks: synthetic papers, extractions and tags, built column-wise with numpy and
pyarrow (no Python loop per row), in the shapes Store.merge_papers and Store.append take.

Realistic shape: titles of ~60-100 characters, abstracts of a few hundred, real content hashes (sha256 of the
case-folded text, exactly as papertag.text.content_hash computes them), a raw model answer per extraction, and
tags drawn from Zipf-Mandelbrot distributions so a few benchmark names are common and most are rare.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from papertag.schema import DOMAINS
from papertag.store import EXTRACTION_SCHEMA, PAPER_SCHEMA, TAG_SCHEMA
from papertag.text import content_hash, tag_key

WORDS = """model models learning language large neural network networks training data dataset datasets task tasks
method methods approach results performance accuracy benchmark benchmarks evaluation evaluate propose proposed
we our show demonstrate improve improves improved state of the art existing prior work framework novel efficient
robust scalable generalization transfer fine-tuning pretraining pretrained representation representations features
feature attention transformer transformers graph graphs image images video text speech audio reinforcement policy
agent agents reward environment environments reasoning retrieval generation generative diffusion adversarial
contrastive self-supervised supervised unsupervised semi-supervised loss objective optimization gradient stochastic
convergence theoretical analysis empirical experiments experimental extensive across several multiple diverse
settings setting domain domains shift distribution robustness fairness privacy efficiency latency memory compute
inference parameters parameter small scale scaling laws tokens token context long short sequence sequences
classification detection segmentation recognition translation summarization question answering alignment human
feedback preference instruction tuning zero-shot few-shot in-context prompting prompts outperforms baselines baseline
strong significant gains margin code release available open source competitive simple effective lightweight module
layer layers architecture architectures encoder decoder embedding embeddings latent space sparse dense mixture
experts knowledge distillation compression quantization pruning hardware systems system serving throughput""".split()

SYLLABLES = """ka lo mi ra ze tu no vi sa pe qu ix or an el dy gra tro ben mark chi vo lu fen sor ti ba cu de
hy ja ko ly ma ne po ry sta vex wi zo""".split()
BENCH_SUFFIXES = ["", "", "", "-Bench", "Bench", "QA", "-QA", "-1K", "-10K", " v2", "++", "-Hard", "Eval", "-X", "-Pro"]
METHOD_SUFFIXES = ["", "", "Net", "Former", "-GAN", " adapters", "-RL", "GPT", "-Diff", "BERT", "-KD", "Mixer"]
TASK_OBJECTS = """image text graph video speech code molecule protein table document scene point-cloud time-series
knowledge math dialogue music medical legal financial 3d multilingual cross-lingual open-domain visual""".split()
TASK_HEADS = """classification detection segmentation generation translation summarization retrieval question-answering
reasoning forecasting recognition captioning parsing alignment editing completion synthesis tracking ranking
clustering compression denoising grounding planning""".split()
TASK_QUALIFIERS = ["", "", "", "few-shot", "zero-shot", "long-context", "robust", "efficient", "open-vocabulary",
                   "self-supervised", "multi-label", "fine-grained", "low-resource", "interactive"]


@dataclass(frozen=True)
class Vocabulary:
    """Distinct tag names of one kind, most common first, with their keys and Zipf-Mandelbrot probabilities."""
    values: pa.StringArray
    keys: pa.StringArray
    probabilities: np.ndarray


def zipf_mandelbrot(n: int, exponent: float, offset: float) -> np.ndarray:
    weights = 1.0 / (np.arange(1, n + 1) + offset) ** exponent
    return weights / weights.sum()


def _unique_by_key(candidates: list[str], count: int) -> list[str]:
    """First `count` candidates with distinct tag keys (a loop over the few thousand names, not over rows)."""
    seen, kept = set(), []
    for candidate in candidates:
        key = tag_key(candidate)
        if key and key not in seen:
            seen.add(key)
            kept.append(candidate)
            if len(kept) == count:
                return kept
    raise ValueError(f"only {len(kept)} distinct names for {count}")


def _vocabulary(names: list[str], exponent: float, offset: float) -> Vocabulary:
    return Vocabulary(pa.array(names, pa.string()), pa.array([tag_key(n) for n in names], pa.string()),
                      zipf_mandelbrot(len(names), exponent, offset))


def _syllable_names(rng: np.random.Generator, count: int, suffixes: list[str], capitalize: bool) -> list[str]:
    parts = np.array(SYLLABLES)
    length = rng.integers(2, 4, size=count)
    chosen = rng.choice(parts, size=(count, 3))
    stems = np.where(length == 2, np.char.add(chosen[:, 0], chosen[:, 1]),
                     np.char.add(np.char.add(chosen[:, 0], chosen[:, 1]), chosen[:, 2]))
    upper = rng.random(count) < 0.4  # "MMLU" and "GSM8K" next to "Hellaswag"
    stems = np.where(upper, np.char.upper(stems), np.char.capitalize(stems) if capitalize else stems)
    return list(np.char.add(stems, rng.choice(np.array(suffixes), size=count)))


def vocabularies(rng: np.random.Generator, benchmarks: int = 3000, tasks: int = 5000, methods: int = 8000) -> dict[str, Vocabulary]:
    bench = _unique_by_key(_syllable_names(rng, benchmarks * 3, BENCH_SUFFIXES, True), benchmarks)
    meth = _unique_by_key(_syllable_names(rng, methods * 3, METHOD_SUFFIXES, True), methods)
    combos = [" ".join(filter(None, (q, o.replace("-", " ") if i % 3 else o, h.replace("-", " "))))
              for q in TASK_QUALIFIERS for o in TASK_OBJECTS for i, h in enumerate(TASK_HEADS)]
    order = rng.permutation(len(combos))
    task = _unique_by_key([combos[i] for i in order], min(tasks, len(combos)))
    return {
        # The top benchmark is on ~1.5% of papers, the 100th on ~0.2%, the 1,500th on ~90 per million.
        "benchmark": _vocabulary(bench, 1.2, 20.0),
        "task": _vocabulary(task, 1.0, 5.0),
        "method": _vocabulary(meth, 1.05, 10.0),
    }


def hex_strings(rng: np.random.Generator, n: int, nbytes: int) -> pa.StringArray:
    """n random lowercase hex strings of 2*nbytes characters, built in one buffer."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.empty((n, 2 * nbytes), dtype=np.uint8)
    chars[:, 0::2], chars[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    offsets = np.arange(0, n * 2 * nbytes + 1, 2 * nbytes, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


def join_rows(pool: pa.Array, counts: np.ndarray, rng: np.random.Generator, separator: str = " ",
              probabilities: np.ndarray | None = None) -> pa.StringArray:
    """Row i = `counts[i]` random picks from `pool` joined by `separator`: one take and one join over all rows."""
    total = int(counts.sum())
    picks = rng.choice(len(pool), size=total, p=probabilities)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), pool.take(pa.array(picks))), separator)


def sentence_pool(rng: np.random.Generator, size: int = 20000) -> pa.StringArray:
    words = pa.array(WORDS, pa.string())
    word_p = zipf_mandelbrot(len(WORDS), 0.8, 5.0)
    body = join_rows(words, rng.integers(8, 16, size=size), rng, probabilities=word_p)
    return pc.binary_join_element_wise(pc.utf8_capitalize(body), pa.scalar("."), "")


def ids(start: int, n: int, prefix: str = "bench-") -> pa.StringArray:
    numbers = pc.utf8_lpad(pc.cast(pa.array(np.arange(start, start + n)), pa.string()), 8, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), numbers, "")


def hashes(titles: pa.Array, abstracts: pa.Array) -> pa.Array:
    """papertag.text.content_hash in bulk: the text is already one spaced ASCII line, so casefold = lower()."""
    con = duckdb.connect()
    text = pa.table({"title": titles, "abstract": abstracts})
    result = con.execute("SELECT sha256(lower(title) || chr(10) || lower(abstract)) AS h FROM text").arrow()
    con.close()
    column = result.column("h") if isinstance(result, pa.Table) else result.read_all().column("h")
    return column.combine_chunks().cast(pa.string())


@dataclass
class Chunk:
    papers: pa.Table  # PAPER_SCHEMA
    extractions: pa.Table  # EXTRACTION_SCHEMA; id column still 0, see with_ids
    tags: pa.Table  # TAG_SCHEMA; extraction_id column holds the row's paper index within the chunk
    tag_paper_index: np.ndarray

    def with_ids(self, extraction_ids: list[int] | np.ndarray) -> tuple[pa.Table, pa.Table]:
        """The extraction and tag tables under the store's own extraction ids (Store.next_extraction_ids)."""
        id_array = np.asarray(extraction_ids, dtype=np.int64)
        extractions = self.extractions.set_column(0, "id", pa.array(id_array))
        tags = self.tags.set_column(0, "extraction_id", pa.array(id_array[self.tag_paper_index]))
        return extractions, tags


def _json_list(values: pa.Array, counts: np.ndarray) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    inner = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), '", "')
    return pc.if_else(pa.array(counts > 0), pc.binary_join_element_wise('["', inner, '"]', ""), pa.scalar("[]"))


def make_chunk(rng: np.random.Generator, start: int, n: int, sentences: pa.StringArray, vocab: dict[str, Vocabulary],
               *, model: str, prompt_version: str, schema_version: str, now: datetime,
               source: str = "bench/synthetic.jsonl") -> Chunk:
    """Papers start..start+n-1, each with one good extraction and ~5 tags (2 tasks, 2 methods, 1 benchmark)."""
    title_words = pa.array(WORDS, pa.string())
    titles = pc.utf8_capitalize(join_rows(title_words, rng.integers(7, 13, size=n), rng))
    abstracts = join_rows(sentences, rng.integers(3, 6, size=n), rng)
    paper_ids = ids(start, n)
    papers = pa.table({
        "id": paper_ids, "title": titles, "abstract": abstracts, "content_hash": hashes(titles, abstracts),
        "source": pa.array(np.full(n, source)), "added_at": pa.array(np.full(n, np.datetime64(now, "us"))),
    }, schema=PAPER_SCHEMA)

    # Tags, ordered as papertag writes them: by paper, then tasks, methods, benchmarks, each by position.
    counts = {"task": 1 + rng.poisson(1.0, n), "method": 1 + rng.poisson(1.0, n), "benchmark": rng.poisson(1.0, n)}
    parts, json_lists = [], {}
    for order, (kind, count) in enumerate(counts.items()):
        total = int(count.sum())
        picks = pa.array(rng.choice(len(vocab[kind].values), size=total, p=vocab[kind].probabilities))
        paper_index = np.repeat(np.arange(n), count)
        starts = np.repeat(np.cumsum(count) - count, count)
        values = vocab[kind].values.take(picks)
        parts.append((paper_index, np.full(total, order), np.arange(total) - starts, kind, values, vocab[kind].keys.take(picks)))
        json_lists[kind] = _json_list(values, count)
    paper_index = np.concatenate([p[0] for p in parts])
    sort = np.lexsort((np.concatenate([p[2] for p in parts]), np.concatenate([p[1] for p in parts]), paper_index))
    tags = pa.table({
        "extraction_id": pa.array(paper_index, pa.int64()),
        "paper_id": paper_ids.take(pa.array(paper_index)),
        "kind": pa.array(np.concatenate([np.full(len(p[0]), p[3]) for p in parts])),
        "value": pa.concat_arrays([p[4] for p in parts]),
        "key": pa.concat_arrays([p[5] for p in parts]),
        "position": pa.array(np.concatenate([p[2] for p in parts]), pa.int32()),
    }, schema=TAG_SCHEMA).take(pa.array(sort))

    domains = pa.array(np.array(DOMAINS)[rng.choice(len(DOMAINS), size=n, p=zipf_mandelbrot(len(DOMAINS), 1.0, 1.0))])
    summaries = join_rows(sentences, np.ones(n, dtype=np.int64), rng)
    raw = pc.binary_join_element_wise(
        '{"summary": "', summaries, '", "domain": "', domains, '", "tasks": ', json_lists["task"],
        ', "methods": ', json_lists["method"], ', "benchmarks": ', json_lists["benchmark"], "}", "")
    extractions = pa.table({
        "id": pa.array(np.zeros(n, dtype=np.int64)), "paper_id": paper_ids, "content_hash": papers["content_hash"],
        "model": pa.array(np.full(n, model)), "prompt_version": pa.array(np.full(n, prompt_version)),
        "schema_version": pa.array(np.full(n, schema_version)), "status": pa.array(np.full(n, "ok")),
        "summary": summaries, "domain": domains, "raw_response": raw, "error": pa.nulls(n, pa.string()),
        "prompt_tokens": pa.array(rng.integers(900, 1400, size=n, dtype=np.int32)),
        "completion_tokens": pa.array(rng.integers(60, 160, size=n, dtype=np.int32)),
        "latency_s": pa.array(rng.gamma(4.0, 0.5, size=n)),
        "truncated": pa.array(np.zeros(n, dtype=bool)), "created_at": pa.array(np.full(n, np.datetime64(now, "us"))),
        "dropped_tags": pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string())),
        "domain_scores": pa.nulls(n, pa.string()), "answered_on": pa.nulls(n, pa.string()),
    }, schema=EXTRACTION_SCHEMA)
    return Chunk(papers, extractions, tags, paper_index[sort])


def check_hashes(papers: pa.Table, sample: int = 50) -> None:
    """The bulk hashes are papertag's own: a re-run must find these papers unchanged."""
    rows = papers.slice(0, sample).to_pylist()
    for row in rows:
        assert content_hash(row["title"], row["abstract"]) == row["content_hash"], row["id"]


def load_chunk(store, chunk: Chunk) -> int:
    """papertag's bulk write path, as a loader of precomputed results calls it; returns the tags written."""
    store.merge_papers(chunk.papers)
    extractions, tags = chunk.with_ids(store.next_extraction_ids(chunk.papers.num_rows))
    store.append(extractions, tags)
    return tags.num_rows


def timed_methods(obj, names: tuple[str, ...]) -> dict[str, float]:
    """Wrap these methods on this one object so each call's wall time is added up under its name."""
    spent = {name: 0.0 for name in names}
    for name in names:
        method = getattr(obj, name)

        def wrapper(*args, _method=method, _name=name, **kwargs):
            began = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - began

        setattr(obj, name, wrapper)
    return spent
