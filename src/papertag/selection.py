"""Which papers a run wants (--category, --since, --until), decided while the input is read: a 4 GB arXiv
snapshot is cut down to the wanted papers before anything is stored or sent to a model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Iterable

from .errors import InputError

if TYPE_CHECKING:
    from .records import Paper


def parse_day(value: str | date | None, option: str) -> date | None:
    """A YYYY-MM-DD option value; anything else is one line naming the option."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"{option} {value!r} is not a date (use YYYY-MM-DD)") from None


def category_matches(wanted: str, category: str) -> bool:
    """cs.CL matches cs.CL; an archive alone (cs, q-bio) matches every category in it."""
    wanted, category = wanted.casefold(), category.casefold()
    return category == wanted or category.startswith(wanted + ".")


@dataclass(frozen=True)
class Selection:
    categories: tuple[str, ...] = ()  # any of them, against any of the paper's categories
    since: date | None = None  # against the first version's (publication) date, inclusive
    until: date | None = None

    @classmethod
    def of(cls, categories: Iterable[str] | None = None, since: str | date | None = None,
           until: str | date | None = None) -> "Selection":
        wanted = tuple(category.strip() for category in categories or () if category.strip())
        selection = cls(wanted, parse_day(since, "--since"), parse_day(until, "--until"))
        if selection.since and selection.until and selection.since > selection.until:
            raise InputError(f"--since {selection.since} is after --until {selection.until}")
        return selection

    @property
    def everything(self) -> bool:
        return not self.categories and self.since is None and self.until is None

    def wants(self, paper: Paper) -> bool:
        return self.wants_categories(paper.categories) and self.wants_date(paper.published)

    def wants_categories(self, categories: Iterable[str]) -> bool:
        if not self.categories:
            return True
        return any(category_matches(wanted, category) for wanted in self.categories for category in categories)

    def wants_date(self, published: date | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if published is None:
            return False  # an undated paper cannot be shown to be in the range
        return (self.since is None or published >= self.since) and (self.until is None or published <= self.until)

    def may_want_line(self, line: str) -> bool:
        """A cheap look at a raw snapshot line before parsing it: False only when no wanted category can be in it."""
        if not self.categories:
            return True
        folded = line.casefold()
        return any(wanted.casefold() in folded for wanted in self.categories)
