"""The FastAPI application: routers, and every error as ``{"detail", "error"}``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tilework.api.auth import authenticate, tilework
from tilework.api.routes import account, agents, billing, media, runs, uploads
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
    for module in (account, agents, runs, uploads, media, billing):
        app.include_router(module.router)
    _install_error_handlers(app)
    app.add_middleware(_CrashesAsResponses)
    return app


def error_body(status: int, detail: str, code: str | None = None) -> JSONResponse:
    code = code or HTTP_CODES.get(status, "internal_server_error")
    return JSONResponse({"detail": detail, "error": code}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_body(exc.status_code, exc.detail, exc.code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        # A body that is not JSON is refused before the route's dependencies run; a
        # caller without a valid key must still hear 401 first, as on every call.
        if _needs_key(request):
            try:
                await run_in_threadpool(authenticate, request, tilework(request))
            except ApiError as denied:
                return error_body(denied.status_code, denied.detail, denied.code)
        problems = [_problem(error) for error in exc.errors()]
        return error_body(400, "; ".join(problems) or "The request is not valid.")

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the client sent (PostgreSQL: a NUL character,
        # a number out of range); that is the request's fault, not the server's.
        log.info("database refused a value on %s: %s", request.url.path, exc.orig)
        return error_body(
            400, "The request holds a value the database cannot store (such as a NUL)."
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 405:
            return error_body(
                405,
                f"{request.method} is not allowed on {request.url.path}.",
                "not_found",
            )
        return error_body(exc.status_code, detail)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_body(500, "The server hit an internal error; it has been logged.")


class _CrashesAsResponses:
    """Answer an unhandled error with a 500 body, keeping the connection usable.

    Starlette's own last-resort handler re-raises after it answers, and the server then
    drops the keep-alive connection, so a client's next request fails to be sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:
                raise
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            detail = "The server hit an internal error; it has been logged."
            await error_body(500, detail)(scope, receive, send)


def _needs_key(request: Request) -> bool:
    """Whether the matched route authenticates its caller."""

    def uses(dependant: Dependant) -> bool:
        return any(d.call is authenticate or uses(d) for d in dependant.dependencies)

    dependant = getattr(request.scope.get("route"), "dependant", None)
    return isinstance(dependant, Dependant) and uses(dependant)


def _problem(error: dict[str, object]) -> str:
    loc = error.get("loc", ())
    parts = loc if isinstance(loc, list | tuple) else ()
    location = [str(part) for part in parts if part != "body"]
    where = ".".join(location) or "body"
    message = str(error.get("msg", "is not valid"))
    if error.get("type") == "json_invalid":
        return "the body is not valid JSON"
    if error.get("type") == "missing":
        return f"{where} is required"
    if where == "body" and error.get("type") in ("model_attributes_type", "dict_type"):
        return (
            "the body must be a JSON object, sent with Content-Type: application/json"
        )
    if error.get("type") == "extra_forbidden":
        return f"{where} is not a field of this request"
    return f"{where}: {message}"
