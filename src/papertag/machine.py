"""What machine a model answer came from: llama.cpp's greedy answers differ between CPUs (their float kernels
differ by instruction set), so eval numbers are only comparable between answers made on the same kind of machine."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit


@cache
def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) ..."), or the architecture where the OS does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def server_host(base_url: str) -> str:
    """host[:port] of an OpenAI-compatible server, never the user or password a URL can carry."""
    parts = urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:  # not a number; the SDK says so when it connects
        port = None
    return (parts.hostname or "") + (f":{port}" if port else "")
