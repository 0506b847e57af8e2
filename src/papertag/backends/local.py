"""The embedded llama.cpp server (xllamacpp), in-process on loopback, with a per-process API key."""

from __future__ import annotations

import os
import secrets
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import weights
from ..machine import cpu_name
from ..errors import BackendError, ConfigurationError
from . import BackendOptions, Endpoint

NAMED_MODELS = {"": weights.QWEN_1_5B, "fast": weights.QWEN_0_5B}
CONTEXT_PER_SLOT = 4096
# Measured on 2 cores with the 1.5B model (bench/RESULTS.md): once warm, 1, 2, 4 slots gave 6.11, 6.26, 6.80
# papers/min (parallel slots batch the decoding). But each extra slot first reads the ~1,300-token static prompt
# prefix itself (~23 s here), so 4 slots only win from about 50 papers on.
MANY_SLOTS = 4
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_LEFT_RUNNING: list = []  # servers not stopped after Ctrl-C (see open_endpoint)
MIN_PAPERS_FOR_MANY_SLOTS = 50


@contextmanager
def _stop_signals_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM wait while llama.cpp loads: a Ctrl-C that lands in the load hangs it for good (measured).
    They are blocked for this thread, so the threads llama.cpp starts inherit the block and never see them, and
    (in the main thread) recorded by a Python handler instead of raising in the middle of the load. The caller
    re-raises what was recorded once the server is safely referenced."""
    held: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():  # Python handlers can only be set there
        previous = {signum: signal.signal(signum, lambda signum, frame: held.append(signum)) for signum in STOP_SIGNALS}
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield held
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a signal that came meanwhile is recorded here
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def resolve_model_path(name: str, models_dir: Path) -> Path:
    """A named model's weights, assembled in models_dir on first use, or the GGUF file given by path."""
    if name in NAMED_MODELS:
        return weights.assemble(NAMED_MODELS[name], models_dir)
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"model file {path} does not exist (local:PATH needs a .gguf file)")
    return path


def choose_slots(papers: int | None, configured: int | None) -> int:
    """PAPERTAG_LOCAL_SLOTS if set; else 4 slots for a run of 50 papers or more (or of unknown size), 1 for less."""
    if configured:
        return configured
    return 1 if papers is not None and papers < MIN_PAPERS_FOR_MANY_SLOTS else MANY_SLOTS


@contextmanager
def open_endpoint(name: str, options: BackendOptions) -> Iterator[Endpoint]:
    if options.base_url:
        raise ConfigurationError("--base-url goes with openai:<model>, not with the embedded local model")
    try:
        import xllamacpp
    except ImportError:
        raise ConfigurationError("the local model needs the 'local' extra: pip install 'papertag[local]'") from None

    settings = options.settings
    path = resolve_model_path(name, settings.models_dir)
    slots = choose_slots(options.papers, settings.local_slots)
    threads = settings.local_threads or os.cpu_count() or 2
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
    with _stop_signals_held() as held:
        try:
            server = xllamacpp.Server(params)
        except Exception as error:  # the C++ side reports a bad GGUF as a generic error
            raise BackendError(f"llama.cpp could not load {path}: {error}") from None
        # Kept referenced until the run ends normally: after Ctrl-C the process exits without running the server's
        # destructor, which joins llama.cpp's threads and hung for good when it ran during an interrupted load.
        _LEFT_RUNNING.append(server)
    if held:
        signal.raise_signal(held[0])  # handled now, as it would have been: the caller stops and reports
    try:
        yield Endpoint(
            spec="local" + (f":{name}" if name else ""),
            base_url=server.listening_address.rstrip("/") + "/v1",
            api_key=api_key,
            model=path.stem,
            context_tokens=CONTEXT_PER_SLOT,
            concurrency=slots,
            timeout_s=settings.timeout_s,
            # llama.cpp returns them for chat completions; the lean the domain decision divides out (domains.py) was
            # measured for the default model only, so other models keep their plain answer.
            logprobs=name == "",
            answered_on=f"{cpu_name()}, {threads} threads",
        )
    except KeyboardInterrupt:
        # Stopping llama.cpp waits for every slot's answer in progress, minutes on a CPU (measured: still waiting
        # after 300 s). After Ctrl-C the process is about to exit, so the server is left to end with it.
        raise
    except BaseException:
        _LEFT_RUNNING.remove(server)
        raise
    else:
        _LEFT_RUNNING.remove(server)
    finally:
        del server  # the server stops with its Python object, unless it is still in _LEFT_RUNNING
