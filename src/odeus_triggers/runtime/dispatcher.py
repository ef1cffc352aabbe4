"""The dispatcher loop (RUNTIME.md, "Delivery"): claim pending events, POST each one signed, and
record the attempt.

A `LeaseLoop` over events: one claim leases up to the free slots with their subscriptions'
webhooks and secrets; each event is sent by `delivery.sender` through the SSRF-safe transport,
signed by `delivery.signing`; the results are group-committed (`outbox.write`). The key of the
share is the destination host, so that one slow receiver cannot hold every slot: an event over
its host's share goes back for a second. The lease is the attempt's timeout plus 15 s.
"""

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncEngine

from ..delivery import outbox
from ..delivery.outbox import Attempted, Pending
from ..delivery.retry_schedule import delay_before_next
from ..delivery.sender import Outcome, new_transport, send
from ..delivery.signing import attempt_headers
from ..ops.redaction import remember_secrets, secret_scope
from ..secretbox import Keyring
from ..subscriptions.seal_contexts import signing_context
from .group_commit import GroupCommit
from .lease_loop import LeaseLoop

log = logging.getLogger("odeus_triggers.runtime.dispatcher")

TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
LEASE_MARGIN_S = 15.0
DRAIN_MARGIN_S = 5.0
# An event over its host's share waits this long, so that the next claims take other hosts' first.
OVER_SHARE_WAIT_S = 1.0
# Nothing due: ask again after this. A poll in this process wakes the loop at once when it commits
# new events; this bounds the wait for those another worker committed (one indexed query).
IDLE_DELIVERY_S = 0.2
# At most this many subscriptions are skipped by a claim (each pending row it reads is compared with
# them), and remembered per host: enough for the few subscriptions behind one slow receiver.
MAX_SKIPPED = 100


class DeliveryObserver(Protocol):
    def delivered(self, event: Pending, outcome: Outcome, at: datetime) -> None: ...


class Dispatcher(LeaseLoop[Pending, str]):
    claims = "pending events"
    what = "deliveries"

    def __init__(
        self, engine: AsyncEngine, keyring: Keyring, *, concurrency: int, per_host: int, allow_private: bool,
        observer: DeliveryObserver | None = None, timeout_s: float = TIMEOUT_S, idle_s: float = IDLE_DELIVERY_S,
        retry_scale: float = 1.0,
    ) -> None:
        super().__init__(concurrency=concurrency, share=per_host, drain_s=timeout_s + DRAIN_MARGIN_S, idle_s=idle_s)
        self.engine = engine
        self.keyring = keyring
        self.allow_private = allow_private
        self.observer = observer
        self.timeout_s = timeout_s
        self.retry_scale = retry_scale
        self.lease_s = timeout_s + LEASE_MARGIN_S
        self.transport = new_transport()
        self._hosts: LRUCache[str, str] = LRUCache(maxsize=10_000)
        self._secrets: LRUCache[tuple[str, uuid.UUID], str] = LRUCache(maxsize=10_000)
        # Per destination host, the subscriptions last seen sending to it.
        self._subscriptions_of: LRUCache[str, LRUCache[uuid.UUID, bool]] = LRUCache(maxsize=MAX_SKIPPED)
        self._commit = GroupCommit[Attempted](self._write_attempts, "deliveries")

    async def claim(self, free: int, busy: Sequence[str]) -> list[Pending]:
        # The subscriptions known to send to a host at its share are skipped, so that one host's
        # backlog is not claimed and given back over and over.
        skip = [s for host in busy for s in self._subscriptions_of.get(host, ())][:MAX_SKIPPED]
        async with self.engine.begin() as conn:
            claimed = await outbox.claim(conn, free, self.lease_s, skip)
            # A subscription disabled since its events were due: they wait for it to be active.
            held = [p for p in claimed if p.status == "disabled" or p.body is None]
            await outbox.release(conn, held, in_s=None)
        for p in claimed:
            self._subscriptions_of.setdefault(self.key(p), LRUCache(maxsize=MAX_SKIPPED))[p.subscription_id] = True
        return [p for p in claimed if p.status != "disabled" and p.body is not None]

    def key(self, item: Pending) -> str:
        host = self._hosts.get(item.webhook_url)
        if host is None:
            host = self._hosts[item.webhook_url] = (urlsplit(item.webhook_url).hostname or "").lower()
        return host

    def _open(self, token: str, item: Pending) -> str:
        # A sealed token opens to one value for good (a rotation writes a new token): decrypting
        # it once per subscription, not once per delivery.
        # Keyed by the row too: a token copied into another subscription's row must still fail to
        # open there, as its context says.
        cached = (token, item.subscription_id)
        secret = self._secrets.get(cached)
        if secret is None:
            secret = self._secrets[cached] = self.keyring.open(token, signing_context(item.subscription_id))
        return secret

    async def handle(self, item: Pending) -> None:
        secret = self._open(item.signing_secret, item)
        previous = self._open(item.previous_signing_secret, item) if item.previous_signing_secret else None
        at = datetime.now(UTC)
        with secret_scope():
            remember_secrets([s for s in (secret, previous) if s])
            headers = attempt_headers(
                item.id, item.body or "", secret, previous_secret=previous, previous_until=item.previous_until, now=at,
            )
            outcome = await send(
                self.transport, item.webhook_url, item.body or "", headers, allow_private=self.allow_private,
                connect_timeout=CONNECT_TIMEOUT_S, total_timeout=self.timeout_s,
            )
        next_in_s = None
        if outcome.kind == "failed":
            next_in_s = delay_before_next(item.attempts + 1, outcome.retry_after_s, scale=self.retry_scale)
        attempted = Attempted(item, outcome, at, next_in_s)
        await self._commit(attempted)
        if self.observer is not None and attempted.written:
            self.observer.delivered(item, outcome, at)

    async def _write_attempts(self, batch: list[Attempted]) -> None:
        async with self.engine.begin() as conn:
            await outbox.write(conn, batch)

    async def give_back(self, items: list[Pending], over_share: bool) -> None:
        async with self.engine.begin() as conn:
            await outbox.release(conn, items, in_s=OVER_SHARE_WAIT_S if over_share else 0.0)

    async def close(self) -> None:
        await self.transport.aclose()
