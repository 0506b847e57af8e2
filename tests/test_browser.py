"""`papertag serve` in a real browser: Debian's chromium driven by Playwright, JavaScript off (the pages need none).

The server runs as a subprocess on a free port, over a database tagged through the fake OpenAI endpoint.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fake_openai import FakeOpenAI

CHROMIUM = Path("/usr/bin/chromium")
CYCLEQD = "Agent Skill Acquisition for Large Language Models via CycleQD"

if not CHROMIUM.exists():
    # CI installs chromium (.ci/run), so a missing browser there is a failure, not a skip.
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`papertag serve` on a tagged database; yields its base URL."""
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "papers.duckdb"
    env = {**os.environ, "PAPERTAG_CACHE_DIR": str(folder / "cache")}
    env.pop("PAPERTAG_DB", None)
    sample = Path(__file__).resolve().parents[1] / "data" / "hf-papers-skills.txt"
    with FakeOpenAI() as fake:
        subprocess.run([sys.executable, "-m", "papertag", "ingest", str(sample), "--model", "openai:fake",
                        "--base-url", fake.base_url, "--db", str(db)], env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "papertag", "serve", "--db", str(db), "--port", str(port)],
                               env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/api/benchmarks", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"papertag serve did not start: {process.stdout.read().decode()}") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(java_script_enabled=False, base_url=server)
        yield context.new_page()
        browser.close()


def titles(page) -> list[str]:
    return page.locator("ol.papers a.title").all_inner_texts()


def test_search_facet_paper_and_similar_paper(page):
    page.goto("/")
    assert page.locator("h1").inner_text() == "Papers"
    assert len(titles(page)) == 20 and "31 papers, newest first" in page.locator(".total").inner_text()

    # Type a search into the box and submit it.
    page.get_by_label("Search papers").fill("agents")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/?q=agents")
    found = titles(page)
    assert found and "best match first" in page.locator(".total").inner_text()

    # Click a benchmark facet: the search and the filter combine, and each can be removed.
    page.locator("#facet-benchmark a", has_text="AgentBench").click()
    page.wait_for_url("**benchmark=AgentBench**")
    assert titles(page) == [CYCLEQD]
    assert page.locator(".chip[data-filter=benchmark]").inner_text().startswith("benchmark: AgentBench")
    assert page.get_by_label("Search papers").input_value() == "agents"  # the box keeps the search

    # Open the paper: summary, tags as facet links, provenance, similar papers.
    page.get_by_role("link", name=CYCLEQD).click()
    page.wait_for_url("**/paper/**")
    assert page.locator("h1").inner_text() == CYCLEQD
    assert page.locator("a.tag.benchmark").all_inner_texts() == ["AgentBench"]
    assert "openai:fake" in page.locator("table.provenance").inner_text()
    similar = page.locator(".similar ol li > a")
    assert similar.count() == 5

    # Follow a similar paper: its own page, with its own similar papers.
    first_similar = similar.first.inner_text()
    similar.first.click()
    page.wait_for_url("**/paper/**")
    assert page.locator("h1").inner_text() == first_similar != CYCLEQD
    assert page.locator(".similar ol li > a").count() == 5

    # A tag on the paper page leads back to the filtered list.
    page.locator("dl.tags a.tag").first.click()
    assert "/?" in page.url and len(titles(page)) >= 1


def test_removing_a_filter_and_paging(page):
    page.goto("/?benchmark=AgentBench&domain=nlp")
    assert titles(page) == [CYCLEQD]
    page.locator(".chip[data-filter=benchmark] a.remove").click()
    assert "benchmark" not in page.url and "domain=nlp" in page.url
    assert len(titles(page)) > 1
    page.goto("/")
    page.get_by_role("link", name="next →").click()
    assert page.url.endswith("/?page=2") and len(titles(page)) == 11
    assert "page 2 of 2" in page.locator("nav.pages").inner_text()


def test_benchmarks_evals_and_a_missing_paper(page):
    page.goto("/benchmarks")
    page.get_by_role("link", name="AgentBench").click()
    assert titles(page) == [CYCLEQD]
    page.goto("/evals")
    assert "no eval runs" in page.locator("main").inner_text()
    response = page.goto("/paper/no-such-id")
    assert response.status == 404 and "no paper with id" in page.locator("main").inner_text()
