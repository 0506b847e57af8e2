"""The digest: the papers added since a moment, grouped by domain, each with its summary, benchmarks and link, as
Markdown, an HTML page, an Atom feed or JSON.

"Added" means first tagged: the time a paper's first good extraction was stored (Reader.first_tagged). A paper
re-tagged by another model or prompt keeps its time, so a new model does not flood the next digest (ingest --force
replaces the stored extraction, time included); a paper whose extraction failed is added on the day it is tagged.

A digest without a start remembers where it stopped: the first-tagged time of its newest paper. Papers are stored by
one writer at a time, each batch with a newer time than the last, so no paper can turn up later behind that
position."""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .jsonvalues import dumps
from .schema import DOMAINS
from .text import clean_text

if TYPE_CHECKING:
    from jinja2 import Environment

DIGEST_FORMATS = ("md", "html", "atom", "json")
# New-style arXiv ids (2401.01234, 2401.01234v2) and old-style ones (cs/0101001, math.GT/0309136v1).
ARXIV_ID = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?")


def paper_link(paper: dict[str, Any]) -> str | None:
    """The page a digest links a paper to: its stored URL (http or https only: a source's `javascript:` must not
    become a link), else arXiv's abstract page for its stored arXiv id or an id that is one, else none."""
    url = paper.get("url") or ""
    if url.startswith(("https://", "http://")):
        return url
    arxiv_id = paper.get("arxiv_id") or (paper["id"] if ARXIV_ID.fullmatch(paper["id"]) else None)
    return f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else None


def parse_since(since: datetime | date | str) -> datetime:
    """A start as naive UTC, like the stored times: an ISO date (midnight UTC) or date and time (UTC unless it
    carries an offset)."""
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since.strip())
        except ValueError:
            raise InputError(f"--since {since!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM "
                             "(UTC unless an offset such as +01:00 is given)") from None
    if not isinstance(since, datetime):
        since = datetime(since.year, since.month, since.day)
    if since.tzinfo is not None:
        since = since.astimezone(timezone.utc).replace(tzinfo=None)
    return since


XML_NONCHARACTERS = re.compile("[\ufffe\uffff]")  # not allowed in XML even as &#xFFFF;: one would spoil the feed


def _line(text: str) -> str:
    """One clean line of text, that every format can carry."""
    return XML_NONCHARACTERS.sub("", clean_text(text))


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Digest:
    since: datetime | None  # papers first tagged from this moment on (after it, when remembered); None: all of them
    remembered: bool  # `since` is the last digest's position, and this digest moves it past its papers
    papers: list[dict[str, Any]]  # id, title, summary, benchmarks, domain, tagged_at, link; by title
    created_at: datetime = field(default_factory=_utc_now)

    @classmethod
    def of(cls, since: datetime | None, remembered: bool, records: list[dict[str, Any]]) -> "Digest":
        """From Reader records; text is made one clean line once here, for every format."""
        papers = [{
            "id": record["id"], "title": _line(record["title"]), "summary": _line(record["summary"] or ""),
            "benchmarks": [_line(value) for value in record["benchmarks"]], "domain": record["domain"],
            "tagged_at": record["tagged_at"], "link": paper_link(record),
        } for record in records]
        return cls(since, remembered, papers)

    @property
    def covered_until(self) -> datetime | None:
        """The position the next remembered digest starts after."""
        return max((paper["tagged_at"] for paper in self.papers), default=None)

    def by_domain(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """Domains in the schema's order (an unknown one last), each with its papers."""
        order = {domain: position for position, domain in enumerate(DOMAINS)}
        domains = sorted({paper["domain"] for paper in self.papers}, key=lambda domain: (order.get(domain, len(order)), domain))
        return [(domain, [paper for paper in self.papers if paper["domain"] == domain]) for domain in domains]

    @property
    def period(self) -> str:
        """What the digest covers, in words: 'since 2026-11-27 00:00 UTC', 'since the last digest', 'so far'."""
        if self.since is None:
            return "so far"
        moment = f"{self.since:%Y-%m-%d %H:%M} UTC"
        return f"since the last digest (papers tagged after {moment})" if self.remembered else f"since {moment}"

    @property
    def empty_message(self) -> str:
        return f"no papers added {self.period}"

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since, "remembered": self.remembered, "created_at": self.created_at,
                "covered_until": self.covered_until, "papers": len(self.papers),
                "domains": [{"domain": domain, "papers": papers} for domain, papers in self.by_domain()]}


def render(digest: Digest, digest_format: str, database: Path) -> str:
    """The digest as a document in one of DIGEST_FORMATS; the database names the Atom feed."""
    if digest_format == "md":
        return markdown(digest)
    if digest_format == "json":
        return dumps(digest.as_dict(), ensure_ascii=False, indent=2) + "\n"
    template = _templates().get_template("digest.html" if digest_format == "html" else "digest.atom")
    return template.render(digest=digest, feed_title=f"papertag: papers added to {database.name}", feed_id=feed_id(database),
                           entry_id=entry_id, rfc3339=rfc3339, updated=rfc3339(digest.covered_until or digest.created_at))


@functools.cache
def _templates() -> Environment:
    """Loaded on the first HTML or Atom digest; autoescape, as titles and summaries are untrusted text."""
    from jinja2 import Environment, FileSystemLoader

    return Environment(loader=FileSystemLoader(Path(__file__).parent / "digest_templates"), autoescape=True,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def markdown(digest: Digest) -> str:
    lines = [f"# Papers added {digest.period}", ""]
    if not digest.papers:
        lines += [f"No papers were added {digest.period}.", ""]
    for domain, papers in digest.by_domain():
        lines += [f"## {markdown_text(domain or 'no domain')} ({len(papers)})", ""]
        for paper in papers:
            title = markdown_text(paper["title"])
            lines += [f"### [{title}]({paper['link']})" if paper["link"] else f"### {title}", ""]
            lines += [markdown_text(paper["summary"]), ""]
            lines += ["Benchmarks: " + (", ".join(map(markdown_text, paper["benchmarks"])) or "none named"), ""]
    return "\n".join(lines)


MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>|~&])")  # emphasis, code, links and images, HTML, tables, entities
MARKDOWN_LINE_START = re.compile(r"^(?:(\d+)(?=[.)])|(?=[#>+=-]))")  # a heading, quote, list or underline


def markdown_text(text: str) -> str:
    """Stored text as literal Markdown: a title or summary cannot open a link, an image, raw HTML, emphasis or
    a heading."""
    return MARKDOWN_LINE_START.sub(r"\1\\", MARKDOWN_INLINE.sub(r"\\\1", text), count=1)


def feed_id(database: Path) -> str:
    """One feed per database, the same on every run, so a reader keeps its subscription."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"papertag:digest:{database.resolve()}").urn


def entry_id(paper: dict[str, Any]) -> str:
    """One entry per paper whatever the digest: a reader shows a paper once."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"papertag:paper:{paper['id']}").urn


def rfc3339(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"
