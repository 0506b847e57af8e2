"""Screenshots of `papertag serve` for the README: the paper list and one paper's page, in Debian's chromium.

    python docs/make_screenshots.py [--db FILE] [--paper TITLE-WORDS]

With --db, the pages show that database (e.g. demo.duckdb after `make demo`). Without it, the sample abstracts in
data/ are tagged through the tests' fake OpenAI endpoint into a temporary database, so the script needs no model.
Writes docs/screenshots/papers.png and docs/screenshots/paper.png.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


def fake_tagged_db(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from fake_openai import FakeOpenAI

    db = folder / "papers.duckdb"
    with FakeOpenAI() as fake:
        subprocess.run([sys.executable, "-m", "papertag", "ingest", "data/hf-papers-skills.txt",
                        "--model", "openai:fake", "--base-url", fake.base_url, "--db", str(db)],
                       check=True, capture_output=True, cwd=REPO)  # a relative source path, as a user would type
    return db


def serve(db: Path, folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "papertag", "serve", "--db", str(db.resolve()), "--port", str(port)],
                               cwd=folder, env={**os.environ, "PAPERTAG_EVAL_DB": str(folder / "none.duckdb")})
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            httpx.get(base + "/api/benchmarks", timeout=2).raise_for_status()
            return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("papertag serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="database to show (default: the sample, tagged by the fake endpoint)")
    parser.add_argument("--paper", default="CycleQD", help="search words that find the paper to show")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = args.db or fake_tagged_db(folder)
        process, base = serve(db, folder)
        try:
            paper = httpx.get(base + "/api/papers", params={"q": args.paper}).json()["papers"][0]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1200, "height": 900}, java_script_enabled=False)
                page.goto(base + "/")
                page.screenshot(path=OUT / "papers.png")
                page.goto(f"{base}/paper/{paper['id']}")
                page.screenshot(path=OUT / "paper.png", full_page=True)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(f"wrote {OUT / 'papers.png'} and {OUT / 'paper.png'}")


if __name__ == "__main__":
    main()
