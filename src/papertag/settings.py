"""Settings from the environment, read and checked in one place: Settings.from_env() is called once per command
(by the CLI, or by papertag.open), and the result is passed down. Nothing else reads os.environ."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from .errors import ConfigurationError

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_ARXIV_URL = "https://export.arxiv.org/api/query"
DEFAULT_CONTEXT_TOKENS = 32768  # what an OpenAI-compatible server is assumed to take per request

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    openai_base_url: str | None = None  # OPENAI_BASE_URL; --base-url wins over it
    openai_api_key: str | None = field(default=None, repr=False)  # OPENAI_API_KEY; never printed
    context_tokens: int = DEFAULT_CONTEXT_TOKENS  # PAPERTAG_CONTEXT_TOKENS: a remote model's context size
    timeout_s: float = DEFAULT_TIMEOUT_S  # PAPERTAG_TIMEOUT: seconds per request
    local_slots: int | None = None  # PAPERTAG_LOCAL_SLOTS; None: chosen by the run's size (backends/local.py)
    local_threads: int | None = None  # PAPERTAG_LOCAL_THREADS; None: every core
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "papertag")  # PAPERTAG_CACHE_DIR
    arxiv_url: str = DEFAULT_ARXIV_URL  # PAPERTAG_ARXIV_URL; --arxiv-url wins over it

    @property
    def models_dir(self) -> Path:
        """Where the local model's weights are assembled."""
        return self.cache_dir / "models"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Every setting from the environment; an empty variable counts as unset. A bad value raises
        ConfigurationError naming the variable, before any work is done."""
        env = os.environ if environ is None else environ

        def read(name: str, parse: Callable[[str, str], T], default: T) -> T:
            value = env.get(name, "").strip()
            return parse(name, value) if value else default

        defaults = cls()
        return cls(
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            context_tokens=read("PAPERTAG_CONTEXT_TOKENS", _positive_int, defaults.context_tokens),
            timeout_s=read("PAPERTAG_TIMEOUT", _positive_seconds, defaults.timeout_s),
            local_slots=read("PAPERTAG_LOCAL_SLOTS", _positive_int, None),
            local_threads=read("PAPERTAG_LOCAL_THREADS", _positive_int, None),
            cache_dir=read("PAPERTAG_CACHE_DIR", lambda name, value: Path(value).expanduser(), defaults.cache_dir),
            arxiv_url=read("PAPERTAG_ARXIV_URL", http_url, defaults.arxiv_url),
        )


def http_url(name: str, value: str) -> str:
    """An http(s) URL, checked before any request is made; `name` is the variable or option it came from."""
    if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
        raise ConfigurationError(f"{name} must be an http:// or https:// URL, not {value[:60]!r}")
    return value


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {value[:40]!r}") from None
    if number < 1:
        raise ConfigurationError(f"{name} must be at least 1, not {number}")
    return number


def _positive_seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, not {value[:40]!r}") from None
    if not seconds > 0 or math.isinf(seconds):  # also refuses NaN
        raise ConfigurationError(f"{name} must be a number of seconds above 0, not {value[:40]!r}")
    return seconds
