"""GET /: the web page from ``web/``, with the CSRF token in a cookie and in the page."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from serve_app.api.csrf import COOKIE_NAME, new_token

router = APIRouter(tags=["web"])

TOKEN_PLACEHOLDER = "__CSRF_TOKEN__"
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def default_web_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "web"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request) -> HTMLResponse:
    """The page; keeps a well-formed existing token so other open tabs stay valid."""
    web_dir: Path = request.app.state.web_dir
    current = request.cookies.get(COOKIE_NAME, "")
    token = current if _TOKEN_SHAPE.match(current) else new_token()
    html = (web_dir / "index.html").read_text(encoding="utf-8").replace(TOKEN_PLACEHOLDER, token)
    response = HTMLResponse(html, headers=PAGE_HEADERS)
    response.set_cookie(
        COOKIE_NAME, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
    return response
