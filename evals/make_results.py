"""Regenerate evals/RESULTS.md: run `papertag eval` for both local models on the dev and test splits.

Usage (from the repository root, after `make setup`): .venv/bin/python evals/make_results.py
Extractions are cached in evals/evals.duckdb, so a re-run with an unchanged prompt makes no LLM call.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

from papertag.evals import HEADLINE_METRICS, metric

ROOT = Path(__file__).resolve().parents[1]
PAPERTAG = str(Path(sys.executable).with_name("papertag"))
MODELS = ("local", "local:fast")
SPLITS = ("dev", "test")
TARGETS = {  # the default model's targets on the test split
    "benchmark F1": 0.85, "domain acc": 0.80, "task F1": 0.60, "method F1": 0.60, "ROUGE-L": 0.35, "within 30 words": 1.0,
}
# Every headline metric; failures are already in the "papers (failed)" column, micro F1 adds little here.
COLUMNS = [(name, path) for name, path in HEADLINE_METRICS if name not in ("micro F1", "failed papers")]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run(model: str, split: str) -> tuple[str, dict]:
    args = ["eval", "--model", model, "--split", split, "--db", "evals/evals.duckdb", "--json"]
    shown = "papertag " + " ".join(args[:-1])
    result = subprocess.run([PAPERTAG, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{shown} failed:\n{result.stderr}")
    return shown, json.loads(result.stdout)


def main() -> None:
    rows = []
    for model in MODELS:
        for split in SPLITS:
            command, run_data = run(model, split)
            rows.append((model, split, command, run_data))
            print(f"{model} {split}: done", file=sys.stderr)
    header = "| model | split | prompt | papers (failed) | " + " | ".join(name for name, _ in COLUMNS) + " | command |"
    lines = [
        "# Tagging eval results",
        "",
        f"Generated {date.today().isoformat()} by `.venv/bin/python evals/make_results.py` on {os.cpu_count()} cores "
        f"({cpu_model()}), no GPU. Gold labels: `evals/gold.jsonl` (scoring rules in `evals/README.md`).",
        "Dev papers were used to tune the prompt (and three of them, shortened, are its few-shot examples);",
        "only the test split is an honest estimate.",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for model, split, command, data in rows:
        metrics = data["metrics"]
        cells = [f"{metric(metrics, path):.3f}" for _, path in COLUMNS]
        lines.append(f"| `{model}` | {split} | `{data['prompt_version']}` | {metrics['papers']} ({metrics['failed']}) | "
                     + " | ".join(cells) + f" | `{command}` |")
    default_test = next(data["metrics"] for model, split, _, data in rows if model == "local" and split == "test")
    lookup = dict(COLUMNS)
    lines += ["", "## Targets for the default model (`local`) on the test split", "",
              "| metric | target | measured | met |", "|---|---|---|---|"]
    for name, target in TARGETS.items():
        measured = metric(default_test, lookup[name])
        lines.append(f"| {name} | {target:.2f} | {measured:.3f} | {'yes' if measured >= target else '**no**'} |")
    notes = ROOT / "evals" / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    (ROOT / "evals" / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("wrote evals/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
