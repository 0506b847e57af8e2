"""Probe, not part of papertag: does showing the model the TLDRs of similar SciTLDR *train* papers help its summary?

Issue 9 suggests few-shot examples chosen per paper. Whole examples (abstract + answer) would cost about 300 prompt
tokens each on every paper, which the 12 s budget cannot pay, so this probe adds only the author TLDRs of the K
nearest train papers (MiniLM cosine over title + abstract, as `papertag similar` uses) to the paper's user message,
after the cached static prompt. Train papers only: dev is what is scored, and test is not used at all.

Usage (from the repository root; needs ../shared/data/scitldr/):
    .venv/bin/python evals/probe_tldr_fewshot.py [--limit 50] [--k 2] [--db /tmp/probe.duckdb]

It writes its answers under a prompt version of its own ("probe-…") into the given database, so the eval cache in
evals/evals.duckdb is not touched, and prints the scores with the prompt-token cost per paper.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import duckdb
import numpy as np

from papertag.embed import Embedder, paper_text
from papertag.evals import load_scitldr, run_summary_eval
from papertag.prompts import Prompt, load_prompt
from papertag.store import Store

ROOT = Path(__file__).resolve().parents[1]
SCITLDR = ROOT.parent / "shared" / "data" / "scitldr"
HINT_HEADER = ("One-sentence summaries that the authors of similar papers wrote (about other papers; for the style "
               "of the summary only):")


@dataclasses.dataclass(frozen=True)
class HintedPrompt(Prompt):
    hints: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, compare=False)  # title -> TLDRs

    def messages(self, title: str, abstract: str) -> list[dict]:
        messages = super().messages(title, abstract)
        tldrs = self.hints.get(title)
        if tldrs:
            lines = "\n".join(f"- {tldr}" for tldr in tldrs)
            messages[-1] = {"role": "user", "content": f"{HINT_HEADER}\n{lines}\n\n{messages[-1]['content']}"}
        return messages


def train_pool() -> tuple[list[str], list[str]]:
    """The author TLDR and the embedded text of every SciTLDR train paper, in file order."""
    tldrs, texts = [], []
    for line in (SCITLDR / "train.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        tldrs.append(record["target"][0])  # the first target is the author-written TLDR in SciTLDR-A
        texts.append(paper_text(record["title"], " ".join(record["source"])))
    return tldrs, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--model", default="local")
    parser.add_argument("--db", type=Path, default=Path("/tmp/probe.duckdb"))
    args = parser.parse_args()

    items = load_scitldr(SCITLDR / "dev.jsonl", args.limit)
    papers = [item.paper for item in items]
    tldrs, texts = train_pool()
    embedder = Embedder()
    pool = embedder.embed(texts)
    queries = embedder.embed([paper_text(p.title, p.abstract) for p in papers])
    hints = {}
    for paper, vector in zip(papers, queries):
        nearest = np.argsort(-(pool @ vector))[:args.k]
        hints[paper.title] = tuple(tldrs[i] for i in nearest)
    base = load_prompt()
    prompt = HintedPrompt(**dataclasses.asdict(base) | {"version": f"probe-k{args.k}-{base.version[:6]}",
                                                         "hints": hints})
    store = Store(args.db)
    try:
        run = run_summary_eval(store, items, gold_path=SCITLDR / "dev.jsonl", spec=args.model, prompt=prompt)
    finally:
        store.close()
    with duckdb.connect(str(args.db), read_only=True) as con:
        tokens = con.execute(
            "SELECT avg(prompt_tokens), avg(completion_tokens), avg(latency_s) FROM extractions WHERE prompt_version = ?",
            [prompt.version]).fetchone()
    print(json.dumps({"prompt": prompt.version, "k": args.k, "metrics": run["metrics"], "ingest": run["ingest"],
                      "prompt_tokens": tokens[0], "completion_tokens": tokens[1], "latency_s": tokens[2]}, indent=1))


if __name__ == "__main__":
    main()
