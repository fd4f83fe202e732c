"""Errors as RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from boucle.storage.influx import StoreError
from cloud.models import Problem

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger("boucle.api")
STORE_FAILURES = (StoreError, sqlite3.OperationalError)
"""What a store raises when it does not answer (InfluxDB unreachable, SQLite locked or gone)."""


class ApiProblem(Exception):
    """An expected failure, answered as a problem document with this status."""

    def __init__(self, status: int, title: str, detail: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(title)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def problem_response(status: int, title: str, detail: str | None, instance: str,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, instance=instance)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type=PROBLEM_TYPE, headers=headers)


def invalid_parameter(name: str, detail: str) -> ApiProblem:
    """A 422 naming the query or path parameter at fault."""
    return ApiProblem(422, f"Invalid parameter '{name}'", detail)


def store_unavailable(where: str, exc: Exception) -> ApiProblem:
    """A 503 for a store that does not answer; what it raised goes to the log only."""
    log.warning("%s: the store does not answer: %s", where, exc)
    return ApiProblem(503, "Store unavailable", "the store does not answer; retry later (the error is in "
                      "the server log)", {"Retry-After": "5"})


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error, including validation errors, 404s, 405s and crashes, as a problem."""

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request.url.path, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        name = loc[-1] if loc else "request"
        where = f" in {loc[0]}" if loc and loc[0] in ("query", "path", "header") else ""
        return problem_response(422, f"Invalid parameter '{name}'", f"{name}{where}: {err.get('msg')}",
                                request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}.get(
            exc.status_code, str(exc.detail))
        detail = None if str(exc.detail).lower() == title.lower() else str(exc.detail)
        return problem_response(exc.status_code, title, detail, request.url.path,
                                getattr(exc, "headers", None))

    async def _store_down(request: Request, exc: Exception) -> JSONResponse:
        problem = store_unavailable(request.url.path, exc)
        return problem_response(problem.status, problem.title, problem.detail, request.url.path, problem.headers)

    for failure in STORE_FAILURES:
        app.add_exception_handler(failure, _store_down)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, "Internal error", "the server failed; the error is in its log",
                                request.url.path)
