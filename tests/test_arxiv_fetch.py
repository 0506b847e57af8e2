"""Fetching from the arXiv API (Library.fetch_arxiv): paging, --max, the courtesy rate on a fake clock, retries,
resuming, and the query sent. Against tests/fake_arxiv.py on 127.0.0.1 and the fake model server."""

from datetime import date, datetime, timedelta, timezone

import httpx
import pytest

import papertag
from fake_arxiv import ALL_IDS, FakeArxiv
from test_sources_formats import DATA
from papertag.arxiv_api import ArxivClient, RateLimiter, retry_after_seconds, search_query
from papertag.arxiv_fetch import run_key
from papertag.errors import InputError, SourceUnavailable
from papertag.queries import Reader
from papertag.selection import Selection

QUERY = "cat:cs.CL AND abs:benchmark"


class FakeClock:
    """time.monotonic and time.sleep in one: sleeping moves the clock, at once."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Client(ArxivClient):
    """The real client on a fake clock, three results a page like the recorded pages; notes when each request
    leaves."""

    def __init__(self, server: FakeArxiv, clock: FakeClock | None = None, **options):
        self.clock = clock or FakeClock()
        self.sent_at: list[float] = []
        http = httpx.Client(event_hooks={"request": [lambda request: self.sent_at.append(self.clock.now)]})
        super().__init__(server.url, http=http, limiter=RateLimiter(clock=self.clock, sleep=self.clock.sleep),
                         page_size=3, **options)


@pytest.fixture
def arxiv():
    with FakeArxiv() as server:
        yield server


@pytest.fixture
def library(fake_server, db_path):
    with papertag.open(db_path, model="openai:fake", base_url=fake_server.base_url) as library:
        yield library


def stored_ids(db_path) -> list[str]:
    with Reader(db_path) as reader:
        return [row[0] for row in reader.con.execute("SELECT id FROM papers ORDER BY id DESC").fetchall()]


def test_fetches_every_page_and_tags_the_papers(library, arxiv, fake_server, db_path):
    client = Client(arxiv)
    report = library.fetch_arxiv(QUERY, client=client)
    assert arxiv.starts == [0, 3, 6]  # totalResults (7) reached: no fourth request for an empty page
    assert {params["max_results"] for params in arxiv.requests} == {"3"}
    assert arxiv.requests[0] == {"search_query": QUERY, "start": "0", "max_results": "3",
                                 "sortBy": "submittedDate", "sortOrder": "descending"}
    assert (report.papers, report.extracted, report.new_or_changed, report.succeeded) == (7, 7, 7, True)
    assert stored_ids(db_path) == ALL_IDS and fake_server.calls == 7
    paper = library.show("2411.18210")
    assert paper["benchmarks"] == ["MT-Bench", "AlpacaEval 2.0"] and paper["arxiv_version"] == 2
    assert paper["categories"] == ["cs.CL", "cs.AI"] and str(paper["published"]) == "2024-11-27"
    assert paper["source"] == f"{arxiv.url} (search_query={QUERY})"  # the query, the same for every page


def test_requests_are_three_seconds_apart_on_the_clock(library, arxiv):
    client = Client(arxiv)
    library.fetch_arxiv(QUERY, client=client)
    gaps = [later - earlier for earlier, later in zip(client.sent_at, client.sent_at[1:])]
    assert len(gaps) == 2 and all(gap >= 3.0 for gap in gaps)
    assert client.clock.sleeps == pytest.approx([3.0, 3.0])  # no time passes on a fake clock between requests


def test_rate_limiter_waits_only_for_what_is_left():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.wait()  # the first request goes at once
    clock.now += 1.0  # the caller worked for a second
    limiter.wait()
    clock.now += 5.0
    limiter.wait()
    assert clock.sleeps == [2.0]


def test_max_stops_early_and_asks_only_for_what_it_needs(library, arxiv):
    report = library.fetch_arxiv(QUERY, max_results=4, client=Client(arxiv))
    assert [(params["start"], params["max_results"]) for params in arxiv.requests] == [("0", "3"), ("3", "1")]
    assert report.papers == 4


def test_an_empty_page_ends_the_results(library):
    # The API now and then answers a page inside totalResults with no entries: there is no start to go on from.
    with FakeArxiv(empty={3}) as arxiv:
        report = library.fetch_arxiv(QUERY, client=Client(arxiv))
        assert arxiv.starts == [0, 3]
    assert report.papers == 3


def test_a_503_is_retried_after_its_retry_after(library, fake_server):
    with FakeArxiv(script={3: [(503, {"retry-after": "17"})]}) as arxiv:
        client = Client(arxiv)
        report = library.fetch_arxiv(QUERY, client=client)
        assert arxiv.starts == [0, 3, 3, 6]
    assert report.papers == 7 and report.succeeded
    assert 17.0 in client.clock.sleeps  # the server's word, not the backoff
    gaps = [later - earlier for earlier, later in zip(client.sent_at, client.sent_at[1:])]
    assert all(gap >= 3.0 for gap in gaps)


def test_retries_run_out_in_one_line_and_the_run_resumes_at_the_missing_page(library, fake_server, db_path):
    with FakeArxiv(script={3: [(503, {})] * 5}) as arxiv:
        client = Client(arxiv)
        with pytest.raises(SourceUnavailable, match=r"^the arXiv API answered HTTP 503 5 times .*try again later$"):
            library.fetch_arxiv(QUERY, client=client)
        assert arxiv.starts == [0, 3, 3, 3, 3, 3]
        backoffs = client.clock.sleeps[1:]  # after the first page's 3 s: exponential, from 3 s
        assert len(backoffs) == 4 and backoffs == sorted(backoffs) and backoffs[0] >= 3.0
    assert stored_ids(db_path) == ALL_IDS[:3] and fake_server.calls == 0  # the first page is kept, untagged

    with FakeArxiv() as arxiv:
        report = library.fetch_arxiv(QUERY, client=Client(arxiv))
        assert arxiv.starts == [3, 6]  # only the pages still missing
    assert (report.papers, report.extracted) == (7, 7) and fake_server.calls == 7


def test_a_run_stopped_while_tagging_asks_the_api_nothing_again(library, fake_server, db_path):
    finished = []

    def stop_after_two(result):
        finished.append(result)
        if len(finished) == 2:
            raise KeyboardInterrupt

    with FakeArxiv() as arxiv:
        with pytest.raises(KeyboardInterrupt):
            library.fetch_arxiv(QUERY, client=Client(arxiv), concurrency=1, on_result=stop_after_two)
    calls_before = fake_server.calls
    assert 2 <= calls_before < 7

    with FakeArxiv() as arxiv:
        report = library.fetch_arxiv(QUERY, client=Client(arxiv))
        assert arxiv.requests == []  # every page was fetched before the stop
    assert report.papers == 7 and report.cached >= 2 and report.cached + report.extracted == 7
    assert fake_server.calls - calls_before == report.extracted  # no paper went to the model twice

    with FakeArxiv() as arxiv:  # finished: the next run asks from the first page, and the model nothing
        again = library.fetch_arxiv(QUERY, client=Client(arxiv))
        assert arxiv.starts == [0, 3, 6]
    assert (again.cached, again.extracted, again.new_or_changed) == (7, 0, 0)


def test_since_and_until_are_sent_and_checked(library, arxiv):
    report = library.fetch_arxiv(QUERY, since="2024-11-26", until="2024-11-26", client=Client(arxiv))
    sent = arxiv.requests[0]["search_query"]
    assert sent == f"({QUERY}) AND submittedDate:[202411260000 TO 202411262359]"
    # The recorded pages ignore the date clause: the local check keeps the three papers of that day.
    assert report.papers == 3 and library.show("2411.17731")["title"].startswith("MMLU-Pro")


def test_search_query_fills_an_open_end():
    selection = Selection.of(since="2024-01-01")
    assert search_query("  au:hinton   ", selection, today=date(2026, 11, 27)) == \
        "(au:hinton) AND submittedDate:[202401010000 TO 202611272359]"
    assert search_query("au:hinton", Selection()) == "au:hinton"
    with pytest.raises(InputError, match="empty"):
        search_query("  ", Selection())


def test_a_run_is_remembered_without_todays_date():
    # A run with an open end sends today's date, but must find its progress tomorrow too.
    assert run_key(QUERY, Selection.of(since="2024-11-26")) == \
        f"({QUERY}) AND submittedDate:[202411260000 TO 999912312359]"
    assert run_key(QUERY, Selection()) == QUERY


def test_records_without_an_abstract_are_named_and_fail_the_run(library):
    # The saved response of the sources tests, answered through httpx's own seam: its third entry has no abstract.
    saved = (DATA / "arxiv_api.xml").read_bytes()
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=saved)))
    clock = FakeClock()
    client = ArxivClient("https://arxiv.test/api/query", http=http, limiter=RateLimiter(clock=clock, sleep=clock.sleep))
    report = library.fetch_arxiv("cat:cs.CL", client=client)
    assert report.input_problems == ["arXiv API page from result 1: entry 3: missing 'abstract'"]
    assert report.papers == 2 and not report.succeeded


def test_a_refused_query_is_one_line(library):
    with FakeArxiv(script={0: [(400, {})]}) as arxiv:
        with pytest.raises(InputError) as error:
            library.fetch_arxiv("cat:", client=Client(arxiv))
        assert len(arxiv.requests) == 1  # a 400 is not retried
    assert str(error.value) == "the arXiv API refused the request (HTTP 400): incorrect search query field cat:"


def test_connection_errors_are_retried_then_one_line(library):
    with FakeArxiv() as arxiv:
        url = arxiv.url
    client = ArxivClient(url, limiter=RateLimiter(clock=FakeClock(), sleep=lambda seconds: None), attempts=2)
    with pytest.raises(SourceUnavailable, match=r"^cannot reach the arXiv API at .* after 2 attempts \("):
        library.fetch_arxiv(QUERY, client=client)


def test_retry_after_as_a_date():
    now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(later, now=lambda: now) == 90.0
    assert retry_after_seconds("soon") == 0.0 and retry_after_seconds(None) == 0.0 and retry_after_seconds("4") == 4.0
