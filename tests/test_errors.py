"""Errors have names: each kind maps to one HTTP status, and every one is still a PapertagError."""

import pytest

from papertag import errors
from papertag.errors import (BackendError, ConfigurationError, DatabaseBusy, DatabaseError, InputError, NotFound,
                             PapertagError, SourceUnavailable, http_status)
from papertag.queries import Reader
from papertag.sources import make_paper
from papertag.store import DatabaseBusy as StoreDatabaseBusy
from papertag.store import Store


@pytest.mark.parametrize("error, status", [
    (InputError("bad"), 400), (NotFound("no paper"), 404), (DatabaseBusy("busy"), 503), (DatabaseError("broken"), 500),
    (ConfigurationError("no key"), 500), (BackendError("502 from server"), 502), (SourceUnavailable("arXiv API down"), 502),
    (PapertagError("other"), 500),
])
def test_http_status_per_kind(error, status):
    assert isinstance(error, PapertagError) and http_status(error) == status


def test_every_kind_is_listed_once():
    kinds = [kind for kind, _ in errors.HTTP_STATUS]
    assert len(kinds) == len(set(kinds)) and StoreDatabaseBusy is DatabaseBusy and issubclass(DatabaseBusy, DatabaseError)


def test_unknown_id_is_not_found_and_missing_database_a_database_error(db_path):
    with pytest.raises(DatabaseError, match="no database"):
        Reader(db_path)
    with Store(db_path) as store:
        store.add_papers([make_paper("A title", "An abstract.", "t", "p1")])
    with Reader(db_path) as reader, pytest.raises(NotFound, match="no paper with id 'zz'"):
        reader.show("zz")
