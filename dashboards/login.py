"""Signing in from a browser without a token in any URL: a form, then an HttpOnly SameSite=Strict cookie.

``GET /login`` shows a form; ``POST /login`` (``application/x-www-form-urlencoded``: ``token``, ``next``)
checks the token against the same key ring as the headers (:mod:`dashboards.auth`) and, when it grants
access, answers 303 to ``next`` (a path on this site only) with the cookie :data:`COOKIE` set:
``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends it), ``Path=/``,
``Secure`` behind HTTPS. ``POST /logout`` clears it. API clients keep sending ``Authorization: Bearer`` or
``X-XP-Key``. The token is never put into a URL, a log line or the page.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from assignment.service.auth import AccessLevel, KeyRing
from dashboards.pages import TEMPLATES

__all__ = ["COOKIE", "cookie_token", "login_page", "login_routes", "safe_next"]

COOKIE = "xp_dashboard_token"
MAX_FORM_BYTES = 8192
_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site (``/…`` but not ``//…`` or ``/\\…``), else ``/``."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(c < " " for c in value):
        return "/"
    return value


def cookie_token(request: Request) -> str | None:
    """The token the sign-in cookie carries (base64url, so any token character survives), or None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        return base64.urlsafe_b64decode(raw.encode("ascii")).decode("utf-8") or None
    except (binascii.Error, UnicodeError, ValueError):
        return None


def login_page(next_path: str, *, error: str = "", status_code: int = 200) -> Response:
    """The sign-in form (no script), posting to /login."""
    html = _ENV.get_template("login.html").render(title="Sign in", next=safe_next(next_path), error=error)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _keys(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.dashboard_keys
    return keys


async def _login_form(request: Request) -> Response:
    if _keys(request).open:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return login_page(request.query_params.get("next") or "/")


async def _login(request: Request) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return login_page("/", error="The form is too large.", status_code=413)
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
    token = (fields.get("token") or [""])[0].strip()
    next_path = safe_next((fields.get("next") or ["/"])[0])
    if _keys(request).level(token) is AccessLevel.NONE:
        return login_page(next_path, error="That token is not valid.", status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        base64.urlsafe_b64encode(token.encode()).decode("ascii"),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def _logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


def login_routes() -> list[Route]:
    return [
        Route("/login", _login_form, methods=["GET"]),
        Route("/login", _login, methods=["POST"]),
        Route("/logout", _logout, methods=["POST"]),
    ]
