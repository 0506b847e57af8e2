"""'papertag arxiv': an arXiv API query's results fetched into the store, page by page, resumably; the run then
tags them through ingest's code path (api.Library.fetch_arxiv).

How a stopped run resumes, and why this way. The model is the expensive part (seconds per paper); the API is
the slow one (3 s per page of up to 100 results). So:
- Each page's papers are stored (untagged) as it arrives, and the run's progress is one row of arxiv_fetches:
  where the next page starts, whether the results are exhausted, and the stored ids the pages gave.
- A run stopped while fetching (Ctrl-C, or the API failing after its retries) resumes at the next page; one
  stopped while tagging asks the API nothing. Either way the papers of the pages already fetched are read back
  from the store and go through ingest with the new ones, where everything already tagged by this model and
  prompt is skipped at no cost: a paper whose arXiv id and version are stored with the same text is never sent
  to the model again (and a newer version is tagged again only if its text changed, identity.py).
- The row goes when the run finishes. The next run of the query starts from the first page again: results
  are newest first, so newer papers are at the front; the pages are cheap, the model calls they repeat are not
  made.
The cost of the offset: papers submitted between the stop and the resume push the results down, so the
resumed run sees a few results twice (one row each, identity.py) and leaves those new papers to the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Callable

from .arxiv_api import ArxivClient, Page, search_query
from .selection import Selection
from .sources import Inputs
from .store import Store


@dataclass
class Fetched:
    key: str  # of the run's progress (run_key)
    inputs: Inputs = field(default_factory=Inputs)  # all the run's papers; the problems of the pages fetched now
    pages: int = 0  # asked of the API by this call
    new_or_changed: int = 0  # stored papers that were new or had a new text


def run_key(query: str, selection: Selection) -> str:
    """What a run's progress is remembered under: the search query with an open end left open, not filled with
    today's date as when it is sent, so a run resumed the next day finds its progress."""
    return search_query(query, selection, today=date.max)


def fetch_into(store: Store, client: ArxivClient, query: str, selection: Selection, *,
               max_results: int | None = None, on_page: Callable[[Page], None] = lambda page: None) -> Fetched:
    """Fetch the query's pages not yet fetched by an unfinished run of it, storing each page's papers as it
    arrives; returns every paper of the run, read back from the store."""
    sent = search_query(query, selection)
    fetched = Fetched(run_key(query, selection))
    progress = store.arxiv_fetch(fetched.key)
    if not (progress and progress["exhausted"]):
        start = progress["next_start"] if progress else 0
        for page in client.pages(sent, selection, start=start, max_results=max_results):
            resolved = store.resolve_papers(page.parsed.papers)
            fetched.new_or_changed += store.add_papers(resolved.papers, resolved.absorbed)
            store.save_arxiv_fetch(fetched.key, next_start=page.start + page.entries,
                                   total_results=page.total_results, exhausted=page.is_last,
                                   paper_ids=[paper.id for paper in resolved.papers])
            store.release()  # readers may open the database while the next request waits its turn
            fetched.pages += 1
            fetched.inputs.problems += [f"arXiv API page from result {page.start + 1}: {problem}"
                                        for problem in page.parsed.problems]
            fetched.inputs.not_selected += page.parsed.not_selected
            on_page(page)
    progress = store.arxiv_fetch(fetched.key) or {"paper_ids": []}
    ids = dict.fromkeys(progress["paper_ids"])  # a resumed run may see a paper twice
    stored = store.papers_by_id(list(ids))
    fetched.inputs.papers = [stored[paper_id] for paper_id in ids if paper_id in stored]  # absorbed ids are gone
    return fetched
