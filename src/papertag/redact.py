"""API keys never reach the database or the terminal, even when a server's error message quotes them
("Incorrect API key provided: sk-…")."""

from __future__ import annotations

import re

REDACTED = "[redacted]"
# Shorter configured keys are left alone: replacing a short word everywhere would garble messages (and a
# self-hosted server's placeholder key, "unused", is no secret).
MIN_SECRET_CHARS = 8
# Key-shaped text, whoever's key it is: OpenAI-style keys, also masked ones ("sk-proj-abc****wxyz"), and bearer tokens.
_KEY_SHAPES = re.compile(r"\bsk-[A-Za-z0-9_*-]{8,}|(?<=\bBearer )[^\s'\",]{8,}", re.IGNORECASE)
_known_secrets: set[str] = set()


def remember_secret(secret: str) -> None:
    """Every endpoint's key (OPENAI_API_KEY, the local server's per-process key) is redacted from then on,
    whatever its shape."""
    if len(secret) >= MIN_SECRET_CHARS:
        _known_secrets.add(secret)


def redact(text: str) -> str:
    for secret in tuple(_known_secrets):  # a copy: another thread may open an endpoint meanwhile
        text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)
