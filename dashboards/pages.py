"""HTML pages: jinja2 shells that the page scripts fill from the JSON API (no build step)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from assignment.analysis_block import METHOD_LABELS, METHODS

__all__ = ["page_routes", "render"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))

NAV = [
    ("experiments", "/", "Experiments"),
    ("health", "/health", "Realtime health"),
    ("compare", "/compare", "Compare"),
    ("quality", "/quality", "Data quality"),
    ("audit", "/audit", "Activity"),
    ("program", "/program", "Program"),
]


def render(request: Request, template: str, page: str, **values: object) -> Response:
    """A page shell (its script fills it from the API; a signed-in browser sends the sign-in cookie)."""
    context = request.app.state.dashboard
    refresh = context.settings.dashboard_refresh_seconds if context is not None else 5.0
    keys = getattr(request.app.state, "dashboard_keys", None)
    signed_in = keys is not None and not keys.open
    viewer = getattr(request.app.state, "dashboard_viewer", None)
    if context is not None and viewer is not None:
        context.usage.add("dashboard_views", f"{viewer(request)} {page}")
    html = _ENV.get_template(template).render(
        nav=NAV,
        page=page,
        refresh_seconds=refresh,
        signed_in=signed_in,
        methods=[(method, METHOD_LABELS[method]) for method in METHODS],
        **values,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def experiments_page(request: Request) -> Response:
    return render(request, "experiments.html", "experiments", title="Experiments")


def health_page(request: Request) -> Response:
    key = request.query_params.get("experiment", "")
    return render(request, "health.html", "health", title="Realtime health", experiment=key)


def results_page(request: Request) -> Response:
    key = request.path_params["key"]
    return render(request, "results.html", "experiments", title=f"Results · {key}", experiment=key)


def compare_page(request: Request) -> Response:
    return render(request, "compare.html", "compare", title="Compare experiments")


def quality_page(request: Request) -> Response:
    return render(request, "quality.html", "quality", title="Data quality")


def audit_page(request: Request) -> Response:
    return render(request, "audit.html", "audit", title="Activity")


def program_page(request: Request) -> Response:
    return render(request, "program.html", "program", title="Program")


def page_routes() -> list[Route]:
    return [
        Route("/", experiments_page),
        Route("/health", health_page),
        Route("/experiments/{key}", results_page),
        Route("/compare", compare_page),
        Route("/quality", quality_page),
        Route("/audit", audit_page),
        Route("/program", program_page),
    ]
