"""The interactive docs page at /docs, with Swagger UI's files served from an installed package.

Nothing is loaded from a CDN, so the page works on a closed network, and the Content-Security-Policy
keeps it that way: the page may talk to this origin only, which is also where the key typed into
"Authorize" is sent.
"""

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self' 'unsafe-inline'",  # the inline SwaggerUIBundle({...}) call
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
))

SWAGGER_UI_PARAMETERS = {
    "persistAuthorization": True,  # the key survives a reload, in this origin's localStorage only
    "validatorUrl": None,  # otherwise the page asks validator.swagger.io, sending it the document's URL
    "displayRequestDuration": True,
}


def install_docs(app: FastAPI) -> None:
    """Serve /docs and its assets; the page reads the OpenAPI document from `app.openapi_url`."""
    # swagger-ui-py ships Swagger UI 5, the first to read OpenAPI 3.1 (FastAPI's version).
    assets = files("swagger_ui") / "static"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title}: docs",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        page.headers["X-Content-Type-Options"] = "nosniff"
        page.headers["Referrer-Policy"] = "no-referrer"
        return page
