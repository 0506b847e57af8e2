"""Named problems a user can fix. The CLI turns any PapertagError into one line instead of a traceback; a web
server turns it into an HTTP status with http_status()."""


class PapertagError(Exception):
    """A problem the user can fix: bad input, missing model, database in use."""


class InputError(PapertagError):
    """What the caller gave is wrong: an unreadable input file, a bad option or query, an output papertag refuses."""


class NotFound(InputError):
    """An id (a paper, an eval run) that does not exist."""


class DatabaseError(PapertagError):
    """The database cannot be used: missing, not papertag's, written by a newer papertag."""


class DatabaseBusy(DatabaseError):
    """Another process holds the database longer than this command is willing to wait."""


class ConfigurationError(PapertagError):
    """The model spec, an environment variable or the installation is wrong; nothing was sent or written."""


class BackendError(PapertagError):
    """The model server failed or refused us as a whole (not one paper: those are stored as failed)."""


class SourceUnavailable(PapertagError):
    """A remote source of papers (the arXiv API) kept failing after its retries; what was fetched is kept."""


# Most specific first: the first class the error is an instance of decides.
HTTP_STATUS: list[tuple[type[PapertagError], int]] = [
    (NotFound, 404),
    (InputError, 400),
    (DatabaseBusy, 503),  # try again shortly: an ingest is committing
    (DatabaseError, 500),
    (ConfigurationError, 500),
    (BackendError, 502),
    (SourceUnavailable, 502),
]


def http_status(error: PapertagError) -> int:
    """The HTTP status a web server answers with for this error; 500 for any other PapertagError."""
    return next((status for kind, status in HTTP_STATUS if isinstance(error, kind)), 500)
