"""The application factory: lifespan, middleware, error handlers, and one router mounted twice."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__
from .auth.caller import KeyVerifier
from .config import Settings, get_settings
from .db import make_engine
from .edge.body_limit import BodyLimitMiddleware
from .edge.handlers import install_handlers
from .edge.request_id import RequestIdMiddleware
from .integrations.access import IntegrationDirectory
from .openapi import API_BASES, build_openapi
from .triggers.router import router as triggers_router

DESCRIPTION = """
Server-to-server API for defining **triggers**: named event monitors with input fields and
JavaScript polling code that start workflows when something happens in another system.

Authenticate with `Authorization: Bearer <API key>`. Errors are `application/problem+json`.
Every route is also served under `/api/public` for dedicated deployments.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        app.state.engine = engine
        app.state.key_verifier = KeyVerifier(engine, settings.auth_cache_seconds)
        app.state.integrations = IntegrationDirectory(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Odeus Triggers API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    for base in API_BASES:
        app.include_router(triggers_router, prefix=base, include_in_schema=not base)
    install_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
