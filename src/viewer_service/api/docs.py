"""/docs (Swagger UI) and /redoc, from assets shipped in the package (api/static/): they work
on an offline or firewalled installation, where a CDN is out of reach."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
PREFIX = "/static/docs"
# Only this server: ReDoc's footer links a logo on Redocly's CDN; the browser does not even ask
# for it (the image hides itself when it fails to load).
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")


def _local_only(response):
    response.headers["content-security-policy"] = CSP
    return response


def install(app: FastAPI) -> None:
    """Call with an app made with docs_url=None and redoc_url=None."""
    app.mount(PREFIX, StaticFiles(directory=STATIC), name="docs-static")
    favicon = f"{PREFIX}/swagger-ui/favicon-32x32.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui():
        return _local_only(get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{PREFIX}/swagger-ui/swagger-ui-bundle.js", swagger_css_url=f"{PREFIX}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=favicon, oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_ui_parameters={"validatorUrl": None}))  # no badge from swagger.io

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect():
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return _local_only(get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - ReDoc",
                                          redoc_js_url=f"{PREFIX}/redoc/redoc.standalone.js",
                                          redoc_favicon_url=favicon, with_google_fonts=False))
