"""The dashboard page at `/` and its assets, all served from this folder (no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from cloud.problems import ApiProblem

FOLDER = Path(__file__).resolve().parent
LANGUAGES = ("fr", "en")
ASSETS = {"app.js": "text/javascript", "charts.js": "text/javascript", "i18n.js": "text/javascript",
          "operations.js": "text/javascript", "compare.js": "text/javascript", "drilldown.js": "text/javascript",
          "style.css": "text/css", "favicon.svg": "image/svg+xml"}
# the page talks only to its own origin; inline scripts and remote assets are refused
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def preferred_language(accept_language: str) -> str:
    """fr or en, whichever the Accept-Language header ranks first (en when neither)."""
    ranked = []
    for i, part in enumerate(accept_language.split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        base = tag.strip().lower()[:2]
        if base in LANGUAGES and weight > 0:
            ranked.append((-weight, i, base))
    return min(ranked)[2] if ranked else "en"


@router.get("/", response_class=HTMLResponse)
def page(request: Request) -> HTMLResponse:
    lang = preferred_language(request.headers.get("accept-language", ""))
    html = (FOLDER / "index.html").read_text("utf-8")
    html = html.replace('<html lang="en">', f'<html lang="{lang}" data-lang="{lang}">', 1)
    return HTMLResponse(html, headers={**HEADERS, "Vary": "Accept-Language"})


@router.get("/dashboard/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiProblem(404, "Not found", f"no dashboard asset {name!r}")
    return FileResponse(FOLDER / name, media_type=ASSETS[name], headers=HEADERS)
