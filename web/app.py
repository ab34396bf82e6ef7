"""The web application: department inboxes, task forms and case pages for people, a JSON API for programs.

:func:`create_app` builds it over one database. Pages (``web.pages``) and the API (``web.api``)
are thin: they read the request, call the engine, and render what it returns; every rule (who
sees which task, who may act, what a form accepts) is the engine's, the same the CLI applies.
Engine errors become HTTP statuses here, in one table.
"""

import os
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

import engine
from engine import Database, EngineError
from engine.errors import ConcurrentUpdate, DefinitionError, ExpressionError, Forbidden, FormError, InvalidTransition, NotFound

from . import api, pages
from .auth import TOKEN_HOURS, SignInRequired, TokenSigner, csrf_token
from .i18n import words

HERE = Path(__file__).resolve().parent
STATUS_OF = ((NotFound, 404), (Forbidden, 403), (InvalidTransition, 409), (ConcurrentUpdate, 409),
             (FormError, 422), (DefinitionError, 422), (ExpressionError, 422))
_TITLE_OF = {401: "forbidden", 403: "forbidden", 404: "not_found", 409: "conflict"}
_CSP = ("default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def status_of(err: EngineError) -> int:
    """The HTTP status for an engine error: 404 unknown, 403 not allowed, 409 wrong state, 422 bad input, else 400."""
    return next((status for kind, status in STATUS_OF if isinstance(err, kind)), 400)


def wall_clock() -> datetime:
    """The current time in UTC."""
    return datetime.now(timezone.utc)


def when(moment: datetime | None) -> str:
    """A time as the server's local date and minute, e.g. ``2026-11-02 17:00``."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else ""


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api")


def error_page(request: Request, status: int, message: str) -> object:
    """An HTML page explaining a refusal, with the page header of whoever is signed in."""
    lang = request.session.get("lang", "en")
    return request.app.state.templates.TemplateResponse(request, "error.html", {
        "t": words(lang), "lang": lang, "user": request.session.get("user"), "csrf": csrf_token(request),
        "title_key": _TITLE_OF.get(status, "error"), "message": message, "status": status}, status_code=status)


def create_app(db: Database | str | None = None, clock: Callable[[], datetime] = wall_clock,
               secret: str | None = None) -> FastAPI:
    """The application over ``db`` (a Database, a URL, or None for QPROC_DB / ``sqlite:///qproc.db``).

    ``clock`` gives the time of each action (tests pass a fixed one). ``secret`` signs session
    cookies and API tokens; default QPROC_SECRET, else a random one, so sessions and tokens end
    when the server restarts. A database whose schema is not the one this qproc needs is refused
    here, at start-up (SchemaVersionError, saying what to run); a new SQLite file is created.
    """
    database = db if isinstance(db, Database) else Database(db)
    database.require_current_schema()
    secret = secret or os.environ.get("QPROC_SECRET") or secrets.token_urlsafe(32)
    app = FastAPI(title="qproc", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Department inboxes, task forms and case history of qproc's quality procedures.")
    app.state.db = database
    app.state.clock = clock
    app.state.tokens = TokenSigner(secret)
    app.state.templates = templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(when=when, summary=engine.audit.summary)
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="qproc_session",
                       max_age=TOKEN_HOURS * 3600, same_site="lax")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not _is_api(request):
            response.headers.setdefault("Content-Security-Policy", _CSP)
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.exception_handler(EngineError)
    async def engine_error(request: Request, err: EngineError):
        status = status_of(err)
        if _is_api(request):
            body = {"detail": str(err)}
            if isinstance(err, FormError):
                body["problems"] = err.problems
            return JSONResponse(body, status_code=status)
        return error_page(request, status, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        if _is_api(request):
            return JSONResponse({"detail": err.detail}, status_code=err.status_code, headers=err.headers)
        return error_page(request, err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError):
        if _is_api(request):
            return JSONResponse({"detail": jsonable_errors(err)}, status_code=422)
        return error_page(request, 422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()))

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, err: SignInRequired):
        return RedirectResponse(f"/login?next={quote(err.next_path, safe='/')}", status_code=303)

    return app


def jsonable_errors(err: RequestValidationError) -> list[dict]:
    """FastAPI's validation errors reduced to location, message and type (inputs may not be JSON-safe)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in err.errors()]
