"""405 Method Not Allowed, decided the way OpenAPI reads paths, with an `Allow` header that lists
every method of the path.

Two things Starlette's own routing gets wrong for this API:

- OpenAPI matches a concrete path before a templated one, so `/integrations/v1/create` is its own
  path, whose only method is POST. Starlette tries routes in order and lets
  `GET /integrations/v1/{integrationId}` take `GET /integrations/v1/create`, which then fails
  as "integrationId must be a UUID" (400) instead of 405; likewise `PUT …/triggers/create`.
- For a path served by several routes (PUT and DELETE of a trigger), Starlette's 405 names only
  the methods of the first route it tried.

This route goes first. For a request whose path is one of the API's path templates, it picks the
most specific template that matches (the most literal segments), and answers 405 with that
template's methods in `Allow` when the request's method is not one of them. Otherwise it does not
match, and routing carries on as usual.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.routing import BaseRoute, Match, compile_path, get_route_path
from starlette.types import Receive, Scope, Send

from ..errors import MethodNotAllowed


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """One path of the API (prefix included) and every method its routes accept."""

    path_format: str
    regex: re.Pattern[str]
    methods: frozenset[str]

    @property
    def literal_segments(self) -> int:
        return sum(1 for part in self.path_format.split("/") if part and not part.startswith("{"))


class MethodNotAllowedRoute(BaseRoute):
    def __init__(self, routes: Iterable[tuple[str, Iterable[str]]]) -> None:
        methods: dict[str, set[str]] = {}
        for path, route_methods in routes:
            methods.setdefault(path, set()).update(m.upper() for m in route_methods)
        templates = [PathTemplate(p, compile_path(p)[0], frozenset(m)) for p, m in methods.items()]
        # Most specific first: concrete segments beat template expressions, as in OpenAPI.
        self.templates = sorted(templates, key=lambda t: t.literal_segments, reverse=True)

    def template_for(self, path: str) -> PathTemplate | None:
        return next((t for t in self.templates if t.regex.match(path)), None)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        template = self.template_for(get_route_path(scope))
        if template is None or scope["method"] in template.methods:
            return Match.NONE, {}
        # `route` labels the access log line and the metrics with the path template.
        return Match.FULL, {"route": _Matched(template)}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        template = scope["route"].template
        error = MethodNotAllowed(
            f"{template.path_format} accepts {', '.join(sorted(template.methods))} only."
        )
        error.headers = {"Allow": ", ".join(sorted(template.methods))}
        raise error


@dataclass(frozen=True, slots=True)
class _Matched:
    template: PathTemplate

    @property
    def path_format(self) -> str:
        return self.template.path_format
