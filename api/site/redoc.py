"""ReDoc at ``/redoc`` with nothing fetched from the internet.

``fastapi-offline`` serves ReDoc's script from the app, but the script itself shows a
decorative "powered by Redocly" logo loaded from ``https://cdn.redoc.ly`` on every visit: on a
machine without internet that request hangs or fails, and elsewhere it tells a third party
who reads the docs. The app serves the same script with every such image URL replaced by an
inline transparent pixel (the link around it stays), at :data:`REDOC_JS_PATH`, and its own
``/redoc`` page loads that one."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html
from starlette.responses import HTMLResponse

STATIC_URL = "/static-offline-docs"
"""Where ``fastapi-offline`` mounts its assets (its default)."""
REDOC_JS_PATH = "/docs-assets/redoc.standalone.js"
_STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
_EXTERNAL_IMAGE = re.compile(r'src:"https?://[^"]*"')
TRANSPARENT_PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


@cache
def redoc_script() -> bytes:
    """``fastapi-offline``'s ReDoc script with its external images inline."""
    text = (_STATIC_DIR / "redoc.standalone.js").read_text("utf-8")
    return _EXTERNAL_IMAGE.sub(f'src:"{TRANSPARENT_PIXEL}"', text).encode("utf-8")


def install_redoc(app: FastAPI, redoc_url: str = "/redoc") -> None:
    """Add ``redoc_url`` and the script it loads (create the app with ``redoc_url=None``)."""
    openapi_url = app.openapi_url

    @app.get(REDOC_JS_PATH, include_in_schema=False)
    def redoc_js() -> Response:
        return Response(
            redoc_script(),
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get(redoc_url, include_in_schema=False)
    def redoc_html(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=app.title + " - ReDoc",
            redoc_js_url=f"{root}{REDOC_JS_PATH}",
            with_google_fonts=False,
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        )
