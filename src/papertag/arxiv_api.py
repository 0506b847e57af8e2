"""The arXiv API (export.arxiv.org/api/query) over HTTP: one search query, page by page, newest submissions first,
at the API's courtesy rate, with retries on the errors that pass. Pages are parsed by arxiv_xml like saved ones;
what is done with them (storing, resuming, tagging) is arxiv_fetch.py's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Iterator

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from .arxiv_xml import API_ERROR, ATOM, parse_atom
from .errors import InputError, SourceUnavailable
from .records import ParsedFile
from .selection import Selection
from .settings import DEFAULT_ARXIV_URL
from .text import clean_text

# arXiv's published terms of use: "no more than one request every three seconds", across all pages and retries.
COURTESY_INTERVAL_S = 3.0
PAGE_SIZE = 100  # results per request; the API allows up to 2000, but large pages time out more often
ATTEMPTS = 5  # per page: the first request and four retries
RETRY_BASE_S = 3.0  # backoff before the first retry, doubling, when the server gives no Retry-After
MAX_RETRY_WAIT_S = 120.0  # a longer Retry-After is capped: the user is waiting at a terminal
TIMEOUT_S = 60.0  # a large page can take the API tens of seconds to build
TRANSIENT_STATUS = {429, 500, 502, 503, 504}
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"


class RateLimiter:
    """At most one request every `interval_s` seconds. The clock and sleep are injectable, so tests can check the
    spacing with a fake clock instead of waiting."""

    def __init__(self, interval_s: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval_s = COURTESY_INTERVAL_S if interval_s is None else interval_s
        self.clock = clock
        self.sleep = sleep
        self._last: float | None = None

    def wait(self) -> None:
        """Block until the next request may go, and count it as gone."""
        if self._last is not None:
            delay = self._last + self.interval_s - self.clock()
            if delay > 0:
                self.sleep(delay)
        self._last = self.clock()


class _Transient(Exception):
    """A response worth asking again for (429, 5xx); carries the server's Retry-After, if any."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.retry_after_s = retry_after_seconds(response.headers.get("retry-after"))


def retry_after_seconds(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> float:
    """Retry-After as seconds (it may be a number of seconds or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - now()).total_seconds())
    except (TypeError, ValueError):
        return 0.0


def date_clause(since: date | None, until: date | None, today: date) -> str:
    """The API's own date filter, so the server sends only the wanted range (it is applied locally too)."""
    start = (since or date(1991, 1, 1)).strftime("%Y%m%d")  # arXiv's first submissions
    end = (until or today).strftime("%Y%m%d")
    return f"submittedDate:[{start}0000 TO {end}2359]"


def search_query(query: str, selection: Selection, today: date | None = None) -> str:
    """The search_query sent: the user's query, narrowed to the selection's dates when it has any."""
    query = " ".join(query.split())
    if not query:
        raise InputError("the arXiv query is empty (for example: 'cat:cs.CL AND abs:benchmark')")
    if selection.since is None and selection.until is None:
        return query
    return f"({query}) AND {date_clause(selection.since, selection.until, today or datetime.now(timezone.utc).date())}"


@dataclass
class Page:
    """One answer of the API: its papers (already filtered by the selection), and where the results stand."""

    start: int
    entries: int  # results on this page, before the selection and before records without an abstract are dropped
    total_results: int | None  # opensearch:totalResults
    parsed: ParsedFile

    @property
    def is_last(self) -> bool:
        """Nothing more to ask: an empty page, or opensearch:totalResults reached."""
        return not self.entries or (self.total_results is not None and self.start + self.entries >= self.total_results)


class ArxivClient:
    """Asks the API for pages. `http` is the seam tests use (any httpx.Client); the limiter spaces every request,
    retries included."""

    def __init__(self, base_url: str = DEFAULT_ARXIV_URL, *, http: httpx.Client | None = None,
                 limiter: RateLimiter | None = None, attempts: int = ATTEMPTS, page_size: int | None = None,
                 on_retry: Callable[[str], None] = lambda message: None):
        self.base_url = base_url
        self.on_retry = on_retry  # told each retry and its wait: a backoff can last minutes
        self.http = http or httpx.Client(timeout=TIMEOUT_S, follow_redirects=True,  # http:// is sent to https://
                                         headers={"user-agent": "papertag (arXiv API client)"})
        self.limiter = limiter or RateLimiter()
        self.attempts = attempts
        self.page_size = page_size or PAGE_SIZE

    def pages(self, query: str, selection: Selection, *, start: int = 0,
              max_results: int | None = None) -> Iterator[Page]:
        """Pages from `start` until max_results results, an empty page, or opensearch:totalResults."""
        while max_results is None or start < max_results:
            size = self.page_size if max_results is None else min(self.page_size, max_results - start)
            page = self.page(query, selection, start, size)
            yield page
            if page.is_last:
                return
            start += page.entries

    def page(self, query: str, selection: Selection, start: int, size: int) -> Page:
        params = {"search_query": query, "start": start, "max_results": size,
                  "sortBy": "submittedDate", "sortOrder": "descending"}
        text = self._get(params)
        # Every page's papers name the same source: the API and the query, not the page.
        parsed = ParsedFile(path=self.base_url, format="arxiv-atom", selection=selection,
                            query=f"search_query={query}")
        root = parse_atom(text, parsed)
        refused = _api_error(parsed)
        if refused and not parsed.papers:
            raise InputError(f"the arXiv API refused the query: {refused}")
        total = (root.findtext(f"{OPENSEARCH}totalResults") or "").strip()
        return Page(start, len(root.findall(f"{ATOM}entry")), int(total) if total.isdigit() else None, parsed)

    def _get(self, params: dict) -> str:
        retrying = Retrying(retry=retry_if_exception(_worth_retrying), stop=stop_after_attempt(self.attempts),
                            wait=self._wait, sleep=self.limiter.sleep, before_sleep=self._tell, reraise=True)
        try:
            return retrying(self._request, params)
        except _Transient as error:
            raise SourceUnavailable(f"the arXiv API answered {error} {self.attempts} times "
                                    f"({self.base_url}); try again later") from None
        except httpx.TransportError as error:
            detail = clean_text(str(error)) or type(error).__name__
            raise SourceUnavailable(f"cannot reach the arXiv API at {self.base_url} after {self.attempts} "
                                    f"attempts ({detail})") from None

    def _request(self, params: dict) -> str:
        self.limiter.wait()
        response = self.http.get(self.base_url, params=params)
        if response.status_code in TRANSIENT_STATUS:
            raise _Transient(response)
        if response.status_code >= 400:
            # A bad query is answered 400 with an Atom error entry: say what the API said.
            raise InputError(f"the arXiv API refused the request (HTTP {response.status_code}): "
                             f"{_error_summary(response.text)}")
        return response.text

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=RETRY_BASE_S, max=MAX_RETRY_WAIT_S, jitter=RETRY_BASE_S)(state)
        error = state.outcome.exception() if state.outcome else None
        told = error.retry_after_s if isinstance(error, _Transient) else 0.0
        return min(told, MAX_RETRY_WAIT_S) if told > 0 else backoff  # the server's word wins when it gives one

    def _tell(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        what = str(error) if isinstance(error, _Transient) else clean_text(str(error)) or type(error).__name__
        self.on_retry(f"the arXiv API: {what}; asking again in {state.upcoming_sleep:.0f} s "
                      f"(attempt {state.attempt_number + 1} of {self.attempts})")

    def close(self) -> None:
        self.http.close()


def _worth_retrying(error: BaseException) -> bool:
    return isinstance(error, (_Transient, httpx.TransportError))


def _api_error(parsed: ParsedFile) -> str | None:
    """What the API said was wrong with the query: it answers with an error entry (arxiv_xml names it)."""
    return next((problem.split(API_ERROR, 1)[1] for problem in parsed.problems if API_ERROR in problem), None)


def _error_summary(text: str) -> str:
    """The summary of the API's error entry, else the start of the body."""
    parsed = ParsedFile(path="arXiv API", format="arxiv-atom")
    try:
        parse_atom(text, parsed)
    except InputError:
        pass  # not Atom: a proxy's page
    return _api_error(parsed) or clean_text(text)[:200] or "no details"
