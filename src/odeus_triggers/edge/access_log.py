"""One JSON access line and one metrics observation per request, labelled by route template.

It is the outermost of our middlewares, so refusals made before routing (413, 403 from the browser
block, 429) are timed, counted and logged too. Those never reached a route: they count as
"unmatched", like a 404.
"""

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..ops.metrics import Metrics
from .request_id import request_id_of

log = logging.getLogger("odeus_triggers.access")

UNMATCHED = "unmatched"
# Probes and scrapers call these every few seconds; their lines are kept at DEBUG.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def route_template(scope: Scope, bases: tuple[str, ...]) -> str:
    """The path template of the route that handled the request, prefix included; never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not template:
        return UNMATCHED
    # FastAPI 0.16x puts the included router's own route there, without the include prefix;
    # older versions put a prefixed copy. Both give the same label.
    path = scope.get("path", "")
    for base in bases:
        if base and path.startswith(base + "/") and not template.startswith(base + "/"):
            return base + template
    return template


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, bases: tuple[str, ...] = ("",)) -> None:
        self.app = app
        self.metrics = metrics
        self.bases = bases

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            # No response yet means an exception is on its way out, which Starlette's
            # ServerErrorMiddleware, outside us, answers with a 500.
            self._record(scope, status or 500, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_template(scope, self.bases)
        method = scope["method"]
        self.metrics.observe_request(method, route, status, seconds)
        state = scope.get("state") or {}
        if status == 429 or state.get("rate_limited"):
            self.metrics.rate_limited.labels(state.get("rate_limit_policy") or "unknown").inc()
        caller = state.get("caller")
        level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "%s %s %d",
            method,
            route,
            status,
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "request_id": request_id_of(scope),
                "workspace_id": str(caller.workspace_id) if caller is not None else None,
            },
        )
