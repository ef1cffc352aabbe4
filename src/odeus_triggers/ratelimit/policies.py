"""Rate-limit policies and the IETF `RateLimit-Policy` / `RateLimit` header fields they produce.

The header form is that of draft-ietf-httpapi-ratelimit-headers since -08 (still so in -10,
2025): both fields are RFC 8941 structured fields whose item is the policy name as an sf-string,
with parameters

    RateLimit-Policy: "workspace";q=500;w=60      q = quota (requests), w = window (seconds)
    RateLimit: "workspace";r=499;t=37             r = remaining, t = seconds until a unit frees

The older `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` trio (drafts up to -06)
and the `X-RateLimit-*` headers are not sent. No `pk` (partition key) is sent: it would expose
the workspace id or the client address for nothing the client can use.
"""

import math
import time
from dataclasses import dataclass

import limits

from ..errors import RateLimited


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    item: limits.RateLimitItem
    subject: str  # completes "The rate limit of N requests per W seconds …" in a 429's detail

    @property
    def quota(self) -> int:
        return self.item.amount

    @property
    def window(self) -> int:
        return self.item.get_expiry()

    @property
    def header(self) -> str:
        return f'"{self.name}";q={self.quota};w={self.window}'


@dataclass(frozen=True, slots=True)
class Policies:
    workspace: Policy
    unauthenticated: Policy

    @classmethod
    def from_strings(cls, workspace: str, unauthenticated: str) -> "Policies":
        """Builds both policies from limit strings such as `500/minute` or `60 per 1 minute`."""
        return cls(
            Policy("workspace", limits.parse(workspace), "for this workspace"),
            Policy(
                "unauthenticated",
                limits.parse(unauthenticated),
                "for requests without a valid API key from this address",
            ),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a request stands in its policy once it has been counted (or refused)."""

    policy: Policy
    allowed: bool
    remaining: int
    reset_after: int  # whole seconds until at least one more request is allowed

    @classmethod
    def of(cls, policy: Policy, allowed: bool, stats: limits.WindowStats) -> "Outcome":
        remaining = max(0, stats.remaining) if allowed else 0
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        if not allowed:
            # Retry-After 0 would invite an immediate retry that is refused again.
            reset_after = max(1, reset_after)
        return cls(policy, allowed, remaining, reset_after)

    def header_fields(self) -> list[tuple[bytes, bytes]]:
        state = f'"{self.policy.name}";r={self.remaining};t={self.reset_after}'
        return [(b"ratelimit-policy", self.policy.header.encode()), (b"ratelimit", state.encode())]

    def error(self) -> RateLimited:
        return RateLimited.of(self.policy.quota, self.policy.window, self.policy.subject, self.reset_after)
