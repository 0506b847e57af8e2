"""arXiv's XML: saved arXiv API (api/query) Atom responses, and OAI-PMH ListRecords responses in the arXiv or
arXivRaw metadata formats. Each entry or record becomes a paper with its arXiv metadata, or a problem naming it."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .errors import InputError
from .records import ParsedFile, add_record, day_of, parse_arxiv_id, person_name

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV_ATOM = "{http://arxiv.org/schemas/atom}"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
OAI_ARXIV = "{http://arxiv.org/OAI/arXiv/}"
OAI_ARXIV_RAW = "{http://arxiv.org/OAI/arXivRaw/}"
ABS_URL = "https://arxiv.org/abs/{}"
API_ERROR = "arXiv API error: "  # how an error entry is named among a response's problems


def parse_xml(text: str, path: str) -> Element:
    """The document's root; entity tricks (billion laughs, external entities) are refused, not expanded."""
    try:
        return fromstring(text)
    except ParseError as error:
        raise InputError(f"{path}: not well-formed XML ({error})") from None
    except DefusedXmlException as error:
        raise InputError(f"{path}: XML with entity declarations is refused ({type(error).__name__})") from None


def _text(element: Element | None, tag: str) -> str | None:
    found = element.find(tag) if element is not None else None
    return found.text if found is not None and found.text and found.text.strip() else None


def _categories(primary: str | None, all_of_them: list[str]) -> tuple[str, ...]:
    """The primary category first, then the cross-lists in the source's order, each once."""
    return tuple(dict.fromkeys(category for category in (primary, *all_of_them) if category))


def parse_atom(text: str, parsed: ParsedFile) -> Element:
    """The feed's entries into parsed; returns the feed, whose opensearch counts a fetch pages by."""
    root = parse_xml(text, parsed.path)
    if root.tag != f"{ATOM}feed":
        raise InputError(f"{parsed.path}: not an Atom feed (the root element is {_local(root.tag)!r}, not 'feed')")
    # A fetch (arxiv_api.py) names its query itself, the same for every page; a saved response has its self link.
    parsed.query = parsed.query or next((link.get("href") for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"), None)
    for number, entry in enumerate(root.iter(f"{ATOM}entry"), start=1):
        where = f"entry {number}"
        entry_id = _text(entry, f"{ATOM}id") or ""
        if "/api/errors" in entry_id:  # the API reports a bad query as an entry
            parsed.problems.append(f"{where}: {API_ERROR}{_text(entry, f'{ATOM}summary') or 'no details'}")
            continue
        arxiv_id, version = parse_arxiv_id(entry_id)
        primary = entry.find(f"{ARXIV_ATOM}primary_category")
        links = {link.get("rel", "alternate"): link.get("href") for link in entry.iter(f"{ATOM}link")
                 if link.get("type", "text/html") == "text/html"}
        add_record(
            parsed, where, _text(entry, f"{ATOM}title"), _text(entry, f"{ATOM}summary"),
            authors=[_text(author, f"{ATOM}name") for author in entry.iter(f"{ATOM}author")],
            categories=_categories(primary.get("term") if primary is not None else None,
                                   [category.get("term") for category in entry.iter(f"{ATOM}category")]),
            published=day_of(_text(entry, f"{ATOM}published")), updated=day_of(_text(entry, f"{ATOM}updated")),
            arxiv_id=arxiv_id, arxiv_version=version, doi=_text(entry, f"{ARXIV_ATOM}doi"),
            url=links.get("alternate") or (ABS_URL.format(arxiv_id) if arxiv_id else None),
            venue=_text(entry, f"{ARXIV_ATOM}journal_ref"),
        )
    return root


def parse_oai(text: str, parsed: ParsedFile) -> None:
    root = parse_xml(text, parsed.path)
    if root.tag != f"{OAI}OAI-PMH":
        raise InputError(f"{parsed.path}: not an OAI-PMH response (the root element is {_local(root.tag)!r})")
    request = root.find(f"{OAI}request")
    if request is not None and request.text:
        parsed.query = request.text.strip() + "?" + "&".join(f"{key}={value}" for key, value in request.attrib.items())
    error = root.find(f"{OAI}error")
    if error is not None:
        raise InputError(f"{parsed.path}: the OAI-PMH response is an error: {error.get('code', '?')} "
                         f"({(error.text or '').strip() or 'no details'})")
    for number, record in enumerate(root.iter(f"{OAI}record"), start=1):
        header = record.find(f"{OAI}header")
        identifier = _text(header, f"{OAI}identifier")
        where = f"record {number}" + (f" ({identifier})" if identifier else "")
        if header is not None and header.get("status") == "deleted":
            parsed.problems.append(f"{where}: deleted from arXiv")
            continue
        container = record.find(f"{OAI}metadata")
        metadata = container[0] if container is not None and len(container) else None
        if metadata is not None and metadata.tag == f"{OAI_ARXIV}arXiv":
            _add_arxiv_record(metadata, where, parsed)
        elif metadata is not None and metadata.tag == f"{OAI_ARXIV_RAW}arXivRaw":
            _add_arxiv_raw_record(metadata, where, parsed)
        else:
            found = _local(metadata.tag) if metadata is not None else "none"
            parsed.problems.append(f"{where}: metadata format {found!r} is not arXiv or arXivRaw")


def _add_arxiv_record(metadata: Element, where: str, parsed: ParsedFile) -> None:
    """metadataPrefix=arXiv: split author names and dates, but no version numbers."""
    arxiv_id, _ = parse_arxiv_id(_text(metadata, f"{OAI_ARXIV}id"))
    authors = [person_name(_text(author, f"{OAI_ARXIV}keyname"), _text(author, f"{OAI_ARXIV}forenames"))
               for author in metadata.iter(f"{OAI_ARXIV}author")]
    add_record(
        parsed, where, _text(metadata, f"{OAI_ARXIV}title"), _text(metadata, f"{OAI_ARXIV}abstract"),
        authors=authors, categories=_categories(None, (_text(metadata, f"{OAI_ARXIV}categories") or "").split()),
        published=day_of(_text(metadata, f"{OAI_ARXIV}created")), updated=day_of(_text(metadata, f"{OAI_ARXIV}updated")),
        arxiv_id=arxiv_id, doi=_text(metadata, f"{OAI_ARXIV}doi"), url=ABS_URL.format(arxiv_id) if arxiv_id else None,
        venue=_text(metadata, f"{OAI_ARXIV}journal-ref"),
    )


def _add_arxiv_raw_record(metadata: Element, where: str, parsed: ParsedFile) -> None:
    """metadataPrefix=arXivRaw: every version with its date, authors as one string."""
    arxiv_id, _ = parse_arxiv_id(_text(metadata, f"{OAI_ARXIV_RAW}id"))
    versions = [(version.get("version") or "", _text(version, f"{OAI_ARXIV_RAW}date"))
                for version in metadata.iter(f"{OAI_ARXIV_RAW}version")]
    add_record(
        parsed, where, _text(metadata, f"{OAI_ARXIV_RAW}title"), _text(metadata, f"{OAI_ARXIV_RAW}abstract"),
        authors=split_authors(_text(metadata, f"{OAI_ARXIV_RAW}authors")),
        categories=_categories(None, (_text(metadata, f"{OAI_ARXIV_RAW}categories") or "").split()),
        **version_metadata(versions), arxiv_id=arxiv_id, doi=_text(metadata, f"{OAI_ARXIV_RAW}doi"),
        url=ABS_URL.format(arxiv_id) if arxiv_id else None, venue=_text(metadata, f"{OAI_ARXIV_RAW}journal-ref"),
    )


def version_metadata(versions: list[tuple[str, str | None]]) -> dict:
    """From arXiv's list of (version like "v2", date): the newest version number, the first version's date as the
    publication date and the newest one's as the update."""
    numbers = [int(name[1:]) for name, _ in versions if name[:1] in "vV" and name[1:].isdigit()]
    return {"arxiv_version": max(numbers) if numbers else None,
            "published": day_of(versions[0][1]) if versions else None,
            "updated": day_of(versions[-1][1]) if versions else None}


def split_authors(authors: str | None) -> list[str]:
    """arXiv's one-string author list: "A. Author, B. Author and C. Author"."""
    text = " ".join((authors or "").split())
    return [name.strip() for part in text.split(", ") for name in part.split(" and ") if name.strip()]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
