"""LLM backends. Each one turns a model spec into an OpenAI-compatible endpoint; nothing else
knows which backend is in use. Adding a backend means adding a module and one line in BACKENDS."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Callable

from ..errors import ConfigurationError
from ..redact import remember_secret
from ..settings import DEFAULT_TIMEOUT_S, Settings
from ..text import has_control_characters

DEFAULT_MODEL_SPEC = "local"


@dataclass(frozen=True)
class Endpoint:
    """Where to send chat completions, and what the backend knows about its limits."""

    spec: str  # the user's model spec, stored with every extraction
    base_url: str
    api_key: str = field(repr=False)  # never printed, logged or stored
    model: str  # the model name sent in requests
    context_tokens: int  # per request
    concurrency: int  # how many requests the endpoint serves at once by default
    timeout_s: float = DEFAULT_TIMEOUT_S  # per request
    # Ask for token log-probabilities, which give the domain's runners-up (domain_logprobs.py). Off unless the
    # backend knows the server returns them: some OpenAI models refuse requests that ask.
    logprobs: bool = False
    # Where the model runs, stored with every answer (machine.py says why): this CPU for the embedded model, the
    # server's host for an OpenAI-compatible endpoint.
    answered_on: str = ""

    def __post_init__(self) -> None:
        remember_secret(self.api_key)  # a server's error message may quote the key back


# A backend opens an endpoint for the part of the spec after "prefix:" and closes it when done.
Backend = Callable[[str, "BackendOptions"], AbstractContextManager[Endpoint]]


@dataclass(frozen=True)
class BackendOptions:
    base_url: str | None = None
    papers: int | None = None  # how many papers the run will send, so a backend can size itself
    # Read from the environment when the options are made (at the caller's edge), unless given.
    settings: Settings = field(default_factory=Settings.from_env)


def _backends() -> dict[str, Backend]:
    from . import local, openai_compat

    return {"local": local.open_endpoint, "openai": openai_compat.open_endpoint}


def open_endpoint(spec: str, options: BackendOptions | None = None) -> AbstractContextManager[Endpoint]:
    if has_control_characters(spec):  # it is stored with every extraction and printed: refused, not cleaned
        raise ConfigurationError("the model spec has control characters or terminal escapes in it")
    prefix, _, rest = spec.partition(":")
    backends = _backends()
    if prefix not in backends:
        raise ConfigurationError(
            f"unknown model spec {spec!r}: use local, local:fast, local:/path/model.gguf or openai:<model>"
        )
    return backends[prefix](rest, options or BackendOptions())
