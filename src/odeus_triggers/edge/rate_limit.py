"""Counts every API request, before the app runs, and refuses it with 429 when over its limit.

Which request counts where (every path under `/integrations` and `/api/public/integrations`,
whatever its method, route or outcome; `/healthz`, `/readyz`, `/metrics`, `/docs` and
`/openapi.json` are not counted):

1. A Bearer key that this worker verified within `ODEUS_AUTH_CACHE_SECONDS` identifies its
   workspace at once: the request counts against the workspace (`ODEUS_RATE_LIMIT`).
2. A key with a valid shape and checksum but not in that cache needs a database lookup. Before
   it, the client address's allowance (`ODEUS_RATE_LIMIT_UNAUTHENTICATED`) is checked without
   being spent: if it is used up, the request gets 429 and the database is never asked. This is
   what stops a flood of guessed keys from reaching the database; its price is that a valid but
   uncached key sent from an address that is flooding is refused too, until the flood stops.
   After the lookup, a valid key counts against its workspace, an unknown, revoked or expired
   one against the address.
3. No key, or a malformed one (wrong prefix, length or checksum), counts against the address.
   Such requests end in 401, or earlier in 403/404/405/413 when they never reach authentication.

A request is counted once, against one policy. Requests with a valid key do not spend the
address's allowance. The address is the client's IP as uvicorn reports it (X-Forwarded-For is
honoured only from FORWARDED_ALLOW_IPS); IPv6 clients are grouped by /64, the block a single
host is usually given. Every counted response carries `RateLimit-Policy` and `RateLimit` (see
`ratelimit/policies.py`); a 429 carries `Retry-After` too, equal to `t`.

For metrics and logs, `scope["state"]` gets `rate_limit_policy` (the policy name) on every
counted request and `rate_limited = True` on a 429. The verified caller is left in
`scope["state"]["caller"]`, and `key_checked = True` tells the auth dependency not to look the
key up again.
"""

import ipaddress
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import keys
from ..auth.caller import Caller, KeyVerifier, bearer_token
from ..ratelimit.counter import RateCounter
from ..ratelimit.policies import Outcome, Policies
from .problem import send_problem


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "unknown"
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return str(client[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, policies: Policies, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.policies = policies
        self.prefixes = prefixes

    def _is_api(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        outcome = await self._count(scope, state)
        state["rate_limit_policy"] = outcome.policy.name

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *outcome.header_fields()]
            await send(message)

        if not outcome.allowed:
            state["rate_limited"] = True
            await send_problem(scope, send_with_headers, outcome.error())
            return
        await self.app(scope, receive, send_with_headers)

    async def _count(self, scope: Scope, state: dict[str, Any]) -> Outcome:
        app_state = scope["app"].state
        counter: RateCounter = app_state.rate_counter
        verifier: KeyVerifier = app_state.key_verifier
        address = client_address(scope)
        token = bearer_token(Request(scope))
        caller: Caller | None = None
        if token is not None and keys.is_well_formed(token):
            caller = verifier.cached(token)
            if caller is None:
                gate = await counter.peek(self.policies.unauthenticated, address)
                if not gate.allowed:
                    return gate
                try:
                    caller = await verifier.verify(token)
                except Exception as exc:  # the database is down: the auth dependency re-raises it
                    state["key_error"] = exc
        if "key_error" not in state:
            state["key_checked"] = True
        if caller is None:
            return await counter.hit(self.policies.unauthenticated, address)
        state["caller"] = caller
        return await counter.hit(self.policies.workspace, str(caller.workspace_id))
