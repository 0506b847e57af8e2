"""Shared by the benchmarks: describe the machine and append a dated section to bench/RESULTS.md."""

from __future__ import annotations

import os
import shlex
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


def _proc_field(path: str, key: str) -> str | None:
    """The first `key: value` line of a /proc file, or None (not Linux, field missing)."""
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return None


def machine_info() -> str:
    """One line, e.g. '2 cores (AMD EPYC), 23.5 GiB RAM, load average 0.41 at start'."""
    cpu = _proc_field("/proc/cpuinfo", "model name") or "unknown CPU"
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    ram = f"{int(mem_kb.split()[0]) / 2**20:.1f} GiB RAM" if mem_kb else "unknown RAM"
    # Other work on the machine skews every number; say how busy it was.
    load = f"load average {os.getloadavg()[0]:.2f} at start" if hasattr(os, "getloadavg") else ""
    return ", ".join(part for part in (f"{os.cpu_count()} cores ({cpu})", ram, load) if part)


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes together have spent busy since boot (Linux /proc/stat), or None elsewhere.
    Take it before and after a run, subtract the run's own time.process_time(): the rest is other work."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")  # guest time is already in user


def command_line() -> str:
    """The command as typed from the repository root, so it can be pasted back."""
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(ROOT):
        script = script.relative_to(ROOT)
    return shlex.join([str(python), str(script), *sys.argv[1:]])


def append_results(title: str, command: str, body_markdown: str, *, machine: str | None = None) -> None:
    """Append '## title' with the date, machine and command, then the body. `machine` defaults to machine_info()
    now; pass the one taken at the start of a long run so the load figure is the one the run began under."""
    section = (
        f"\n## {title}\n\n"
        f"- Date: {date.today().isoformat()}\n"
        f"- Machine: {machine or machine_info()}\n"
        f"- Command: `{command}`\n\n"
        f"{body_markdown.strip()}\n"
    )
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    RESULTS.write_text(text.rstrip("\n") + "\n" + section, encoding="utf-8")
