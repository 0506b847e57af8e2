"""Regenerate evals/RESULTS.md: run `papertag eval` for both local models on the dev and test splits and on the
fixed SciTLDR dev subset (and `local` on all 619 SciTLDR dev papers), then add the post-processing ablation, the
domain confusion matrix and error counts.

Usage (from the repository root, after `make setup`): .venv/bin/python evals/make_results.py
Extractions are cached in evals/evals.duckdb, so a re-run with an unchanged prompt makes no LLM call. That database
is not in git; the answers are, in evals/answers.jsonl: restored into it first, written back from it at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from answers import ANSWERS, DB, export, restore
from papertag.evals import HEADLINE_METRICS, answered_on_text, metric
from papertag.machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
PAPERTAG = str(Path(sys.executable).with_name("papertag"))
MODELS = ("local", "local:fast")
SPLITS = ("dev", "test")
TARGETS = {  # the default model's targets on the test split (issue 9)
    "benchmark F1": 0.85, "task F1": 0.60, "method F1": 0.60, "domain acc": 0.85, "ROUGE-L": 0.38, "within 30 words": 1.0,
}
SCITLDR = Path("../shared/data/scitldr/dev.jsonl")
SCITLDR_SUBSET = 50  # the fixed tuning subset: the first 50 dev papers
SCITLDR_TARGET = 0.44  # ROUGE-1; CATTS (fine-tuned BART-large) has 43.8 on the test split
SECONDS_TARGET = 12.0  # seconds per paper on 2 cores, the 31 demo papers (issue 9)
DEMO_SECTION = "## Local default model on the 31 sample abstracts (end-to-end demo)"
# Every headline metric of a gold run; failures are already in the "papers (failed)" column.
COLUMNS = [(name, path) for name, path in HEADLINE_METRICS
           if name not in ("micro F1", "failed papers") and not name.startswith("SciTLDR")]


def latest_demo_row() -> tuple[str, str, float]:
    """(date, prompt version, seconds per paper) of the newest `make demo` row that bench/RESULTS.md records:
    speed is measured by the demo on an idle machine, not by these eval runs."""
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    section = text.split(DEMO_SECTION, 1)[1].split("\n## ", 1)[0]
    last = [line for line in section.splitlines() if line.startswith("| 20")][-1]  # rows start with their date
    cells = [cell.strip() for cell in last.strip("|").split("|")]
    return cells[0], cells[1].split("`")[1], float(cells[4])


def run(model: str, *selection: str) -> tuple[str, dict]:
    """`papertag eval` on the papers `selection` names (`--split dev`, `--gold FILE --limit N`)."""
    args = ["eval", "--model", model, *selection, "--db", "evals/evals.duckdb", "--json"]
    shown = "papertag " + " ".join(args[:-1])
    result = subprocess.run([PAPERTAG, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{shown} failed:\n{result.stderr}")
    return shown, json.loads(result.stdout)


def main() -> None:
    if ANSWERS.exists():
        print(f"restored {restore(DB, ANSWERS)} answers from {ANSWERS.name}", file=sys.stderr)
    rows, tldr_rows = [], []
    for model in MODELS:
        for split in SPLITS:
            command, run_data = run(model, "--split", split)
            rows.append((model, split, command, run_data))
            print(f"{model} {split}: done", file=sys.stderr)
        command, run_data = run(model, "--gold", str(SCITLDR), "--limit", str(SCITLDR_SUBSET))
        tldr_rows.append((model, command, run_data))
        print(f"{model} scitldr: done", file=sys.stderr)
    # All 619 dev papers, for the default model only: about 1 h 30 min uncached, so once per kept prompt version.
    full_command, full_tldr = run("local", "--gold", str(SCITLDR))
    tldr_rows.append(("local", full_command, full_tldr))
    print("local scitldr-all: done", file=sys.stderr)
    header = ("| model | split | prompt | papers (failed) | " + " | ".join(name for name, _ in COLUMNS)
              + " | answers from (papers) | command |")
    lines = [
        "# Tagging eval results",
        "",
        f"Generated {date.today().isoformat()} by `.venv/bin/python evals/make_results.py` on {os.cpu_count()} cores "
        f"({cpu_name()}), no GPU. Gold labels: `evals/gold.jsonl` (scoring rules in `evals/README.md`).",
        "Dev papers were used to tune the prompt; the few-shot examples in the prompt are not scored (three dev papers for",
        "prompts up to v10, so their dev rows cover 57 papers; runs stored before 2026-11-29 scored all 60).",
        "Only the test split is an honest estimate. Answers are cached, so a row can score answers made on another machine",
        "than this one; \"answers from\" names the CPU that made them (the same prompt gives some other answers on another CPU).",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for model, split, command, data in rows:
        metrics = data["metrics"]
        cells = [f"{metric(metrics, path):.3f}" for _, path in COLUMNS]
        lines.append(f"| `{model}` | {split} | `{data['prompt_version']}` | {metrics['papers']} ({metrics['failed']}) | "
                     + " | ".join(cells) + f" | {answered_on_text(metrics)} | `{command}` |")
    lines += ["", "## SciTLDR summaries (SciTLDR-A dev)", "",
              f"Prompts are tuned on a fixed subset, the first {SCITLDR_SUBSET} dev papers; all 619 are reported for `local` "
              "once per kept prompt version.", "",
              "Scored as the SciTLDR paper scores them: ROUGE F1 with stemming against every reference TLDR, keeping the "
              "reference with the best ROUGE-1, averaged over papers. The published anchor is CATTS (fine-tuned BART-large), "
              "ROUGE-1 43.8 on the test split, which is not used here.", "",
              "| model | prompt | papers (failed) | ROUGE-1 | ROUGE-2 | ROUGE-L | words per summary | answers from (papers) | command |",
              "|---|---|---|---|---|---|---|---|---|"]
    for model, command, data in tldr_rows:
        m = data["metrics"]
        scores = m["scitldr"]
        lines.append(f"| `{model}` | `{data['prompt_version']}` | {m['papers']} ({m['failed']}) | {100 * scores['rouge1']:.1f} | "
                     f"{100 * scores['rouge2']:.1f} | {100 * scores['rougeL']:.1f} | {scores['words']} | {answered_on_text(m)} | "
                     f"`{command}` |")
    default_test = next(data["metrics"] for model, split, _, data in rows if model == "local" and split == "test")
    default_tldr = next(data["metrics"] for model, _, data in tldr_rows if model == "local")
    lookup = dict(COLUMNS)
    lines += ["", "## Targets for the default model (`local`) on the test split", "",
              "| metric | target | measured | met |", "|---|---|---|---|"]
    for name, target in TARGETS.items():
        measured = metric(default_test, lookup[name])
        lines.append(f"| {name} | {target:.2f} | {measured:.3f} | {'yes' if measured >= target else '**no**'} |")
    for label, data in (("dev subset", default_tldr), (f"all {full_tldr['metrics']['papers']} dev", full_tldr["metrics"])):
        measured = data["scitldr"]["rouge1"]
        lines.append(f"| SciTLDR ROUGE-1 ({label}) | {100 * SCITLDR_TARGET:.1f} | {100 * measured:.1f} | "
                     f"{'yes' if measured >= SCITLDR_TARGET else '**no**'} |")
    demo_date, demo_prompt, seconds = latest_demo_row()
    lines.append(f"| seconds per paper (`make demo`, {demo_date}, prompt `{demo_prompt}`; `bench/RESULTS.md`) | "
                 f"{SECONDS_TARGET:.0f} | {seconds:.2f} | {'yes' if seconds <= SECONDS_TARGET else '**no**'} |")
    prompt_version = next(data["prompt_version"] for model, split, _, data in rows if model == "local")
    for split in SPLITS:
        analysis = subprocess.run(
            [sys.executable, "evals/analyse.py", "--db", "evals/evals.duckdb", "--prompt-version", prompt_version,
             "--split", split], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        lines += ["", f"## `local` on {split}: post-processing ablation, errors and domain confusion", "",
                  f"`.venv/bin/python evals/analyse.py --db evals/evals.duckdb --prompt-version {prompt_version} --split {split}`"
                  " re-finishes the stored answers under each variant (no model call). Rows are cumulative.", "",
                  analysis.strip()]
    similar = subprocess.run([sys.executable, "evals/similar_quality.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    lines += ["", similar.strip()]
    notes = ROOT / "evals" / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    (ROOT / "evals" / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {export(DB, ANSWERS)} answers to {ANSWERS.name}", file=sys.stderr)
    print("wrote evals/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
