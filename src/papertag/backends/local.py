"""The embedded llama.cpp server (xllamacpp), in-process on loopback, with a per-process API key."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import weights
from ..errors import PapertagError
from . import BackendOptions, Endpoint

NAMED_MODELS = {"": weights.QWEN_1_5B, "fast": weights.QWEN_0_5B}
CONTEXT_PER_SLOT = 4096
# Measured on 2 cores with the 1.5B model (bench/RESULTS.md): 1, 2, 4 slots gave 6.11, 6.26, 6.80 papers/min;
# parallel slots batch the decoding of several papers, which pays even when the cores are shared.
DEFAULT_SLOTS = 4


def resolve_model_path(name: str) -> Path:
    if name in NAMED_MODELS:
        return weights.assemble(NAMED_MODELS[name])
    path = Path(name).expanduser()
    if not path.is_file():
        raise PapertagError(f"model file {path} does not exist (local:PATH needs a .gguf file)")
    return path


@contextmanager
def open_endpoint(name: str, options: BackendOptions) -> Iterator[Endpoint]:
    if options.base_url:
        raise PapertagError("--base-url goes with openai:<model>, not with the embedded local model")
    try:
        import xllamacpp
    except ImportError:
        raise PapertagError("the local model needs the 'local' extra: pip install 'papertag[local]'") from None

    path = resolve_model_path(name)
    slots = int(os.environ.get("PAPERTAG_LOCAL_SLOTS", str(DEFAULT_SLOTS)))
    threads = int(os.environ.get("PAPERTAG_LOCAL_THREADS", str(os.cpu_count() or 2)))
    api_key = secrets.token_urlsafe(24)

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.hostnames = ["127.0.0.1"]  # loopback only, never 0.0.0.0
    params.port = 0  # a free port
    params.api_keys = [api_key]
    params.n_parallel = slots
    params.n_ctx = CONTEXT_PER_SLOT * slots  # llama.cpp splits the context across slots
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    params.ui = False
    params.verbosity = -1  # llama.cpp's own logging would tear the progress bar
    try:
        server = xllamacpp.Server(params)
    except Exception as error:  # the C++ side reports a bad GGUF as a generic error
        raise PapertagError(f"llama.cpp could not load {path}: {error}") from None
    try:
        yield Endpoint(
            spec="local" + (f":{name}" if name else ""),
            base_url=server.listening_address.rstrip("/") + "/v1",
            api_key=api_key,
            model=path.stem,
            context_tokens=CONTEXT_PER_SLOT,
            concurrency=slots,
        )
    finally:
        del server  # the server stops with its Python object
