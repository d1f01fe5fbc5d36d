"""Browser hardening headers on every dashboard response, and the quality report's files (pure ASGI).

- :class:`SecurityHeadersMiddleware` adds ``Content-Security-Policy`` (scripts, styles, fetches from this
  origin only; no inline script or style attribute: the pages load /static files and set styles through
  the CSSOM), ``X-Frame-Options: DENY`` with ``frame-ancestors 'none'``, ``Referrer-Policy: no-referrer``
  and ``X-Content-Type-Options: nosniff``. The quality report (``/quality/report/``, written by the quality
  job and GX Data Docs, which carry inline styles and scripts) gets :data:`REPORT_CSP`: inline allowed, but
  sandboxed to an opaque origin, so a script in it can neither read the dashboard's cookie-authenticated
  API nor the page that opened it.
- :class:`ReportFiles` serves the report folder; before the first quality run it answers a 404 page that
  says so (the folder does not exist yet), never a 500 with a traceback.

Decision: docs/decisions/0039-dashboard-browser-hardening.md.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PAGE_CSP", "REPORT_CSP", "SECURITY_HEADERS", "ReportFiles", "SecurityHeadersMiddleware"]

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The pages, the API and the static files: everything from this origin, nothing inline."""

REPORT_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'none'; object-src 'none'; base-uri 'self'; "
    "form-action 'none'; frame-ancestors 'none'; sandbox allow-scripts allow-popups"
)
"""The generated quality report: inline styles/scripts (GX Data Docs) in an opaque-origin sandbox."""

REPORT_PREFIX = "/quality/report"

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
"""Sent with every response, next to the Content-Security-Policy."""


def _csp_for(path: str) -> str:
    return REPORT_CSP if path == REPORT_PREFIX or path.startswith(REPORT_PREFIX + "/") else PAGE_CSP


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` and the path's CSP to every HTTP response (existing ones win)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = {**SECURITY_HEADERS, "content-security-policy": _csp_for(scope.get("path", ""))}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


NO_REPORT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>No quality report yet · xpstream</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><main><h1>No quality report yet</h1>
<p>No data-quality run has written a report yet. Run <code>xp jobs run quality</code>
(<code>xp up</code> runs it on <code>XP_SCHEDULE_QUALITY</code>; every 15 min by default), then reload.</p>
<p><a href="/quality">Back to Data quality</a></p></main></body></html>
"""


class ReportFiles(StaticFiles):
    """The quality report folder; a clear 404 page while it does not exist (no report has run yet)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, html=True, check_dir=False)
        self.report_dir = Path(directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.report_dir.is_dir():
            await HTMLResponse(NO_REPORT_PAGE, status_code=404)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
