"""What the reliability tests checked, for docs/reliability.md.

The tests call `record(kind, behaviour, cases=..., lost=...)` with counts they computed from the database.
Nothing is written unless docs/make_reliability.py runs the tests with PAPERTAG_RELIABILITY_LOG set, so a
plain `pytest` run (and CI) does exactly the same checks without side effects.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from papertag.queries import Reader

LOG_ENV = "PAPERTAG_RELIABILITY_LOG"


def record(kind: str, behaviour: str, *, cases: int, lost: int | None) -> None:
    """One checked row: `cases` papers (or files, or statements) met this fault or input kind; `lost` of them
    vanished, as counted by the test (None where no paper is at stake)."""
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    row = {"kind": kind, "behaviour": behaviour, "cases": cases, "lost": lost,
           "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(row) + "\n")


def stored_statuses(db_path: Path) -> dict[str, list[str]]:
    """Every stored paper id with the status of each of its extraction rows (one row per paper when nothing
    is duplicated; none when its outcome was lost)."""
    with Reader(db_path) as reader:
        rows = reader.con.execute(
            "SELECT p.id, e.status FROM papers p LEFT JOIN extractions e ON e.paper_id = p.id ORDER BY e.id"
        ).fetchall()
    statuses: dict[str, list[str]] = defaultdict(list)
    for paper_id, status in rows:
        statuses[paper_id] += [status] if status else []
    return dict(statuses)


def lost_papers(db_path: Path, paper_ids: Iterable[str]) -> list[str]:
    """Input papers with no stored outcome: neither an extraction nor a recorded failure."""
    statuses = stored_statuses(db_path)
    return [paper_id for paper_id in paper_ids if not statuses.get(paper_id)]
