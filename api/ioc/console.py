"""The ``/ioc`` operator console: one server-rendered page plus vanilla JS (no framework,
no build step), and its static files (the console script, styles, vendored Leaflet).

The page embeds only public configuration (site list comes from ``/api/v1/sites``; the tile
URL and whether camera tours exist); everything sensitive is fetched with the operator's
token after login.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from api.errors import ApiError
from api.ioc.auth import IocDep

router = APIRouter(tags=["ioc console"], include_in_schema=False)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
#: The only files served: a fixed list, so no path can escape the directory.
STATIC_FILES = {
    "ioc.js": "text/javascript",
    "ioc.css": "text/css",
    "vendor/leaflet/leaflet.js": "text/javascript",
    "vendor/leaflet/leaflet.css": "text/css",
}
CAMERA_TOUR_ROUTE = "/tours/{camera}"
#: No external origins anywhere except the configured tile server.
CSP = (
    "default-src 'self'; img-src 'self' data: {tiles}; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'self'"
)


def _tile_origin(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        return ""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].replace('{s}', '*')}"


@router.get("/ioc", response_class=HTMLResponse)
async def console(request: Request, ioc: IocDep) -> HTMLResponse:
    app = request.app
    tours = any(getattr(r, "path", None) == CAMERA_TOUR_ROUTE for r in app.routes)
    cameras = (
        [{"id": c.id, "site": c.site, "name": c.name} for c in app.state.device_configs.cameras]
        if tours
        else []
    )
    config = {
        "tileUrl": ioc.settings.tile_url,
        "tileAttribution": ioc.settings.tile_attribution,
        "cameras": cameras,
        "odMinCount": ioc.settings.od_min_count,
    }
    page = (HERE / "templates" / "ioc.html").read_text()
    # JSON in a <script type="application/json"> block: escape "<" so it cannot close it.
    blob = json.dumps(config).replace("<", "\\u003c")
    headers = {"Content-Security-Policy": CSP.format(tiles=_tile_origin(ioc.settings.tile_url))}
    return HTMLResponse(page.replace("{{CONFIG}}", blob), headers=headers)


@router.get("/ioc/static/{path:path}")
async def static(path: str) -> FileResponse:
    media_type = STATIC_FILES.get(path)
    if media_type is None:
        raise ApiError(404, "not_found", f"no static file {path!r}")
    return FileResponse(STATIC / path, media_type=media_type, headers={"Cache-Control": "no-cache"})
