"""The FastAPI application: routers, and every error as ``{"detail", "error"}``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tilework.api.routes import account, agents, media, runs, uploads
from tilework.errors import ApiError
from tilework.service import Tilework

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "validation_error",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "not_found",
    409: "conflict",
    413: "payload_too_large",
    422: "parameter_out_of_range",
    429: "rate_limited",
}


def create_app(tw: Tilework, *, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            tw.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                tw.stop()

    app = FastAPI(title="tilework", version="0.1.0", lifespan=lifespan)
    app.state.tilework = tw
    for module in (account, agents, runs, uploads, media):
        app.include_router(module.router)
    _install_error_handlers(app)
    return app


def error_body(status: int, detail: str, code: str | None = None) -> JSONResponse:
    code = code or HTTP_CODES.get(status, "internal_server_error")
    return JSONResponse({"detail": detail, "error": code}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_body(exc.status_code, exc.detail, exc.code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(error) for error in exc.errors()]
        return error_body(400, "; ".join(problems) or "The request is not valid.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 405:
            return error_body(405, f"{request.method} is not allowed on {request.url.path}.", "not_found")
        return error_body(exc.status_code, detail)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_body(500, "The server hit an internal error; it has been logged.")


def _problem(error: dict[str, object]) -> str:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body",)]  # type: ignore[union-attr]
    where = ".".join(location) or "body"
    message = str(error.get("msg", "is not valid"))
    if error.get("type") == "json_invalid":
        return "the body is not valid JSON"
    if error.get("type") == "missing":
        return f"{where} is required"
    return f"{where}: {message}"
