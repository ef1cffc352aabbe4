"""Where the API is served: every route at the root and again under `/api/public`."""

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from .methods import MethodNotAllowedRoute

API_BASES = ("", "/api/public")


def mount_api(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Include `routers` at every base; only the root copy is in the OpenAPI document."""
    for base in API_BASES:
        for router in routers:
            app.include_router(router, prefix=base, include_in_schema=not base)
    # First, so that it sees a request before a templated route takes a concrete path's URL.
    app.router.routes.insert(0, MethodNotAllowedRoute(
        (base + route.path, route.methods or ())
        for base in API_BASES
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ))
