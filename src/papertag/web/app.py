"""The web pages of `papertag serve`: a paper list with search and facets, one page per paper, the benchmarks and
the eval runs. Every page is rendered on the server (it works with JavaScript off) and has a JSON twin under /api/.

It never writes: each request opens the database read-only through Reader and closes it again, so pages keep
working while an ingest runs (the writer holds the file only for its short commits).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import PapertagError, http_status
from ..jsonvalues import dumps
from ..queries import Reader
from .charts import line_chart

HERE = Path(__file__).parent
PAGE_SIZE = 20
FACET_SIZE = 10
SIMILAR_SIZE = 5
FILTERS = ("domain", "benchmark", "task", "method")  # the query parameters that narrow the list, as in 'query'


def create_app(db: Path, eval_db: Path | None = None) -> Starlette:
    """The ASGI app over the papers database `db` and, for /evals, the eval database `eval_db` (may not exist)."""
    with Reader(db):
        pass  # a missing or foreign database fails here, once, not as an error page on every request
    # Autoescape everything: titles and abstracts are untrusted text.
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    templates.globals["list_url"] = list_url

    def papers(request: Request) -> dict[str, Any]:
        params = request.query_params
        text = params.get("q", "").strip() or None
        filters = {name: params[name] for name in FILTERS if params.get(name, "").strip()}
        page = _page_number(params.get("page"))
        notice = None
        with Reader(db) as reader:
            browse = lambda text: reader.browse(text, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,  # noqa: E731
                                                facet_limit=FACET_SIZE, **filters)
            try:
                found = browse(text)
            except PapertagError as error:
                if text is None:
                    raise
                notice, found = f"{error}; showing the list without the search", browse(None)
        return {"q": text, "filters": filters, "page": page, "pages": max(1, math.ceil(found["total"] / PAGE_SIZE)),
                "page_size": PAGE_SIZE, "notice": notice, **found}

    def paper(request: Request) -> dict[str, Any]:
        paper_id = request.path_params["paper_id"]
        with Reader(db) as reader:
            found = reader.show(paper_id)  # NotFound becomes a 404 page (papertag_error)
            similar, similar_note = [], None
            try:
                similar = reader.similar(found["id"], limit=SIMILAR_SIZE)
            except PapertagError as error:  # no embedding yet: the rest of the page still shows
                similar_note = str(error)
        current = next((e for e in found["extractions"] if e["current"]), None)
        return {"paper": found, "current": current, "similar": similar, "similar_note": similar_note}

    def benchmarks(request: Request) -> dict[str, Any]:
        with Reader(db) as reader:
            return {"benchmarks": reader.tags("benchmark")}

    def evals(request: Request) -> dict[str, Any]:
        # evals.py brings in the LLM stack; only this page needs its metric names.
        from ..evals import HEADLINE_METRICS, metric

        runs, note = [], None
        if eval_db is not None and eval_db.exists():
            try:
                with Reader(eval_db) as reader:
                    runs = reader.eval_runs()
            except PapertagError as error:  # an empty or busy eval database: the papers pages still work
                note = str(error)
        fields = []
        for label, path in HEADLINE_METRICS:
            values = [metric(run["metrics"], path) for run in runs]
            if any(value is not None for value in values):
                fields.append({"metric": label, "values": values})
        return {"runs": runs, "fields": fields, "note": note}

    def html(template: str, build: Callable[[Request], dict[str, Any]], api: str | None = None):
        def endpoint(request: Request) -> Response:
            data = build(request)
            twin = (api or "/api" + request.url.path) + (f"?{request.url.query}" if request.url.query else "")
            return HTMLResponse(templates.get_template(template).render(
                **data, request=request, api_url=twin, line_chart=line_chart))
        return endpoint

    def json(build: Callable[[Request], dict[str, Any]]):
        def endpoint(request: Request) -> Response:
            return json_response(build(request))
        return endpoint

    def error_page(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return json_response({"error": message}, status)
        body = templates.get_template("error.html").render(status=status, message=message, request=request, api_url=None)
        return HTMLResponse(body, status)

    def http_error(request: Request, error: HTTPException) -> Response:
        return error_page(request, error.status_code, str(error.detail))

    def papertag_error(request: Request, error: PapertagError) -> Response:
        # One line, as on the CLI: NotFound 404, a bad filter 400, the database busy 503 (errors.http_status).
        return error_page(request, http_status(error), str(error))

    def server_error(request: Request, error: Exception) -> Response:
        return error_page(request, 500, "something went wrong; the server log has the details")

    routes = [
        Route("/", html("papers.html", papers, api="/api/papers")),
        Route("/api/papers", json(papers)),
        Route("/paper/{paper_id:path}", html("paper.html", paper)),
        Route("/api/paper/{paper_id:path}", json(paper)),
        Route("/benchmarks", html("benchmarks.html", benchmarks)),
        Route("/api/benchmarks", json(benchmarks)),
        Route("/evals", html("evals.html", evals)),
        Route("/api/evals", json(evals)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={
        HTTPException: http_error, PapertagError: papertag_error, Exception: server_error,
    })


def json_response(data: Any, status: int = 200) -> Response:
    # jsonvalues: dates, decimals and NaN as valid JSON, and no raw C1 or bidi characters.
    return Response(dumps(data, ensure_ascii=False), status, media_type="application/json")


def list_url(params: dict[str, Any], **changes: Any) -> str:
    """The paper list's URL with these parameters changed (None removes one); any change but a page number goes
    back to page 1."""
    merged = {key: value for key, value in params.items() if value not in (None, "")}
    if "page" not in changes:
        merged.pop("page", None)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if merged.get("page") == 1:
        merged.pop("page")
    return "/" + ("?" + urlencode(merged) if merged else "")


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 1_000_000))
    except ValueError:
        raise HTTPException(400, f"page must be a number, not {value!r}") from None
