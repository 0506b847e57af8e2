"""Any OpenAI-compatible server: OpenAI itself, vLLM, Ollama, llama-server."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import ConfigurationError
from ..machine import server_host
from . import BackendOptions, Endpoint

OPENAI_URL = "https://api.openai.com/v1"


@contextmanager
def open_endpoint(model: str, options: BackendOptions) -> Iterator[Endpoint]:
    if not model:
        raise ConfigurationError("model spec 'openai:' needs a model name, e.g. openai:gpt-4o-mini")
    settings = options.settings
    base_url = options.base_url or settings.openai_base_url or OPENAI_URL
    api_key = settings.openai_api_key
    if not api_key:
        if base_url == OPENAI_URL:
            raise ConfigurationError("OPENAI_API_KEY is not set; export it, or use --base-url for a local server")
        api_key = "unused"  # self-hosted servers often need no key, but the SDK insists on one
    yield Endpoint(
        spec=f"openai:{model}",
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        model=model,
        context_tokens=settings.context_tokens,
        concurrency=8,
        timeout_s=settings.timeout_s,
        answered_on=server_host(base_url),
    )
