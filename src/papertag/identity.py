"""One paper, one row: which records are the same paper, across sources and runs, and what their merge keeps.

The same paper: the same arXiv id (any version); the same DOI; or the same normalised title with a near-identical
abstract, unless the two carry different arXiv ids or different ids given by the user (a JSONL `id`), which say
they are not. A merge keeps the id already stored, the newest arXiv version's text, and the richest metadata.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Iterable

from rapidfuzz import fuzz

from .records import METADATA_FIELDS, Paper
from .text import squash_whitespace

NEAR_IDENTICAL = 90.0  # rapidfuzz ratio (0-100) of two abstracts, after folding case and spacing
_NON_WORD = re.compile(r"[\W_]+")
# The same normalisation in DuckDB, so stored papers are matched by title in SQL (store.py): accents and
# case folded, everything but letters and digits removed.
TITLE_KEY_SQL = r"regexp_replace(lower(strip_accents({column})), '[^\pL\pN]+', '', 'g')"


def title_key(title: str) -> str:
    without_accents = "".join(char for char in unicodedata.normalize("NFKD", title) if not unicodedata.combining(char))
    return _NON_WORD.sub("", without_accents.lower())


def near_identical(first: str, second: str) -> bool:
    return fuzz.ratio(squash_whitespace(first).casefold(), squash_whitespace(second).casefold()) >= NEAR_IDENTICAL


def given_id(paper: Paper) -> str | None:
    """The id the user gave, if any: not the arXiv id, the DOI or the text hash papertag made it from."""
    return None if paper.id in (paper.content_hash[:16], paper.arxiv_id, paper.doi) else paper.id


def same_paper(first: Paper, second: Paper) -> bool:
    if first.id == second.id:
        return True
    if first.arxiv_id and first.arxiv_id == second.arxiv_id:
        return True
    if first.doi and first.doi == second.doi:
        return True
    if first.arxiv_id and second.arxiv_id:
        return False  # two arXiv ids: two papers, however alike
    ids = given_id(first), given_id(second)
    if all(ids) and ids[0] != ids[1]:
        return False  # the user said these are different papers (the same text under two ids stays two)
    return title_key(first.title) == title_key(second.title) and near_identical(first.abstract, second.abstract)


def newer_text(incoming: Paper, stored: Paper, *, replace_unversioned: bool = True) -> bool:
    """Whether the incoming paper's title and abstract replace the stored ones: a newer arXiv version does, an
    older or equal one does not, and a source without versions never replaces an arXiv version's text. Between
    sources without versions the newest input wins (as for a re-saved file) when replace_unversioned."""
    if stored.arxiv_version is not None:
        return incoming.arxiv_version is not None and incoming.arxiv_version > stored.arxiv_version
    return incoming.arxiv_version is not None or replace_unversioned


def merge(stored: Paper, incoming: Paper, *, replace_unversioned: bool = True) -> Paper:
    """One paper from two records of it: the stored id, the newer text (newer_text), and for each metadata field
    the richer value."""
    text_from = incoming if newer_text(incoming, stored, replace_unversioned=replace_unversioned) else stored
    other = stored if text_from is incoming else incoming
    metadata = {name: _richer(name, getattr(text_from, name), getattr(other, name)) for name in METADATA_FIELDS}
    return replace(text_from, id=stored.id, **metadata)


def _richer(name: str, preferred, other):
    """The text's own record wins a tie; dates take the earliest publication and the latest update."""
    if name == "categories":  # the primary category first, from the record that has the most of them
        first, second = (preferred, other) if len(preferred) >= len(other) else (other, preferred)
        return tuple(dict.fromkeys((*first, *second)))
    if name == "authors":
        return preferred if len(preferred) >= len(other) else other
    if name in ("published", "updated") and preferred and other:
        return min(preferred, other) if name == "published" else max(preferred, other)
    if name == "arxiv_version" and preferred and other:
        return max(preferred, other)
    if name == "venue" and preferred and other:
        return preferred if len(preferred) >= len(other) else other
    return preferred if preferred not in (None, "", ()) else other


class PaperIndex:
    """Papers found by what identifies them: arXiv id, DOI, normalised title."""

    def __init__(self, papers: Iterable[Paper] = ()):
        self.papers: list[Paper | None] = []  # None: merged into another slot
        self._slots: dict[str, list[int]] = {}
        for paper in papers:
            self.add(paper)

    @staticmethod
    def _keys(paper: Paper) -> list[str]:
        keys = [f"id:{paper.id}"] + ([f"arxiv:{paper.arxiv_id}"] if paper.arxiv_id else [])
        keys += [f"doi:{paper.doi}"] if paper.doi else []
        return keys + [f"title:{title_key(paper.title)}"]

    def find_all(self, paper: Paper) -> list[int]:
        """The slots of every paper that is the same paper, oldest first."""
        found = {slot for key in self._keys(paper) for slot in self._slots.get(key, [])
                 if self.papers[slot] is not None and same_paper(self.papers[slot], paper)}
        return sorted(found)

    def add(self, paper: Paper) -> int:
        self.papers.append(paper)
        slot = len(self.papers) - 1
        self._index(paper, slot)
        return slot

    def replace(self, slot: int, paper: Paper) -> None:
        """A merged paper in place of the slot's paper; the keys it gained find it too."""
        self.papers[slot] = paper
        self._index(paper, slot)

    def drop(self, slot: int) -> None:
        """The slot's paper was merged into another one."""
        self.papers[slot] = None

    def _index(self, paper: Paper, slot: int) -> None:
        for key in self._keys(paper):
            slots = self._slots.setdefault(key, [])
            if slot not in slots:
                slots.append(slot)


@dataclass
class Resolved:
    papers: list[Paper]  # to write, in input order, stored ones under their stored id
    # Stored rows found to be one paper with another stored row (a record with both's arXiv id and DOI), in the
    # order to merge them: their extractions move to the row that stays.
    absorbed: dict[str, str] = field(default_factory=dict)  # id that goes -> id that stays


def resolve(papers: Iterable[Paper], stored: Iterable[Paper] = ()) -> Resolved:
    """The input papers with records of one paper merged into one, and each one already stored merged into its
    stored row (keeping the stored id, the oldest one's when a record ties several together). Within one run the
    first record's text wins, unless a later one is a newer arXiv version."""
    index = PaperIndex(stored)
    known = len(index.papers)
    touched: dict[int, None] = {}  # slots given an input paper, in input order
    absorbed: dict[str, str] = {}
    for paper in papers:
        slots = index.find_all(paper)
        if not slots:
            touched[index.add(paper)] = None
            continue
        slot, *others = slots
        for other in others:
            if other < known:
                absorbed[index.papers[other].id] = index.papers[slot].id
            index.replace(slot, merge(index.papers[slot], index.papers[other], replace_unversioned=False))
            index.drop(other)
            touched.pop(other, None)
        stored_before = slot < known and slot not in touched
        index.replace(slot, merge(index.papers[slot], paper, replace_unversioned=stored_before))
        touched[slot] = None
    return Resolved([index.papers[slot] for slot in touched], absorbed)
