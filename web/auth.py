"""Who is asking: the signed-in user of a browser session or the holder of an API token, and CSRF checks.

Passwords are checked by the engine (``engine.check_password``); this module only keeps the
result. A browser session is a signed cookie (Starlette's SessionMiddleware) holding the user id,
a CSRF token and the chosen language. Every state-changing form carries that CSRF token in a
hidden ``csrf`` field; API calls authenticated by the session cookie send it in an
``X-CSRF-Token`` header. API clients may instead send ``Authorization: Bearer <token>`` with a
token from ``POST /api/token``: a signed, timestamped user id valid for :data:`TOKEN_HOURS`.
"""

import hmac
import secrets

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer

TOKEN_HOURS = 12
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/token, or none with a session cookie.")


class SignInRequired(Exception):
    """A page was asked for without a signed-in user; the app answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str):
        self.next_path = next_path


class TokenSigner:
    """Issues and reads API tokens with the app's secret."""

    def __init__(self, secret: str):
        self._serializer = URLSafeTimedSerializer(secret, salt="qproc-api-token")

    def issue(self, user_id: str) -> str:
        """A token naming the user, valid for TOKEN_HOURS."""
        return self._serializer.dumps({"user": user_id})

    def user_of(self, token: str) -> str | None:
        """The user a valid, unexpired token names; None for anything else."""
        try:
            return self._serializer.loads(token, max_age=TOKEN_HOURS * 3600)["user"]
        except (BadSignature, KeyError, TypeError):
            return None


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def _same(given: object, expected: str | None) -> bool:
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(given, expected)


def sign_in(request: Request, user_id: str) -> None:
    """Start a fresh session for the user (new CSRF token; the language choice is kept)."""
    lang = request.session.get("lang")
    request.session.clear()
    request.session.update({"user": user_id, "csrf": secrets.token_urlsafe(32)})
    if lang:
        request.session["lang"] = lang


def sign_out(request: Request) -> None:
    """End the session."""
    request.session.clear()


def page_user(request: Request) -> str:
    """The signed-in user of a page request; raises SignInRequired when nobody is signed in."""
    user = request.session.get("user")
    if not user:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return user


async def checked_form(request: Request):
    """The posted form, after checking its CSRF token against the session's (403 when it differs)."""
    form = await request.form()
    if not _same(form.get("csrf"), request.session.get("csrf")):
        raise HTTPException(403, "the form's CSRF token is missing or out of date: reload the page and try again")
    return form


def api_user(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """The user of an API call: a bearer token's, else the session's (with the CSRF header on writes); else 401."""
    if credentials is not None:
        user = request.app.state.tokens.user_of(credentials.credentials)
        if user is None:
            raise HTTPException(401, "the token is invalid or expired", headers={"WWW-Authenticate": "Bearer"})
        return user
    user = request.session.get("user")
    if not user:
        raise HTTPException(401, "sign in, or send Authorization: Bearer <token> from POST /api/token",
                            headers={"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS and not _same(request.headers.get("x-csrf-token"),
                                                        request.session.get("csrf")):
        raise HTTPException(403, "a session-authenticated API write needs the X-CSRF-Token header")
    return user


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (no scheme, no host), else ``default``: no open redirects."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
