"""Where a local extraction's time goes: llama.cpp's own timings per request, one slot, the demo papers.

    .venv/bin/python bench/prompt_cost.py [--papers 7] [--prompt-dir DIR ...]

For each prompt folder (default: the current prompts/), every paper is sent once, the way papertag sends it
(same messages, same JSON schema, temperature 0), and the server's `timings` are printed: prompt tokens actually
evaluated (`prompt_n`, the rest came from the prompt cache), their time, generated tokens and their time. The
first request of each prompt pays for the static prefix; the summary line leaves it out.
Old prompt versions can be compared with `git show <commit>:prompts/<file> > DIR/<file>` for the three files.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import httpx

from papertag.backends import BackendOptions
from papertag.backends.local import open_endpoint
from papertag.extract import MAX_OUTPUT_TOKENS, response_format
from papertag.prompts import load_prompt
from papertag.sources import parse_file

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "hf-papers-skills.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=7)
    parser.add_argument("--prompt-dir", type=Path, action="append", default=[])
    args = parser.parse_args()
    papers = parse_file(SAMPLE).papers[: args.papers]
    prompts = [load_prompt(directory) for directory in args.prompt_dir] or [load_prompt()]
    with open_endpoint("", BackendOptions(papers=1)) as endpoint:
        client = httpx.Client(base_url=endpoint.base_url, headers={"Authorization": f"Bearer {endpoint.api_key}"},
                              timeout=900)
        for prompt in prompts:
            rows = []
            for paper in papers:
                body = {"model": endpoint.model, "messages": prompt.messages(paper.title, paper.abstract),
                        "temperature": 0, "max_tokens": MAX_OUTPUT_TOKENS, "response_format": response_format()}
                timings = client.post("/chat/completions", json=body).json()["timings"]
                rows.append(timings)
                print(f"{prompt.version} {paper.id[:16]} prompt_n={timings['prompt_n']} "
                      f"prompt_s={timings['prompt_ms'] / 1000:.1f} predicted_n={timings['predicted_n']} "
                      f"predicted_s={timings['predicted_ms'] / 1000:.1f}", flush=True)
            warm = rows[1:]
            mean = lambda key: statistics.mean(row[key] for row in warm)  # noqa: E731
            print(f"== prompt {prompt.version}, {len(warm)} warm requests: {mean('prompt_n'):.0f} prompt tokens "
                  f"evaluated in {mean('prompt_ms') / 1000:.1f} s ({mean('prompt_per_second'):.0f} tok/s), "
                  f"{mean('predicted_n'):.0f} generated in {mean('predicted_ms') / 1000:.1f} s "
                  f"({mean('predicted_per_second'):.1f} tok/s)", flush=True)


if __name__ == "__main__":
    main()
